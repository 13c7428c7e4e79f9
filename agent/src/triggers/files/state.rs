//! What the file-event watchers share with the rest of the agent: a wake-up signal
//! (triggers changed: start or stop watchers) and per-trigger counters, exported as
//! Prometheus counters.

use crate::metrics::Metrics;
use crate::triggers::per_trigger::{Family, PerTrigger};
use std::sync::Arc;
use tokio::sync::Notify;

/// One trigger's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileCounts {
    /// Changes that passed the trigger's filters (watcher, rescans and webhook).
    pub seen: u64,
    /// Events stored in the durable queue (an Event invocation accepted).
    pub delivered: u64,
    /// Events that could not be queued after retries (its last error says why).
    pub failed: u64,
    /// inotify queue overflows (each followed by a rescan of the directory).
    pub overflows: u64,
}

/// Which counter to add to.
#[derive(Debug, Clone, Copy)]
pub enum Count {
    Seen,
    Delivered,
    Failed,
    Overflow,
}

/// Reads one family's value from a trigger's counts.
type Pick = fn(&FileCounts) -> Option<f64>;

/// The watchers' shared state.
#[derive(Default)]
pub struct FilesState {
    wake: Notify,
    counts: Arc<PerTrigger<FileCounts>>,
}

impl FilesState {
    /// Fresh state; its counters are registered with `metrics`.
    pub fn new(metrics: &Metrics) -> Arc<Self> {
        let me = Arc::new(Self::default());
        let families: [(&str, &str, Pick); 4] = [
            (
                "flint_file_events_seen_total",
                "File events that passed a file-event trigger's filters (inotify, rescans, webhook), per trigger.",
                |c| Some(c.seen as f64),
            ),
            (
                "flint_file_events_delivered_total",
                "File events stored in the durable event queue as an asynchronous invocation, per trigger.",
                |c| Some(c.delivered as f64),
            ),
            (
                "flint_file_events_failed_total",
                "File events that could not be queued after retries (last error in flint triggers ls), per trigger.",
                |c| Some(c.failed as f64),
            ),
            (
                "flint_file_watch_overflows_total",
                "inotify queue overflows of a file-event trigger, each followed by a rescan of its directory.",
                |c| Some(c.overflows as f64),
            ),
        ];
        for (name, help, pick) in families {
            me.counts.export(metrics, Family::Counter, name, help, pick);
        }
        me
    }

    /// Tells the watcher supervisor that triggers changed.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Completes at the next [`FilesState::wake`] (or at once if one is pending).
    pub async fn woken(&self) {
        self.wake.notified().await
    }

    /// Adds `n` to one counter of `trigger`.
    pub fn add(&self, trigger: &str, which: Count, n: u64) {
        self.counts.update(trigger, |c| {
            let field = match which {
                Count::Seen => &mut c.seen,
                Count::Delivered => &mut c.delivered,
                Count::Failed => &mut c.failed,
                Count::Overflow => &mut c.overflows,
            };
            *field += n;
        });
    }

    /// Every trigger's counts.
    #[cfg(test)]
    pub fn snapshot(&self) -> std::collections::BTreeMap<String, FileCounts> {
        self.counts.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_exported_per_trigger() {
        let m = Metrics::new();
        let s = FilesState::new(&m);
        s.add("uploads", Count::Seen, 3);
        s.add("uploads", Count::Delivered, 2);
        s.add("uploads", Count::Overflow, 1);
        let text = m.render();
        assert!(text.contains("# TYPE flint_file_events_seen_total counter"));
        assert!(text.contains("flint_file_events_seen_total{trigger=\"uploads\"} 3"));
        assert!(text.contains("flint_file_events_delivered_total{trigger=\"uploads\"} 2"));
        assert!(text.contains("flint_file_watch_overflows_total{trigger=\"uploads\"} 1"));
    }
}
