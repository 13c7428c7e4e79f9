//! Per-trigger counts of the HTTP listener, exported as Prometheus counters
//! (`flint_trigger_http_requests_total{trigger}`,
//! `flint_trigger_http_errors_total{trigger,class}`), and which failures become the
//! trigger's last error in the registry (server-side ones: a function error, a bad
//! result, a timeout, a throttle, an invocation that could not run; a success after
//! one clears it). The registry is written only when the last error changes.

use super::response::{Failure, FailureClass};
use crate::metrics::Metrics;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Inner {
    requests: BTreeMap<String, u64>,
    errors: BTreeMap<(String, &'static str), u64>,
    /// The last error written to the registry per trigger (None: cleared); absent
    /// = not known since start-up.
    written: BTreeMap<String, Option<String>>,
}

/// The listener's counters.
#[derive(Default)]
pub struct HttpStats {
    inner: Mutex<Inner>,
}

impl HttpStats {
    /// Fresh counters, registered with `metrics`.
    pub fn new(metrics: &Metrics) -> Arc<Self> {
        let me = Arc::new(Self::default());
        let weak = Arc::downgrade(&me);
        metrics.counter_vec_fn(
            "flint_trigger_http_requests_total",
            "Requests routed to an HTTP trigger (function URL), per trigger.",
            move || {
                let Some(me) = weak.upgrade() else {
                    return Vec::new();
                };
                let g = me.lock();
                g.requests
                    .iter()
                    .map(|(t, n)| (vec![("trigger".to_string(), t.clone())], *n as f64))
                    .collect()
            },
        );
        let weak = Arc::downgrade(&me);
        metrics.counter_vec_fn(
            "flint_trigger_http_errors_total",
            "Requests to an HTTP trigger answered with an error, per trigger and class (function_error, timeout, throttle, bad_response, bad_request, disabled, internal).",
            move || {
                let Some(me) = weak.upgrade() else {
                    return Vec::new();
                };
                let g = me.lock();
                g.errors
                    .iter()
                    .map(|((t, c), n)| {
                        (
                            vec![
                                ("trigger".to_string(), t.clone()),
                                ("class".to_string(), c.to_string()),
                            ],
                            *n as f64,
                        )
                    })
                    .collect()
            },
        );
        me
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one request to `trigger` with its outcome; returns the last error to
    /// write to the registry (`Some(None)`: clear it), if it changed.
    pub fn record(
        &self,
        trigger: &str,
        outcome: Result<(), &Failure>,
        when: &str,
        request_id: &str,
    ) -> Option<Option<String>> {
        let mut g = self.lock();
        *g.requests.entry(trigger.to_string()).or_default() += 1;
        let last = match outcome {
            Ok(()) => None,
            Err(f) => {
                *g.errors
                    .entry((trigger.to_string(), f.class.label()))
                    .or_default() += 1;
                if !is_server_side(f.class) {
                    return None;
                }
                Some(format!(
                    "{when}: {} {} ({}; request {request_id})",
                    f.status,
                    f.class.label(),
                    f.message
                ))
            }
        };
        // The same class of error again: no write (the message differs only in time).
        let same = match (g.written.get(trigger), &last) {
            (Some(None), None) => true,
            (Some(Some(a)), Some(b)) => class_of(a) == class_of(b),
            _ => false,
        };
        if same {
            return None;
        }
        g.written.insert(trigger.to_string(), last.clone());
        Some(last)
    }
}

fn is_server_side(c: FailureClass) -> bool {
    matches!(
        c,
        FailureClass::Function
            | FailureClass::BadResponse
            | FailureClass::Timeout
            | FailureClass::Throttle
            | FailureClass::Internal
    )
}

/// "STATUS CLASS" of a recorded last error.
fn class_of(s: &str) -> &str {
    s.split_once(": ")
        .map(|(_, r)| r)
        .and_then(|r| r.split(" (").next())
        .unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_exported_and_last_errors_written_only_on_change() {
        let m = Metrics::new();
        let s = HttpStats::new(&m);
        assert_eq!(s.record("site", Ok(()), "t0", "r0"), Some(None));
        assert_eq!(s.record("site", Ok(()), "t1", "r1"), None);
        let f = FailureClass::Function.with("Internal Server Error");
        let w = s.record("site", Err(&f), "t2", "r2").unwrap().unwrap();
        assert_eq!(
            w,
            "t2: 502 function_error (Internal Server Error; request r2)"
        );
        assert_eq!(s.record("site", Err(&f), "t3", "r3"), None);
        let t = FailureClass::Timeout.with("Endpoint request timed out");
        assert!(s.record("site", Err(&t), "t4", "r4").unwrap().is_some());
        // A client's mistake is counted, not the trigger's last error.
        let d = FailureClass::Disabled.with("Forbidden");
        assert_eq!(s.record("site", Err(&d), "t5", "r5"), None);
        assert_eq!(s.record("site", Ok(()), "t6", "r6"), Some(None));
        let text = m.render();
        assert!(
            text.contains("flint_trigger_http_requests_total{trigger=\"site\"} 7"),
            "{text}"
        );
        assert!(text.contains(
            "flint_trigger_http_errors_total{trigger=\"site\",class=\"function_error\"} 2"
        ));
        assert!(
            text.contains("flint_trigger_http_errors_total{trigger=\"site\",class=\"timeout\"} 1")
        );
    }
}
