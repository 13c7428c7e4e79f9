//! Idle instances, per function version. An invocation takes an idle instance of its
//! function's version (a warm start) or starts a new one (a cold start); afterwards it
//! gives the instance back. An instance of version 1 never serves version 2 or $LATEST.
//! Instances of an older revision of $LATEST are retired (a published version never
//! changes); idle ones expire after the
//! keep-alive, so an idle function holds no sandbox. An idle instance is frozen (cgroup
//! freezer) until `take` thaws it: at `put`, or, with a freeze delay
//! (`--freeze-after-ms`), by the freezer task once it has been idle that long, so that
//! back-to-back invocations skip the freeze and the thaw.

use super::occupancy::Occupancy;
use crate::invoke::session::Session;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// The idle list of `function`'s `version`: the name for $LATEST, else `NAME:VERSION`.
fn key(function: &str, version: &str) -> String {
    if version == flint_proto::lambda::LATEST {
        function.to_string()
    } else {
        format!("{function}:{version}")
    }
}

/// Idle instances by function name (and version, [`key`]).
pub struct IdleInstances {
    idle: Mutex<HashMap<String, Vec<Session>>>,
    occupancy: Arc<Occupancy>,
    revisions: Mutex<HashMap<String, u64>>,
    keep_alive: Duration,
    /// How long an instance stays idle before it is frozen (zero: at `put`).
    freeze_after: Duration,
    /// Wakes the freezer task: an instance to freeze later was put back.
    freezer: Arc<Notify>,
}

