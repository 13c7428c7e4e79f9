//! The event queue's Prometheus metrics: depth, age of the oldest event and the
//! dead-letter queue read from the queue at scrape time; retries, deferrals, events
//! dropped by age, dead-lettered events and destination deliveries from the counters.

use super::counters::{EventCounters, Kind, Outcome};
use super::dispatcher::Dispatcher;
use super::now_ms;
use crate::metrics::Metrics;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

fn label(k: &str, v: &str) -> (String, String) {
    (k.to_string(), v.to_string())
}

/// Registers the queue's gauges and counters on `m`.
pub fn register(m: &Metrics, d: &Arc<Dispatcher>) {
    let w = Arc::downgrade(d);
    m.gauge(
        "flint_event_queue_depth",
        "Asynchronous events queued, in flight or waiting for a retry.",
        move || {
            w.upgrade()
                .and_then(|d| d.queue().stats().ok())
                .map_or(0.0, |s| s.depth as f64)
        },
    );
    let w = Arc::downgrade(d);
    m.gauge(
        "flint_event_oldest_age_seconds",
        "Age of the oldest unfinished asynchronous event, seconds (0 when none).",
        move || {
            w.upgrade()
                .and_then(|d| d.queue().stats().ok())
                .and_then(|s| s.oldest_enqueued_ms)
                .map_or(0.0, |t| now_ms().saturating_sub(t) as f64 / 1e3)
        },
    );
    let w = Arc::downgrade(d);
    m.gauge(
        "flint_event_dead_letter_depth",
        "Events in the dead-letter queue (flint events dlq; redrive with flint events redrive).",
        move || {
            w.upgrade()
                .and_then(|d| d.queue().stats().ok())
                .map_or(0.0, |s| s.dead as f64)
        },
    );
    let counter = |name: &str, help: &str, pick: fn(&EventCounters) -> &AtomicU64| {
        let c = d.counters.clone();
        m.counter_fn(name, help, move || EventCounters::get(pick(&c)) as f64);
    };
    counter(
        "flint_event_retries_total",
        "Retries of asynchronous events after a function error.",
        |c| &c.retries,
    );
    counter(
        "flint_event_deferrals_total",
        "Attempts of asynchronous events put off by a throttle or a system error.",
        |c| &c.deferrals,
    );
    counter(
        "flint_event_dropped_by_age_total",
        "Asynchronous events that passed MaximumEventAgeInSeconds (dead-lettered).",
        |c| &c.dropped_by_age,
    );
    counter(
        "flint_event_dead_lettered_total",
        "Asynchronous events moved to the dead-letter queue.",
        |c| &c.dead_lettered,
    );
    let c = d.counters.clone();
    m.counter_vec_fn(
        "flint_event_destination_deliveries_total",
        "Destination records by destination (on_success, on_failure, dead_letter) and result (ok: queued for a function or POSTed with a 2xx answer; retry: a webhook POST failed and will be retried; error: not delivered).",
        move || {
            let mut v = Vec::new();
            for k in Kind::ALL {
                for o in Outcome::ALL {
                    v.push((
                        vec![label("destination", k.as_str()), label("result", o.as_str())],
                        c.deliveries(k, o) as f64,
                    ));
                }
            }
            v
        },
    );
}
