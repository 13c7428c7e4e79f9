//! Counters of the event queue's life, read by the Prometheus metrics.

use std::sync::atomic::{AtomicU64, Ordering};

/// Which destination a record is for (the metrics' `destination` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    OnSuccess,
    OnFailure,
    DeadLetter,
}

impl Kind {
    /// Every kind, in the metrics' order.
    pub const ALL: [Kind; 3] = [Kind::OnSuccess, Kind::OnFailure, Kind::DeadLetter];

    /// The stored and exported name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::OnSuccess => "on_success",
            Kind::OnFailure => "on_failure",
            Kind::DeadLetter => "dead_letter",
        }
    }

    /// The kind named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// How one delivery of a destination record went (the metrics' `result` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Queued for a function, or POSTed to a webhook with a 2xx answer.
    Ok,
    /// Not delivered: the destination function is gone, the queue failed, or a
    /// webhook failed its last attempt (its event is then in the dead-letter queue).
    Error,
    /// A webhook POST failed and will be tried again.
    Retry,
}

impl Outcome {
    /// Every outcome, in the metrics' order.
    pub const ALL: [Outcome; 3] = [Outcome::Ok, Outcome::Error, Outcome::Retry];

    /// The exported name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Retry => "retry",
        }
    }
}

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
    /// Destination deliveries by [`Kind`] and [`Outcome`].
    destinations: [[AtomicU64; 3]; 3],
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

    fn slot(&self, k: Kind, o: Outcome) -> &AtomicU64 {
        &self.destinations[k as usize][o as usize]
    }

    /// Counts one delivery of a `k` record that ended with `o`.
    pub fn delivered(&self, k: Kind, o: Outcome) {
        Self::inc(self.slot(k, o));
    }

    /// Deliveries of `k` records that ended with `o`.
    pub fn deliveries(&self, k: Kind, o: Outcome) -> u64 {
        Self::get(self.slot(k, o))
    }
}
