//! What a sandbox backend can run, declared by the backend (`SandboxBackend::limits`)
//! and checked where a setting enters: CreateFunction, UpdateFunctionConfiguration
//! (gRPC and the REST API, `validate::memory_on`) and `--pool-warm` at start-up. A
//! function the backend cannot run is refused there, naming the backend's limit,
//! instead of being accepted and failing on every invocation.

use crate::limits::MEMORY_MAX_MB;

/// One backend's limits, beyond Lambda's own (`crate::limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendLimits {
    /// The backend's name in messages ("namespace", "microvm").
    pub backend: &'static str,
    /// Largest memory size a sandbox can have, in MB.
    pub max_memory_mb: u32,
}

impl BackendLimits {
    /// A backend bounded only by Lambda's limits.
    pub const fn lambda(backend: &'static str) -> Self {
        Self {
            backend,
            max_memory_mb: MEMORY_MAX_MB,
        }
    }
}
