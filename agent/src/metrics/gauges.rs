//! The agent's gauges, read at scrape time. Each is one line: a name, its help and how
//! to read it from the [`Agent`] (held weakly, so metrics never keep an agent alive).

use super::Metrics;
use crate::core::Agent;
use std::sync::Arc;

/// A scrape-time reader of `agent`; 0 once the agent is gone.
pub fn read(
    agent: &Arc<Agent>,
    f: impl Fn(&Agent) -> f64 + Send + Sync + 'static,
) -> impl Fn() -> f64 + Send + Sync + 'static {
    let weak = Arc::downgrade(agent);
    move || weak.upgrade().map(|a| f(&a)).unwrap_or(0.0)
}

/// Registers the agent's gauges on `m`.
pub fn register(m: &Metrics, agent: &Arc<Agent>) {
    m.gauge(
        "flint_concurrency_in_use",
        "Invocations running now.",
        read(agent, |a| f64::from(a.limiter.in_use())),
    );
    m.gauge(
        "flint_concurrency_limit",
        "Invocations the agent runs at once (--concurrency-limit).",
        read(agent, |a| f64::from(a.limiter.agent_limit())),
    );
    m.gauge(
        "flint_idle_instances",
        "Warm instances of functions, idle.",
        read(agent, |a| a.pool.idle_count() as f64),
    );
    m.counter_fn(
        "flint_metering_dropped_records_total",
        "Invocation records the meter could not store (queue full, stopping, or a database error).",
        read(agent, |a| a.meter.dropped() as f64),
    );
}
