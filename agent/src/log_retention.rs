//! Function logs by age: at start and then hourly, files not written for longer than
//! `--function-log-retention-days` are removed (by the log writer thread, in order
//! with its appends: logs.rs). Size is bounded by rotation in logs.rs; together a
//! function's logs take at most twice `--function-log-max-bytes` and nothing older
//! than the retention plus an hour.

use crate::core::Agent;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How often expired files are looked for.
pub const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Starts the sweeper (none when retention by age is off); it ends with the agent.
pub fn spawn(agent: &Arc<Agent>) {
    let Some(max_age) = agent.config().function_log_retention else {
        return;
    };
    let weak: Weak<Agent> = Arc::downgrade(agent);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        loop {
            tick.tick().await;
            let Some(agent) = weak.upgrade() else {
                return;
            };
            agent.blocking(move |a| a.logs().expire(max_age)).await;
        }
    });
}
