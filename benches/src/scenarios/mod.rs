//! The scenarios: each measures Flint and its baselines in the same run and returns a
//! [`Scenario`](crate::report::Scenario). Shared state (the agent's client, the code
//! bundle, the empty-pool samples that the breakdown reuses) lives in [`Ctx`].

pub mod breakdown;
pub mod cold;
pub mod cold_runtimes;
pub mod density;
pub mod events;
pub mod http;
pub mod isolation_cost;
pub mod microvm;
pub mod microvm_snapshot;
pub mod rest;
pub mod throughput;
mod vm_fleet;
pub mod warm;

use crate::agent::AgentError;
use crate::baseline::{BaselineError, Baselines};
use crate::cli::Config;
use crate::echo::EchoError;
use crate::procs::ProcError;
use crate::rng::Rng;
use flint_proto::v1::InvokeTimings;
use std::time::Duration;

/// Errors that end a scenario.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// flintd failed
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// A baseline failed
    #[error(transparent)]
    Baseline(#[from] BaselineError),
    /// The echo baseline failed
    #[error(transparent)]
    Echo(#[from] EchoError),
    /// Connecting a client failed
    #[error(transparent)]
    Client(#[from] flint_agent::client::ClientError),
    /// A measured process failed
    #[error(transparent)]
    Proc(#[from] ProcError),
    /// The baselines could not be set up
    #[error("baselines unavailable: {0}")]
    NoBaselines(String),
    /// A scenario this one builds on did not produce samples
    #[error("needs the {0} scenario's samples, which this run does not have")]
    Needs(&'static str),
    /// The system under test answered something unexpected
    #[error("{0}")]
    Unexpected(String),
}

/// The empty-pool cold starts, kept for the breakdown and the pool-hit ratios.
#[derive(Debug, Clone, Default)]
pub struct ColdData {
    /// Client-side latency (ms) and the agent's phase timings, per cold start.
    pub samples: Vec<(f64, InvokeTimings)>,
    pub python_pass_ms: Vec<f64>,
    pub bwrap_pass_ms: Vec<f64>,
    pub bwrap_hello_ms: Vec<f64>,
}

/// State shared by the scenarios of one run.
pub struct Ctx {
    pub cfg: Config,
    pub rng: Rng,
    /// Prefix of every function name this run creates.
    pub tag: String,
    /// The hello code bundle.
    pub code: Vec<u8>,
    pub baselines: Result<Baselines, String>,
    pub cold: Option<ColdData>,
}

impl Ctx {
    /// The baselines, or why they are missing.
    pub fn baselines(&self) -> Result<&Baselines, ScenarioError> {
        self.baselines
            .as_ref()
            .map_err(|e| ScenarioError::NoBaselines(e.clone()))
    }

    /// A function name unique to this run.
    pub fn name(&self, what: &str, i: usize) -> String {
        format!("{}-{what}-{i}", self.tag)
    }
}

/// Milliseconds of a duration.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Milliseconds of a nanosecond count.
pub fn ns_ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}
