//! The agent's gauges, read at scrape time. Each is one line: a name, its help and how
//! to read it from a [`Source`] (the agent, held weakly, so metrics never keep an agent
//! alive).

use super::Metrics;
use crate::pools::key::PoolStatus;
use flint_proto::v1::SandboxCounts;
use std::sync::Arc;

/// What the gauges read; the agent implements it.
pub trait Source: Send + Sync + 'static {
    /// Invocations running now.
    fn concurrency_in_use(&self) -> u32;
    /// Invocations the agent runs at once.
    fn concurrency_limit(&self) -> u32;
    /// Warm instances of functions, idle.
    fn idle_instances(&self) -> usize;
    /// Sandboxes by state.
    fn sandboxes(&self) -> SandboxCounts;
    /// The warm pools' numbers.
    fn pools(&self) -> Vec<PoolStatus>;
    /// Invocation records the meter could not store.
    fn metering_dropped(&self) -> u64;
}

/// A scrape-time reader of `agent`; 0 once the agent is gone.
pub fn read<S: Source>(
    agent: &Arc<S>,
    f: impl Fn(&S) -> f64 + Send + Sync + 'static,
) -> impl Fn() -> f64 + Send + Sync + 'static {
    let weak = Arc::downgrade(agent);
    move || weak.upgrade().map(|a| f(&a)).unwrap_or(0.0)
}

/// Registers the agent's gauges on `m`.
pub fn register<S: Source>(m: &Metrics, agent: &Arc<S>) {
    m.gauge(
        "flint_concurrency_in_use",
        "Invocations running now.",
        read(agent, |a| f64::from(a.concurrency_in_use())),
    );
    m.gauge(
        "flint_concurrency_limit",
        "Invocations the agent runs at once (--concurrency-limit).",
        read(agent, |a| f64::from(a.concurrency_limit())),
    );
    m.gauge(
        "flint_idle_instances",
        "Warm instances of functions, idle.",
        read(agent, |a| a.idle_instances() as f64),
    );
    let weak = Arc::downgrade(agent);
    m.gauge_vec(
        "flint_sandboxes",
        "Sandboxes by state: starting, pool_ready (warm pool, no function yet), idle, busy.",
        move || {
            let Some(a) = weak.upgrade() else {
                return Vec::new();
            };
            let s = a.sandboxes();
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
        read(agent, |a| a.metering_dropped() as f64),
    );
}

/// One gauge sample per warm pool, labelled by runtime and memory size.
fn pool_gauge<S: Source>(
    agent: &std::sync::Weak<S>,
    value: impl Fn(&PoolStatus) -> u32,
) -> Vec<(super::Labels, f64)> {
    let Some(a) = agent.upgrade() else {
        return Vec::new();
    };
    a.pools()
        .iter()
        .map(|p| {
            (
                vec![
                    ("runtime".to_string(), p.key.runtime.clone()),
                    ("memory_mb".to_string(), p.key.memory_mb.to_string()),
                    ("network".to_string(), p.key.network.to_string()),
                ],
                f64::from(value(p)),
            )
        })
        .collect()
}
