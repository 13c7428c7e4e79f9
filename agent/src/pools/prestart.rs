//! The sandbox pool (the "warm pool" of the flags and docs): generic sandboxes started ahead of demand, one pool per (runtime,
//! memory size), with flint-init up and, for runtimes that support it, the runtime's
//! interpreter already running. A cold start takes one and only has to load the
//! function's code.
//!
//! Sizing needs no setting: each pool aims for the peak number of cold starts its key
//! saw within one second, over the last `window` (the agent's keep-alive), capped by
//! `max`; with no demand in the window it shrinks to its floor (zero unless
//! configured), so an idle agent holds no sandbox. Refills run in the background,
//! off the request path, a few at a time.

pub use super::key::{PoolConfig, PoolKey, PoolStatus};
use super::occupancy::Occupancy;
use crate::invoke::session::{Prestarted, StartError};
use crate::runtimes::{Runtime, RuntimeError};
use crate::sandbox::{new_sandbox_id, SandboxBackend, SandboxSpec};
use flint_proto::init::Prepare;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// The longest a pool hit delays its refill ([`SandboxPool::refill_after`]): about a
/// pool hit's binding and a short first invocation; a long-running one does not hold
/// the refill back.
pub const REFILL_DEFER_MAX: Duration = Duration::from_millis(50);

/// Held by a pool hit until its first invocation ends; dropping it starts the refill.
pub(crate) struct RefillTicket {
    _tx: tokio::sync::oneshot::Sender<()>,
}

#[derive(Default)]
struct KeyState {
    ready: VecDeque<Prestarted>,
    starting: u32,
    /// Times of recent cold starts (pool hits and misses).
    demand: VecDeque<Instant>,
    /// No new start before this (after a failure).
    backoff_until: Option<Instant>,
    target: u32,
}

/// The runtime images the pool starts sandboxes of (the agent's catalogue, which
/// rescans the images directory for names it does not know).
pub trait Catalogue: Send + Sync + 'static {
    /// The runtime called `name`.
    fn runtime(&self, name: &str) -> Result<Runtime, RuntimeError>;
}

/// All pools.
pub struct SandboxPool {
    config: PoolConfig,
    occupancy: Arc<Occupancy>,
    backend: Arc<dyn SandboxBackend>,
    keys: Mutex<BTreeMap<PoolKey, KeyState>>,
    wake: tokio::sync::Notify,
    paused: std::sync::atomic::AtomicBool,
}

