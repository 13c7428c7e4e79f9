//! flintd: Flint's host agent. It stores functions (SQLite + content-addressed code
//! bundles), keeps their instances in sandboxes, and serves the `flint.v1` gRPC API.
//! See docs/ARCHITECTURE.md for the path of one invocation through these modules.
//!
//! Public only what the binaries, `integration/` and `benches/` use (the client, the
//! configuration, opening and serving an agent, a sandbox backend to open it with,
//! the REST API's key file and SigV4, metering's CLI formatting); the rest is
//! crate-private so the compiler finds dead code.

pub(crate) mod accept;
pub mod access_policy;
pub(crate) mod api;
pub mod client;
pub(crate) mod code;
pub mod config;
pub mod config_file;
pub mod core;
pub(crate) mod disk;
pub(crate) mod event_admin;
pub(crate) mod events;
#[cfg(test)]
mod fake;
pub(crate) mod functions;
pub(crate) mod invoke;
pub mod lambda_api;
pub(crate) mod layers;
pub(crate) mod limiter;
pub(crate) mod limits;
pub(crate) mod log_query;
pub(crate) mod log_retention;
pub(crate) mod log_tail;
pub(crate) mod logs;
pub mod metering;
pub(crate) mod metrics;
pub(crate) mod node;
pub(crate) mod observe;
pub(crate) mod payload;
pub(crate) mod pools;
#[cfg(test)]
mod release_fixtures_tests;
pub(crate) mod roles;
pub(crate) mod runtimes;
pub mod sandbox;
pub(crate) mod schema;
pub(crate) mod secrets;
pub mod server;
pub(crate) mod socket_perms;
pub(crate) mod start_gate;
pub(crate) mod store;
pub mod timefmt;
pub(crate) mod triggers;
pub(crate) mod unpacked;
pub(crate) mod validate;
pub(crate) mod versions;
