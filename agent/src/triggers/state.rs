//! What the scheduler shares with the rest of the agent: a wake-up signal (a trigger
//! or function changed: look again), a generation number that every change bumps (the
//! HTTP listener's route cache compares it), and per-trigger fire and failure counts,
//! exported as Prometheus counters.

use super::per_trigger::{Family, PerTrigger};
use crate::metrics::Metrics;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;

/// Fires handed to the function, and fires that could not be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub fires: u64,
    pub failures: u64,
}

/// The scheduler's shared state.
#[derive(Default)]
pub struct TriggerState {
    wake: Notify,
    generation: AtomicU64,
    counts: Arc<PerTrigger<Counts>>,
}

impl TriggerState {
    /// Fresh state; its counters are registered with `metrics`.
    pub fn new(metrics: &Metrics) -> Arc<Self> {
        let me = Arc::new(Self::default());
        me.counts.export(
            metrics,
            Family::Counter,
            "flint_trigger_fires_total",
            "Scheduled fires handed to the function (an Event invocation admitted), per trigger.",
            |c| Some(c.fires as f64),
        );
        me.counts.export(
            metrics,
            Family::Counter,
            "flint_trigger_failures_total",
            "Scheduled fires the function could not be invoked for (its last error is in flint triggers ls), per trigger.",
            |c| Some(c.failures as f64),
        );
        me
    }

    /// Tells the scheduler that triggers changed.
    pub fn wake(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// How many times triggers changed since start-up.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Completes at the next [`TriggerState::wake`] (or at once if one is pending).
    pub async fn woken(&self) {
        self.wake.notified().await
    }

    /// Counts one fire of `trigger`.
    pub fn count(&self, trigger: &str, ok: bool) {
        self.counts.update(trigger, |c| {
            if ok {
                c.fires += 1;
            } else {
                c.failures += 1;
            }
        });
    }

    /// Every trigger's counts.
    #[cfg(test)]
    pub fn snapshot(&self) -> std::collections::BTreeMap<String, Counts> {
        self.counts.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_exported_per_trigger() {
        let m = Metrics::new();
        let s = TriggerState::new(&m);
        s.count("nightly", true);
        s.count("nightly", true);
        s.count("nightly", false);
        let text = m.render();
        assert!(text.contains("# TYPE flint_trigger_fires_total counter"));
        assert!(text.contains("flint_trigger_fires_total{trigger=\"nightly\"} 2"));
        assert!(text.contains("flint_trigger_failures_total{trigger=\"nightly\"} 1"));
    }
}
