//! The gRPC front end: thin conversions between `flint.v1` messages and the agent's
//! core operations. Errors become `Status` in one place (status.rs).

pub mod access;
pub mod auth;
pub mod events;
pub mod functions;
pub mod invocations;
pub mod layers;
pub mod logs;
pub mod node;
pub mod roles;
pub mod status;
pub mod triggers;
pub mod usage;
pub mod versions;
