//! Counters of the event queue's life, read by the Prometheus metrics.

use std::sync::atomic::{AtomicU64, Ordering};

/// What happened to events since the agent started.
#[derive(Debug, Default)]
pub struct EventCounters {
    /// Retries after a function error.
    pub retries: AtomicU64,
    /// Attempts put off by a throttle or a system error.
    pub deferrals: AtomicU64,
    /// Events dead-lettered because they passed their maximum age.
    pub dropped_by_age: AtomicU64,
    /// Events dead-lettered for any reason (age included).
    pub dead_lettered: AtomicU64,
    /// Destination records queued for on-success destinations.
    pub on_success_delivered: AtomicU64,
    /// Destination records queued for on-failure destinations.
    pub on_failure_delivered: AtomicU64,
    /// On-success records that could not be queued (destination gone, queue error).
    pub on_success_failed: AtomicU64,
    /// On-failure records that could not be queued.
    pub on_failure_failed: AtomicU64,
}

impl EventCounters {
    /// Adds one to `c`.
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads `c`.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}
