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
    let weak = Arc::downgrade(agent);
    m.gauge_vec(
        "flint_sandboxes",
        "Sandboxes by state: starting, pool_ready (warm pool, no function yet), idle, busy.",
        move || {
            let Some(a) = weak.upgrade() else {
                return Vec::new();
            };
            let s = a.capacity().sandboxes.unwrap_or_default();
            [
                ("starting", s.starting),
                ("pool_ready", s.pool_ready),
                ("idle", s.idle),
                ("busy", s.busy),
            ]
            .into_iter()
            .map(|(state, n)| (vec![("state".to_string(), state.to_string())], f64::from(n)))
            .collect()
        },
    );
    let weak = Arc::downgrade(agent);
    m.gauge_vec(
        "flint_pool_sandboxes",
        "Warm pool sandboxes ready, per runtime and memory size.",
        move || pool_gauge(&weak, |p| p.ready),
    );
    let weak = Arc::downgrade(agent);
    m.gauge_vec(
        "flint_pool_target",
        "What each warm pool currently aims for, from recent demand.",
        move || pool_gauge(&weak, |p| p.target),
    );
    m.counter_fn(
        "flint_metering_dropped_records_total",
        "Invocation records the meter could not store (queue full, stopping, or a database error).",
        read(agent, |a| a.meter.dropped() as f64),
    );
}

/// One gauge sample per warm pool, labelled by runtime and memory size.
fn pool_gauge(
    agent: &std::sync::Weak<Agent>,
    value: impl Fn(&crate::warm_pool::PoolStatus) -> u32,
) -> Vec<(super::Labels, f64)> {
    let Some(a) = agent.upgrade() else {
        return Vec::new();
    };
    a.warm_pool
        .status()
        .iter()
        .map(|p| {
            (
                vec![
                    ("runtime".to_string(), p.key.runtime.clone()),
                    ("memory_mb".to_string(), p.key.memory_mb.to_string()),
                ],
                f64::from(value(p)),
            )
        })
        .collect()
}
