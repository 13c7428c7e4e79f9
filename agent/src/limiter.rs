//! Lambda's concurrency and rate limits. Every invocation holds a [`Permit`] while it
//! runs. Over a limit the caller is refused at once (TooManyRequestsException):
//! nothing is queued silently.
//!
//! - Agent-wide concurrency (default 1,000): functions with reserved concurrency get
//!   their reservation carved out of it; all other functions share the rest
//!   ("unreserved concurrency").
//! - Reserved concurrency: a function with a reservation of N never runs more than N
//!   at once, and N are always available to it.
//! - Invocation rate per function (default 1,000/s): a token bucket.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A refused invocation; the message names the limit and its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Throttle {
    /// Reserved concurrency reached
    #[error("TooManyRequestsException: function {function} is at its reserved concurrency of {limit}; retry later or raise it (flint put-concurrency)")]
    Reserved { function: String, limit: u32 },
    /// Unreserved pool exhausted
    #[error("TooManyRequestsException: the agent's unreserved concurrency of {limit} is in use (concurrency limit {agent_limit}, {reserved} reserved by functions); retry later")]
    Unreserved {
        limit: u32,
        agent_limit: u32,
        reserved: u32,
    },
    /// Rate exceeded
    #[error("TooManyRequestsException: rate exceeded: function {function} may be invoked {limit} times per second; slow down and retry")]
    Rate { function: String, limit: u32 },
    /// No start slot within the queue wait
    #[error("TooManyRequestsException: {parallel} sandboxes are already starting (the most this host starts at once) and this invocation waited {waited_ms} ms for its turn; retry later, or keep instances warm")]
    Starts { parallel: u32, waited_ms: u64 },
    /// The host's available memory is below the floor kept free
    #[error("TooManyRequestsException: the host has {available_mb} MB of memory available, below the {floor_mb} MB flintd keeps free (--start-min-free-mb); retry later")]
    HostMemory { available_mb: u64, floor_mb: u64 },
    /// Draining
    #[error("node is draining: it accepts no new invocations; send them to another node")]
    Draining,
}

impl Throttle {
    /// The limit's name in metrics labels (`flint_throttles_total{limit=...}`).
    pub fn name(&self) -> &'static str {
        match self {
            Throttle::Reserved { .. } => "reserved_concurrency",
            Throttle::Unreserved { .. } => "concurrency_limit",
            Throttle::Rate { .. } => "rate_limit",
            Throttle::Starts { .. } => "start_queue",
            Throttle::HostMemory { .. } => "host_memory",
            Throttle::Draining => "draining",
        }
    }
}

/// Refusing a reservation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReserveError {
    /// Not enough unreserved concurrency
    #[error("cannot reserve {wanted}: the agent's concurrency limit is {agent_limit}, {reserved_by_others} is reserved by other functions and {keep} must stay unreserved; at most {max} is available")]
    TooMuch {
        wanted: u32,
        agent_limit: u32,
        reserved_by_others: u32,
        keep: u32,
        max: u32,
    },
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

#[derive(Default)]
struct State {
    in_use: HashMap<String, u32>,
    unreserved_in_use: u32,
    total_in_use: u32,
    reserved: HashMap<String, u32>,
    buckets: HashMap<String, Bucket>,
    draining: bool,
}

/// The limits of one agent.
pub struct Limiter {
    agent_limit: u32,
    rate: u32,
    state: Mutex<State>,
}

/// Held by a running invocation; releases its slot when dropped.
pub struct Permit {
    limiter: Arc<Limiter>,
    function: String,
    reserved: bool,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut st = self.limiter.lock();
        if let Some(n) = st.in_use.get_mut(&self.function) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                st.in_use.remove(&self.function);
            }
        }
        if !self.reserved {
            st.unreserved_in_use = st.unreserved_in_use.saturating_sub(1);
        }
        st.total_in_use = st.total_in_use.saturating_sub(1);
    }
}

