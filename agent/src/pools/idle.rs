//! Idle instances, per function. An invocation takes an idle instance of its function
//! (a warm start) or starts a new one (a cold start); afterwards it gives the instance
//! back. Instances of an older revision are retired; idle ones expire after the
//! keep-alive, so an idle function holds no sandbox. An idle instance is frozen (cgroup
//! freezer) from `put` until `take` thaws it.

use super::occupancy::Occupancy;
use crate::invoke::session::Session;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Idle instances by function name.
pub struct IdleInstances {
    idle: Mutex<HashMap<String, Vec<Session>>>,
    occupancy: Arc<Occupancy>,
    revisions: Mutex<HashMap<String, u64>>,
    keep_alive: Duration,
}

impl IdleInstances {
    /// Idle instances that live instances live `keep_alive` after their last use.
    pub fn new(keep_alive: Duration, occupancy: Arc<Occupancy>) -> Arc<Self> {
        Arc::new(Self {
            idle: Mutex::new(HashMap::new()),
            occupancy,
            revisions: Mutex::new(HashMap::new()),
            keep_alive,
        })
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Session>>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes an idle, live instance of `function` at `revision`, if any.
    pub(crate) fn take(&self, function: &str, revision: u64) -> Option<Session> {
        let mut stale = Vec::new();
        let found = {
            let mut idle = self.idle();
            let list = idle.get_mut(function)?;
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
        if current.is_some_and(|r| r != inst.revision()) || !inst.is_alive() {
            destroy_all(vec![inst]);
            return;
        }
        inst.touch();
        inst.freeze();
        self.idle()
            .entry(inst.function().to_string())
            .or_default()
            .push(inst);
    }

    /// Records `function`'s current revision and destroys its idle instances
    /// (on a code or configuration change, or deletion with `None`).
    pub fn retire(&self, function: &str, revision: Option<u64>) {
        {
            let mut revs = self.revisions.lock().unwrap_or_else(|p| p.into_inner());
            match revision {
                Some(r) => revs.insert(function.to_string(), r),
                None => revs.remove(function),
            };
        }
        let old = self.idle().remove(function).unwrap_or_default();
        destroy_all(old);
    }

    /// Idle instances per function: (count, memory MB).
    pub fn idle_by_function(&self) -> Vec<(String, u32, u64)> {
        self.idle()
            .iter()
            .map(|(f, l)| {
                (
                    f.clone(),
                    l.len() as u32,
                    l.iter().map(|i| u64::from(i.memory_mb())).sum(),
                )
            })
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

    /// Destroys every idle instance and waits for it (agent shutdown).
    pub async fn shutdown(&self) {
        let all: Vec<Session> = self.idle().drain().flat_map(|(_, v)| v).collect();
        for inst in all {
            inst.destroy().await;
        }
    }
}

fn destroy_all(list: Vec<Session>) {
    for inst in list {
        tokio::spawn(inst.destroy());
    }
}
