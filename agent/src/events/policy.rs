//! Lambda's retry rules for asynchronous invocations, as a pure function of one
//! attempt's result:
//! - a function error (an exception, a timeout, running out of memory, a crash, a
//!   failed init) counts against MaximumRetryAttempts; retry k waits base*k (Lambda:
//!   about 1 minute, then 2);
//! - a throttle or a system error (no sandbox) does not count: the event waits with
//!   exponential backoff from base/60 (Lambda: 1 s) up to base*5 (Lambda: 5 minutes),
//!   until its maximum age;
//! - an event older than MaximumEventAgeInSeconds is not run again: it is dead-lettered.

use super::{Event, EventConfig};

/// What one attempt gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    /// The function returned.
    Success(Response),
    /// The function failed (Lambda's function error).
    FunctionError(Response),
    /// A limit refused the attempt (concurrency, rate, start queue, draining).
    Throttled(String),
    /// The agent could not run it (no sandbox, runtime image missing).
    SystemError(String),
    /// The function no longer exists: nothing to retry.
    Gone(String),
}

/// A function's response, for destination records.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    pub status_code: u32,
    pub payload: Vec<u8>,
    pub function_error: Option<String>,
    pub executed_version: String,
}

/// Why an event ended in the dead-letter queue (Lambda's destination conditions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    Success,
    RetriesExhausted,
    EventAgeExceeded,
}

impl Condition {
    /// Lambda's spelling in `requestContext.condition`.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Success => "Success",
            Condition::RetriesExhausted => "RetriesExhausted",
            Condition::EventAgeExceeded => "EventAgeExceeded",
        }
    }
}

/// What to do with the event after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Finished: remove it and deliver to on-success.
    Done,
    /// Try again at this time, with these counts.
    Retry {
        at_ms: u64,
        attempts: u32,
        deferrals: u32,
        error: String,
        /// A function error (counted as a retry), not a throttle.
        counted: bool,
    },
    /// Dead-letter it (and deliver to on-failure).
    Dead {
        attempts: u32,
        condition: Condition,
        error: String,
    },
}

/// The backoff base (Lambda: 60 s; `--event-retry-base-ms` for tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base_ms: u64,
}

impl Backoff {
    /// Wait before function-error retry number `k` (1-based).
    pub fn retry(&self, k: u32) -> u64 {
        self.base_ms.saturating_mul(u64::from(k.max(1)))
    }

    /// Wait after the `n`th consecutive throttle or system error (1-based).
    pub fn deferral(&self, n: u32) -> u64 {
        let first = (self.base_ms / 60).max(1);
        let cap = self.base_ms.saturating_mul(5).max(first);
        first
            .saturating_mul(1u64 << n.saturating_sub(1).min(30))
            .min(cap)
    }
}

/// Whether `e` is past its maximum age at `now_ms`; `second_ms` is the length of one
/// second of MaximumEventAgeInSeconds (1,000; tests shorten it with
/// `--event-age-unit-ms`).
pub fn expired(e: &Event, c: &EventConfig, now_ms: u64, second_ms: u64) -> bool {
    now_ms.saturating_sub(e.enqueued_ms) > u64::from(c.max_age_s) * second_ms
}

/// The decision after attempt result `r` of event `e` at `now_ms`.
pub fn decide(e: &Event, c: &EventConfig, b: Backoff, r: &AttemptResult, now_ms: u64) -> Decision {
    match r {
        AttemptResult::Success(_) => Decision::Done,
        AttemptResult::FunctionError(resp) => {
            let attempts = e.attempts + 1;
            let error = resp
                .function_error
                .clone()
                .unwrap_or_else(|| "Unhandled".into());
            if attempts > c.max_retries {
                return Decision::Dead {
                    attempts,
                    condition: Condition::RetriesExhausted,
                    error,
                };
            }
            Decision::Retry {
                at_ms: now_ms + b.retry(attempts),
                attempts,
                deferrals: e.deferrals,
                error,
                counted: true,
            }
        }
        AttemptResult::Throttled(m) | AttemptResult::SystemError(m) => {
            let deferrals = e.deferrals + 1;
            Decision::Retry {
                at_ms: now_ms + b.deferral(deferrals),
                attempts: e.attempts,
                deferrals,
                error: m.clone(),
                counted: false,
            }
        }
        AttemptResult::Gone(m) => Decision::Dead {
            attempts: e.attempts,
            condition: Condition::RetriesExhausted,
            error: m.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventState;

    fn event(attempts: u32, deferrals: u32) -> Event {
        Event {
            request_id: "r".into(),
            function: "f".into(),
            qualifier: "$LATEST".into(),
            payload: b"{}".to_vec(),
            client_context: String::new(),
            enqueued_ms: 0,
            attempts,
            deferrals,
            next_attempt_ms: 0,
            last_error: String::new(),
            state: EventState::InFlight,
        }
    }

    fn failed() -> AttemptResult {
        AttemptResult::FunctionError(Response {
            function_error: Some("Unhandled".into()),
            ..Default::default()
        })
    }

    #[test]
    fn function_errors_retry_twice_after_one_then_two_bases() {
        let b = Backoff { base_ms: 60_000 };
        let c = EventConfig::default();
        let d1 = decide(&event(0, 0), &c, b, &failed(), 1_000);
        assert!(matches!(
            d1,
            Decision::Retry {
                at_ms: 61_000,
                attempts: 1,
                counted: true,
                ..
            }
        ));
        let d2 = decide(&event(1, 0), &c, b, &failed(), 1_000);
        assert!(matches!(
            d2,
            Decision::Retry {
                at_ms: 121_000,
                attempts: 2,
                ..
            }
        ));
        let d3 = decide(&event(2, 0), &c, b, &failed(), 1_000);
        assert_eq!(
            d3,
            Decision::Dead {
                attempts: 3,
                condition: Condition::RetriesExhausted,
                error: "Unhandled".into()
            }
        );
        let none = EventConfig {
            max_retries: 0,
            ..c
        };
        assert!(matches!(
            decide(&event(0, 0), &none, b, &failed(), 0),
            Decision::Dead { attempts: 1, .. }
        ));
    }

    #[test]
    fn throttles_back_off_from_one_second_to_five_minutes_without_counting() {
        let b = Backoff { base_ms: 60_000 };
        assert_eq!(b.deferral(1), 1_000);
        assert_eq!(b.deferral(2), 2_000);
        assert_eq!(b.deferral(9), 256_000);
        assert_eq!(b.deferral(10), 300_000);
        assert_eq!(b.deferral(200), 300_000);
        let d = decide(
            &event(1, 3),
            &EventConfig::default(),
            b,
            &AttemptResult::Throttled("reserved".into()),
            0,
        );
        assert!(matches!(
            d,
            Decision::Retry {
                at_ms: 8_000,
                attempts: 1,
                deferrals: 4,
                counted: false,
                ..
            }
        ));
        assert_eq!(Backoff { base_ms: 0 }.deferral(3), 1);
    }

    #[test]
    fn age_is_measured_from_enqueue() {
        let c = EventConfig {
            max_age_s: 60,
            ..Default::default()
        };
        assert!(!expired(&event(0, 0), &c, 60_000, 1000));
        assert!(expired(&event(0, 0), &c, 60_001, 1000));
        assert!(expired(&event(0, 0), &c, 3_001, 50));
    }
}
