//! Per-trigger numbers of the queue consumers, exported as Prometheus metrics:
//! batches, messages, failed invocations, deferrals (throttles), dead-lettered
//! messages, connections (counters), the queue's backlog (lag) and the batches in flight (gauges).

use crate::metrics::Metrics;
use crate::triggers::per_trigger::{Family, PerTrigger};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

/// One trigger's numbers.
#[derive(Debug)]
pub struct Counters {
    batches: AtomicU64,
    messages: AtomicU64,
    failures: AtomicU64,
    deferrals: AtomicU64,
    dead_lettered: AtomicU64,
    sessions: AtomicU64,
    /// Messages ready in the queue; -1 while unknown.
    lag: AtomicI64,
    concurrency: AtomicU64,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            batches: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            deferrals: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            sessions: AtomicU64::new(0),
            lag: AtomicI64::new(-1),
            concurrency: AtomicU64::new(0),
        }
    }
}

impl Counters {
    /// A batch of `n` messages was handled.
    pub fn batch(&self, n: usize) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.messages.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub fn failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }
    pub fn deferral(&self) {
        self.deferrals.fetch_add(1, Ordering::Relaxed);
    }
    pub fn dead_lettered(&self, n: usize) {
        self.dead_lettered.fetch_add(n as u64, Ordering::Relaxed);
    }
    /// A session (connection and consumer) started.
    pub fn session(&self) {
        self.sessions.fetch_add(1, Ordering::Relaxed);
    }
    pub fn set_lag(&self, depth: Option<u64>) {
        let v = depth.map_or(-1, |d| d.min(i64::MAX as u64) as i64);
        self.lag.store(v, Ordering::Relaxed);
    }
    pub fn set_concurrency(&self, n: u32) {
        self.concurrency.store(u64::from(n), Ordering::Relaxed);
    }
}

/// Every queue trigger's counters.
#[derive(Default)]
pub struct QueueStats {
    map: Arc<PerTrigger<Arc<Counters>>>,
}

type Pick = fn(&Arc<Counters>) -> Option<f64>;

impl QueueStats {
    /// Fresh stats, registered with `metrics`.
    pub fn new(metrics: &Metrics) -> Arc<Self> {
        let me = Arc::new(Self::default());
        let families: [(Family, &str, &str, Pick); 8] = [
            (
                Family::Counter,
                "flint_queue_trigger_batches_total",
                "Batches a queue trigger's function handled (messages acknowledged), per trigger.",
                |c| Some(c.batches.load(Ordering::Relaxed) as f64),
            ),
            (
                Family::Counter,
                "flint_queue_trigger_messages_total",
                "Messages a queue trigger's function handled, per trigger.",
                |c| Some(c.messages.load(Ordering::Relaxed) as f64),
            ),
            (
                Family::Counter,
                "flint_queue_trigger_failures_total",
                "Invocations of a queue trigger's function that failed (each retry counts), per trigger.",
                |c| Some(c.failures.load(Ordering::Relaxed) as f64),
            ),
            (
                Family::Counter,
                "flint_queue_trigger_deferrals_total",
                "Batches held back because the function was throttled or had no sandbox, per trigger.",
                |c| Some(c.deferrals.load(Ordering::Relaxed) as f64),
            ),
            (
                Family::Counter,
                "flint_queue_trigger_dead_lettered_total",
                "Messages sent to a queue trigger's dead-letter target after their retries, per trigger.",
                |c| Some(c.dead_lettered.load(Ordering::Relaxed) as f64),
            ),
            (
                Family::Counter,
                "flint_queue_trigger_connections_total",
                "Connections a queue trigger's consumer made to its broker (more than one: reconnects), per trigger.",
                |c| Some(c.sessions.load(Ordering::Relaxed) as f64),
            ),
            (
                Family::Gauge,
                "flint_queue_trigger_lag_messages",
                "Messages waiting in the trigger's queue (not yet delivered), read every second; absent while unknown.",
                |c| {
                    let v = c.lag.load(Ordering::Relaxed);
                    (v >= 0).then_some(v as f64)
                },
            ),
            (
                Family::Gauge,
                "flint_queue_trigger_batches_in_flight",
                "Batches of a queue trigger being handled now.",
                |c| Some(c.concurrency.load(Ordering::Relaxed) as f64),
            ),
        ];
        for (family, name, help, pick) in families {
            me.map.export(metrics, family, name, help, pick);
        }
        me
    }

    /// The trigger's counters (kept across reconnects).
    pub fn of(&self, trigger: &str) -> Arc<Counters> {
        self.map.update(trigger, |c| c.clone())
    }

    /// Forgets a deleted trigger.
    pub fn remove(&self, trigger: &str) {
        self.map.remove(trigger);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_exported_per_trigger() {
        let m = Metrics::new();
        let s = QueueStats::new(&m);
        let c = s.of("orders");
        c.batch(100);
        c.batch(20);
        c.failure();
        c.dead_lettered(3);
        let text = m.render();
        assert!(text.contains("flint_queue_trigger_batches_total{trigger=\"orders\"} 2"));
        assert!(text.contains("flint_queue_trigger_messages_total{trigger=\"orders\"} 120"));
        assert!(text.contains("flint_queue_trigger_failures_total{trigger=\"orders\"} 1"));
        assert!(text.contains("flint_queue_trigger_dead_lettered_total{trigger=\"orders\"} 3"));
        assert!(
            !text.contains("flint_queue_trigger_lag_messages{"),
            "unknown lag"
        );
        c.set_lag(Some(42));
        assert!(m
            .render()
            .contains("flint_queue_trigger_lag_messages{trigger=\"orders\"} 42"));
    }
}
