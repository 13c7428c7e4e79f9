//! Secrets at rest: values sealed with envelope encryption under the operator key
//! ([`key`], [`envelope`]) before they reach the registry, and opened only to build a
//! sandbox's environment (or to answer a role-holder's read). See docs/ROLES.md.

pub mod envelope;
pub mod key;

pub use envelope::{open, seal, SealError};
pub use key::{KeyError, OperatorKey};

/// The sealing context of a function's secret environment variable.
pub fn env_context(function: &str, var: &str) -> String {
    format!("function/{function}/env/{var}")
}

/// The sealing context of a named secret.
pub fn secret_context(name: &str) -> String {
    format!("secret/{name}")
}
