//! flintd: Flint's host agent. It stores functions (SQLite + content-addressed code
//! bundles), keeps their instances in sandboxes, and serves the `flint.v1` gRPC API.
//! See docs/ARCHITECTURE.md for the path of one invocation through these modules.

pub mod api;
pub mod client;
pub mod code;
pub mod config;
pub mod config_file;
pub(crate) mod conn;
pub mod core;
pub mod event_admin;
pub mod event_runner;
pub mod events;
pub mod functions;
pub mod instance;
pub mod invoke;
pub mod lambda_api;
pub mod limiter;
pub mod limits;
pub mod logs;
pub mod metering;
pub mod metrics;
pub mod node;
pub mod observe;
pub mod occupancy;
pub mod payload;
pub mod pool;
pub mod pool_key;
pub mod runtimes;
pub mod sandbox;
pub mod server;
pub mod socket_perms;
pub mod start_error;
pub mod start_gate;
pub mod store;
pub mod timefmt;
pub mod validate;
pub mod warm_pool;