impl Limiter {
    /// Limits: `agent_limit` concurrent invocations, `rate` per second per function.
    pub fn new(agent_limit: u32, rate: u32) -> Arc<Self> {
        Arc::new(Self {
            agent_limit,
            rate,
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Concurrency that must stay unreserved (Lambda keeps 100 of 1,000).
    pub fn keep_unreserved(&self) -> u32 {
        (self.agent_limit / 10).clamp(1, 100)
    }

    /// The agent-wide limit.
    pub fn agent_limit(&self) -> u32 {
        self.agent_limit
    }

    /// Invocations running now.
    pub fn in_use(&self) -> u32 {
        self.lock().total_in_use
    }

    /// Checks that `function` may reserve `wanted`.
    pub fn check_reservation(&self, function: &str, wanted: u32) -> Result<(), ReserveError> {
        let st = self.lock();
        let others: u32 = st
            .reserved
            .iter()
            .filter(|(f, _)| f.as_str() != function)
            .map(|(_, n)| *n)
            .sum();
        let keep = self.keep_unreserved();
        let max = self.agent_limit.saturating_sub(others + keep);
        if wanted > max {
            return Err(ReserveError::TooMuch {
                wanted,
                agent_limit: self.agent_limit,
                reserved_by_others: others,
                keep,
                max,
            });
        }
        Ok(())
    }

    /// Records `function`'s reservation (None removes it).
    pub fn set_reservation(&self, function: &str, reserved: Option<u32>) {
        let mut st = self.lock();
        match reserved {
            Some(n) => st.reserved.insert(function.to_string(), n),
            None => st.reserved.remove(function),
        };
    }

    /// Stops (or resumes) admitting invocations.
    pub fn set_draining(&self, draining: bool) {
        self.lock().draining = draining;
    }

    /// True while draining.
    pub fn draining(&self) -> bool {
        self.lock().draining
    }

    /// Admits one invocation of `function`, or says which limit refused it.
    pub fn acquire(self: &Arc<Self>, function: &str) -> Result<Permit, Throttle> {
        let mut st = self.lock();
        if st.draining {
            return Err(Throttle::Draining);
        }
        // Rate first: a refused call does not take a concurrency slot.
        let rate = f64::from(self.rate);
        let now = Instant::now();
        let bucket = st.buckets.entry(function.to_string()).or_insert(Bucket {
            tokens: rate,
            last: now,
        });
        bucket.tokens =
            (bucket.tokens + now.duration_since(bucket.last).as_secs_f64() * rate).min(rate);
        bucket.last = now;
        if bucket.tokens < 1.0 {
            return Err(Throttle::Rate {
                function: function.to_string(),
                limit: self.rate,
            });
        }
        let in_use = st.in_use.get(function).copied().unwrap_or(0);
        let reserved_sum: u32 = st.reserved.values().sum();
        let reserved = st.reserved.get(function).copied();
        match reserved {
            Some(limit) if in_use >= limit => {
                return Err(Throttle::Reserved {
                    function: function.to_string(),
                    limit,
                })
            }
            Some(_) => {}
            None => {
                let limit = self.agent_limit.saturating_sub(reserved_sum);
                if st.unreserved_in_use >= limit {
                    return Err(Throttle::Unreserved {
                        limit,
                        agent_limit: self.agent_limit,
                        reserved: reserved_sum,
                    });
                }
                st.unreserved_in_use += 1;
            }
        }
        if let Some(b) = st.buckets.get_mut(function) {
            b.tokens -= 1.0;
        }
        *st.in_use.entry(function.to_string()).or_insert(0) += 1;
        st.total_in_use += 1;
        Ok(Permit {
            limiter: self.clone(),
            function: function.to_string(),
            reserved: reserved.is_some(),
        })
    }

    /// Forgets a deleted function.
    pub fn forget(&self, function: &str) {
        let mut st = self.lock();
        st.reserved.remove(function);
        st.buckets.remove(function);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreserved_functions_share_what_is_not_reserved() {
        let l = Limiter::new(10, 1000);
        l.set_reservation("r", Some(4));
        let held: Vec<_> = (0..6)
            .map(|i| l.acquire(&format!("f{i}")).unwrap())
            .collect();
        let e = l.acquire("f9").err().unwrap();
        assert_eq!(
            e,
            Throttle::Unreserved {
                limit: 6,
                agent_limit: 10,
                reserved: 4
            }
        );
        assert!(e.to_string().contains("6"));
        // The reserved function still gets its 4, and not a fifth.
        let r: Vec<_> = (0..4).map(|_| l.acquire("r").unwrap()).collect();
        assert!(matches!(
            l.acquire("r"),
            Err(Throttle::Reserved { limit: 4, .. })
        ));
        assert_eq!(l.in_use(), 10);
        drop(held);
        drop(r);
        assert_eq!(l.in_use(), 0);
        assert!(l.acquire("f9").is_ok());
    }

    #[test]
    fn rate_limit_refuses_bursts_beyond_the_bucket() {
        let l = Limiter::new(1000, 5);
        for _ in 0..5 {
            drop(l.acquire("f").unwrap());
        }
        let e = l.acquire("f").err().unwrap();
        assert_eq!(
            e,
            Throttle::Rate {
                function: "f".into(),
                limit: 5
            }
        );
        assert!(l.acquire("g").is_ok(), "the rate is per function");
        std::thread::sleep(std::time::Duration::from_millis(250));
        assert!(l.acquire("f").is_ok(), "tokens refill over time");
    }

    #[test]
    fn reservations_keep_some_concurrency_unreserved() {
        let l = Limiter::new(1000, 1000);
        assert!(l.check_reservation("a", 900).is_ok());
        l.set_reservation("a", Some(900));
        let e = l.check_reservation("b", 1).unwrap_err();
        assert!(e.to_string().contains("at most 0"), "{e}");
        assert!(
            l.check_reservation("a", 900).is_ok(),
            "a function's own reservation does not count against it"
        );
    }

    #[test]
    fn draining_refuses_everything() {
        let l = Limiter::new(10, 10);
        l.set_draining(true);
        assert_eq!(l.acquire("f").err(), Some(Throttle::Draining));
        l.set_draining(false);
        assert!(l.acquire("f").is_ok());
    }
}