/// Peak number of `times` (sorted) within any span of `span`.
fn peak(times: &VecDeque<Instant>, span: Duration) -> u32 {
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..times.len() {
        while times[hi].duration_since(times[lo]) >= span {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best as u32
}

impl SandboxPool {
    /// A pool making sandboxes with `backend`.
    pub fn new(
        config: PoolConfig,
        backend: Arc<dyn SandboxBackend>,
        occupancy: Arc<Occupancy>,
    ) -> Arc<Self> {
        let mut keys = BTreeMap::new();
        for k in config.floors.keys() {
            keys.insert(k.clone(), KeyState::default());
        }
        Arc::new(Self {
            config,
            occupancy,
            backend,
            keys: Mutex::new(keys),
            wake: tokio::sync::Notify::new(),
            paused: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<PoolKey, KeyState>> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True when the pool may hold sandboxes at all.
    pub fn enabled(&self) -> bool {
        self.config.max > 0
    }

    /// Records a cold start for `key` and takes a ready sandbox, if any. A miss sets
    /// the refill off at once; after a hit the caller holds a [`RefillTicket`]
    /// ([`refill_after`](Self::refill_after)) so that the refill (a sandbox and an
    /// interpreter starting: tens of ms of CPU) does not compete with the hit's own
    /// binding and first invocation.
    pub(crate) fn take(&self, key: &PoolKey) -> Option<Prestarted> {
        if !self.enabled() {
            return None;
        }
        let mut dead = Vec::new();
        let found = {
            let mut keys = self.lock();
            let st = keys.entry(key.clone()).or_default();
            st.demand.push_back(Instant::now());
            let mut found = None;
            while let Some(mut c) = st.ready.pop_front() {
                if c.is_alive() {
                    found = Some(c);
                    break;
                }
                dead.push(c);
            }
            found
        };
        if found.is_some() {
            self.occupancy.bump();
        } else {
            self.wake.notify_one();
        }
        for c in dead {
            tokio::spawn(c.destroy());
        }
        found
    }

    /// The refill after a pool hit: it starts when the ticket is dropped (the hit's
    /// first invocation has ended, or its binding failed) or [`REFILL_DEFER_MAX`]
    /// after this call, whichever comes first.
    pub(crate) fn refill_after(self: &Arc<Self>) -> RefillTicket {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REFILL_DEFER_MAX, rx).await;
            if let Some(me) = me.upgrade() {
                me.wake.notify_one();
            }
        });
        RefillTicket { _tx: tx }
    }

    /// Stops refilling and empties every pool (draining), or starts again.
    pub fn set_paused(&self, paused: bool) {
        self.paused
            .store(paused, std::sync::atomic::Ordering::SeqCst);
        self.wake.notify_one();
    }

    fn target(&self, st: &mut KeyState, floor: u32, now: Instant) -> u32 {
        while st
            .demand
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.config.window)
        {
            st.demand.pop_front();
        }
        if self.paused.load(std::sync::atomic::Ordering::SeqCst) {
            return 0;
        }
        peak(&st.demand, Duration::from_secs(1))
            .max(floor)
            .min(self.config.max)
    }

    /// Every pool's numbers, for the Node API and metrics.
    pub fn status(&self) -> Vec<PoolStatus> {
        self.lock()
            .iter()
            .map(|(k, s)| PoolStatus {
                key: k.clone(),
                ready: s.ready.len() as u32,
                starting: s.starting,
                target: s.target,
            })
            .collect()
    }

    /// Runs the refill/shrink loop until the catalogue (the agent) is gone.
    pub fn spawn_manager(self: &Arc<Self>, agent: Weak<dyn Catalogue>) {
        if !self.enabled() {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = me.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
                let Some(agent) = agent.upgrade() else { return };
                me.balance(&agent);
            }
        });
    }

    /// One pass: start what is missing, destroy what is too much or dead.
    fn balance(self: &Arc<Self>, agent: &Arc<dyn Catalogue>) {
        let now = Instant::now();
        let mut to_start = Vec::new();
        let mut to_destroy = Vec::new();
        {
            let mut keys = self.lock();
            let mut starting: u32 = keys.values().map(|s| s.starting).sum();
            for (key, st) in keys.iter_mut() {
                let floor = self.config.floors.get(key).copied().unwrap_or(0);
                st.target = self.target(st, floor, now);
                let mut alive = VecDeque::new();
                while let Some(mut c) = st.ready.pop_front() {
                    if c.is_alive() {
                        alive.push_back(c);
                    } else {
                        to_destroy.push(c);
                    }
                }
                st.ready = alive;
                while st.ready.len() as u32 > st.target {
                    if let Some(c) = st.ready.pop_front() {
                        to_destroy.push(c);
                    }
                }
                let backing_off = st.backoff_until.is_some_and(|t| now < t);
                while !backing_off
                    && st.ready.len() as u32 + st.starting < st.target
                    && starting < self.config.parallel_starts
                {
                    st.starting += 1;
                    starting += 1;
                    to_start.push(key.clone());
                }
            }
            keys.retain(|k, s| {
                s.starting > 0
                    || !s.ready.is_empty()
                    || !s.demand.is_empty()
                    || self.config.floors.contains_key(k)
            });
        }
        for c in to_destroy {
            tokio::spawn(c.destroy());
        }
        for key in to_start {
            let me = self.clone();
            let agent = agent.clone();
            tokio::spawn(async move {
                let result = me.start_one(agent.as_ref(), &key).await;
                let mut keys = me.lock();
                let st = keys.entry(key.clone()).or_default();
                st.starting = st.starting.saturating_sub(1);
                match result {
                    Ok(conn) => st.ready.push_back(conn),
                    Err(e) => {
                        st.backoff_until = Some(Instant::now() + Duration::from_secs(1));
                        tracing::warn!(runtime = %key.runtime, memory_mb = key.memory_mb, error = %e, "warm pool sandbox failed to start");
                    }
                }
                drop(keys);
                me.occupancy.bump();
                me.wake.notify_one();
            });
        }
    }

    async fn start_one(
        &self,
        agent: &dyn Catalogue,
        key: &PoolKey,
    ) -> Result<Prestarted, StartError> {
        let rt = agent
            .runtime(&key.runtime)
            .map_err(|e| StartError::Prepare(e.to_string()))?;
        let spec = SandboxSpec {
            id: new_sandbox_id(),
            rootfs: rt.rootfs.clone(),
            memory_mb: key.memory_mb,
            tmp_mb: self.config.tmp_mb,
            network: key.network,
            ro_binds: Vec::new(),
            waiting_runtime: None,
        };
        let mut conn = Prestarted::open(self.backend.as_ref(), &spec).await?;
        let prepare = prepare_message(&rt, key.memory_mb, self.config.tmp_mb);
        if let Err(e) = conn
            .prepare(prepare, Duration::from_secs(crate::limits::INIT_TIMEOUT_S))
            .await
        {
            conn.destroy().await;
            return Err(e);
        }
        Ok(conn)
    }

    /// Stops refilling, waits for sandboxes still starting, and destroys every
    /// sandbox (agent shutdown).
    pub async fn shutdown(&self) {
        self.set_paused(true);
        let deadline = Instant::now() + Duration::from_secs(crate::limits::INIT_TIMEOUT_S + 2);
        loop {
            let (ready, starting): (Vec<Prestarted>, u32) = {
                let mut keys = self.lock();
                let starting = keys.values().map(|s| s.starting).sum();
                (
                    keys.values_mut().flat_map(|s| s.ready.drain(..)).collect(),
                    starting,
                )
            };
            super::destroy_all(ready.into_iter().map(Prestarted::destroy)).await;
            if starting == 0 || Instant::now() > deadline {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The Prepare that makes a sandbox of `rt` ready for any function of `memory_mb` MB:
/// the warm pool's, and a microVM snapshot's taken with the runtime waiting.
pub(crate) fn prepare_message(rt: &Runtime, memory_mb: u32, tmp_mb: u32) -> Prepare {
    Prepare {
        bootstrap: rt.manifest.bootstrap.clone(),
        runtime: rt.manifest.name.clone(),
        memory_mb,
        tmp_mb,
        start_runtime: rt.manifest.prestart,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_counts_the_busiest_second() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let times: VecDeque<_> = [0, 100, 200, 1500, 1600, 1700, 1800, 5000]
            .into_iter()
            .map(at)
            .collect();
        assert_eq!(peak(&times, Duration::from_secs(1)), 4);
        assert_eq!(peak(&VecDeque::new(), Duration::from_secs(1)), 0);
        let spread: VecDeque<_> = [0, 1000, 2000, 3000].into_iter().map(at).collect();
        assert_eq!(peak(&spread, Duration::from_secs(1)), 1);
    }

    fn pool() -> Arc<SandboxPool> {
        let config = PoolConfig {
            max: 2,
            floors: BTreeMap::new(),
            window: Duration::from_secs(60),
            parallel_starts: 1,
            tmp_mb: 512,
        };
        let backend = crate::fake::backend::FakeBackend::new(crate::fake::guest::Script::echo());
        SandboxPool::new(config, backend, Occupancy::new())
    }

    /// Whether the refill loop is woken within `within`.
    async fn woken(p: &SandboxPool, within: Duration) -> bool {
        tokio::time::timeout(within, p.wake.notified())
            .await
            .is_ok()
    }

    #[tokio::test(start_paused = true)]
    async fn a_pool_hit_refills_once_its_ticket_drops() {
        let p = pool();
        let ticket = p.refill_after();
        assert!(
            !woken(&p, Duration::from_millis(20)).await,
            "woken while the hit is served"
        );
        drop(ticket);
        assert!(
            woken(&p, Duration::from_millis(1)).await,
            "not woken after the hit"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_first_invocation_holds_the_refill_back_at_most_the_cap() {
        let p = pool();
        let _ticket = p.refill_after();
        assert!(!woken(&p, REFILL_DEFER_MAX - Duration::from_millis(5)).await);
        assert!(
            woken(&p, Duration::from_millis(10)).await,
            "not woken {REFILL_DEFER_MAX:?} after the hit"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_miss_refills_at_once() {
        let p = pool();
        let key = PoolKey {
            runtime: "python3.11".into(),
            memory_mb: 128,
            network: Default::default(),
        };
        assert!(p.take(&key).is_none());
        assert!(woken(&p, Duration::from_millis(1)).await);
    }
}