impl IdleInstances {
    /// Idle instances live `keep_alive` after their last use and are frozen once idle
    /// for `freeze_after` (zero: as they are put back).
    pub fn new(
        keep_alive: Duration,
        freeze_after: Duration,
        occupancy: Arc<Occupancy>,
    ) -> Arc<Self> {
        Arc::new(Self {
            idle: Mutex::new(HashMap::new()),
            occupancy,
            revisions: Mutex::new(HashMap::new()),
            keep_alive,
            freeze_after,
            freezer: Arc::new(Notify::new()),
        })
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Session>>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes an idle, live instance of `function`'s `version` at `revision`, if any.
    pub(crate) fn take(&self, function: &str, version: &str, revision: u64) -> Option<Session> {
        let mut stale = Vec::new();
        let found = {
            let mut idle = self.idle();
            let list = idle.get_mut(&key(function, version))?;
            let mut found = None;
            while let Some(mut inst) = list.pop() {
                if inst.revision() == revision && inst.is_alive() && inst.thaw() {
                    found = Some(inst);
                    break;
                }
                stale.push(inst);
            }
            found
        };
        destroy_all(stale);
        if found.is_some() {
            self.occupancy.bump();
        }
        found
    }

    /// Returns an instance after an invocation; destroys it if its revision is old.
    pub(crate) fn put(&self, mut inst: Session) {
        let current = self
            .revisions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(inst.function())
            .copied();
        // $LATEST's instances must be of its current revision; a version's, of a
        // function that still exists.
        let stale = if inst.version() == flint_proto::lambda::LATEST {
            current.is_some_and(|r| r != inst.revision())
        } else {
            current.is_none()
        };
        if stale || !inst.is_alive() {
            destroy_all(vec![inst]);
            return;
        }
        inst.touch();
        let later = !self.freeze_after.is_zero();
        if !later {
            inst.freeze();
        }
        self.idle()
            .entry(key(inst.function(), inst.version()))
            .or_default()
            .push(inst);
        if later {
            self.freezer.notify_one();
        }
    }

    /// Freezes the instances idle for the freeze delay; returns when the next one is
    /// due, if any is waiting.
    fn freeze_due(&self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut idle = self.idle();
        for inst in idle.values_mut().flatten().filter(|i| !i.is_frozen()) {
            let due = inst.last_used() + self.freeze_after;
            if due <= now {
                inst.freeze();
            } else {
                next = Some(next.map_or(due, |n| n.min(due)));
            }
        }
        next
    }

    /// With a freeze delay, runs the task that freezes idle instances once they have
    /// been idle that long, until the pool is dropped.
    pub fn spawn_freezer(self: &Arc<Self>) {
        if self.freeze_after.is_zero() {
            return;
        }
        tracing::info!(
            freeze_after_ms = self.freeze_after.as_millis() as u64,
            "idle instances are frozen after a delay"
        );
        let weak = Arc::downgrade(self);
        let wake = self.freezer.clone();
        tokio::spawn(async move {
            loop {
                let next = match weak.upgrade() {
                    Some(pool) => pool.freeze_due(Instant::now()),
                    None => return,
                };
                match next {
                    Some(t) => {
                        tokio::select! {
                            _ = tokio::time::sleep_until(t.into()) => {}
                            _ = wake.notified() => {}
                        }
                    }
                    None => wake.notified().await,
                }
            }
        });
    }

    /// Records `function`'s current revision and destroys the idle instances of its
    /// $LATEST (on a code or configuration change), or, with `None` (deletion), of
    /// every version.
    pub fn retire(&self, function: &str, revision: Option<u64>) {
        {
            let mut revs = self.revisions.lock().unwrap_or_else(|p| p.into_inner());
            match revision {
                Some(r) => revs.insert(function.to_string(), r),
                None => revs.remove(function),
            };
        }
        let old: Vec<Session> = {
            let mut idle = self.idle();
            match revision {
                Some(_) => idle.remove(function).unwrap_or_default(),
                None => {
                    let prefix = format!("{function}:");
                    let keys: Vec<String> = idle
                        .keys()
                        .filter(|k| *k == function || k.starts_with(&prefix))
                        .cloned()
                        .collect();
                    keys.iter()
                        .flat_map(|k| idle.remove(k).unwrap_or_default())
                        .collect()
                }
            }
        };
        destroy_all(old);
    }

    /// Destroys the idle instances of one published version (deleted).
    pub fn retire_version(&self, function: &str, version: &str) {
        let old = self
            .idle()
            .remove(&key(function, version))
            .unwrap_or_default();
        destroy_all(old);
    }

    /// Idle instances per function, over its versions: (count, memory MB).
    pub fn idle_by_function(&self) -> Vec<(String, u32, u64)> {
        let mut by: HashMap<&str, (u32, u64)> = HashMap::new();
        let idle = self.idle();
        for inst in idle.values().flatten() {
            let e = by.entry(inst.function()).or_default();
            e.0 += 1;
            e.1 += u64::from(inst.memory_mb());
        }
        by.into_iter()
            .map(|(f, (n, mb))| (f.to_string(), n, mb))
            .collect()
    }

    /// Number of idle instances, in total.
    pub fn idle_count(&self) -> usize {
        self.idle().values().map(Vec::len).sum()
    }

    /// Destroys idle instances unused for longer than the keep-alive.
    pub fn reap(&self) -> usize {
        let now = Instant::now();
        let mut expired = Vec::new();
        {
            let mut idle = self.idle();
            for list in idle.values_mut() {
                let (old, keep): (Vec<_>, Vec<_>) = list
                    .drain(..)
                    .partition(|i| now.duration_since(i.last_used()) >= self.keep_alive);
                *list = keep;
                expired.extend(old);
            }
            idle.retain(|_, l| !l.is_empty());
        }
        let n = expired.len();
        destroy_all(expired);
        if n > 0 {
            self.occupancy.bump();
        }
        n
    }

    /// Runs `reap` every second until the pool is dropped.
    pub fn spawn_reaper(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(pool) = weak.upgrade() else { return };
                let n = pool.reap();
                if n > 0 {
                    tracing::debug!(reaped = n, "idle instances past keep-alive destroyed");
                }
            }
        });
    }

    /// Destroys every idle instance, all at once, and waits for them (agent
    /// shutdown: one after the other, hundreds of instances on a loaded host took
    /// longer than a supervisor's stop timeout, and a killed flintd leaves its
    /// instances frozen).
    pub async fn shutdown(&self) {
        let all: Vec<Session> = self.idle().drain().flat_map(|(_, v)| v).collect();
        crate::pools::destroy_all(all.into_iter().map(Session::destroy)).await;
    }
}

fn destroy_all(list: Vec<Session>) {
    for inst in list {
        tokio::spawn(inst.destroy());
    }
}
