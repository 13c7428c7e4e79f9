//! Why a sandbox could not become a ready instance, and where a cold start's time
//! went: shared by the host side of the protocol (`conn`), instances and the warm pool.

use crate::sandbox::SandboxError;
use std::time::Duration;

/// Why an instance could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The sandbox could not be made
    #[error("could not create a sandbox: {0}")]
    Sandbox(#[from] SandboxError),
    /// flint-init spoke an unexpected protocol
    #[error("flint-init protocol error: {0}")]
    Protocol(String),
    /// The runtime failed during its init phase (a function error, not an agent error)
    #[error("runtime init failed: {error_type}")]
    Init {
        error_type: String,
        payload: Vec<u8>,
        log: Vec<u8>,
    },
    /// Init did not finish in time
    #[error("the runtime did not initialise within {0:?}")]
    Timeout(Duration, Vec<u8>),
}

/// Where a cold start's time went, in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StartTimings {
    /// Sandbox creation until Hello.
    pub sandbox_ns: u64,
    /// flint-init's own start until Hello (as it measured).
    pub init_boot_ns: u64,
    /// Unpacking the code.
    pub code_load_ns: u64,
    /// Configure until the runtime's first /next.
    pub runtime_init_ns: u64,
}
