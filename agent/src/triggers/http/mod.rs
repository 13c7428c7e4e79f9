//! HTTP function URLs: flintd's `--http-listen` listener, where each HTTP trigger
//! has a URL (`http://ADDR/NAME/...`, or any Host `NAME.anything`), and each
//! request becomes Lambda's function URL event (payload format 2.0), invoked
//! synchronously; the function's result maps back to the HTTP response as Lambda's
//! function URLs map it.
//!
//! - `spec.rs`: the trigger's settings (the `spec` column) and its URL;
//! - `event.rs`: the request as the 2.0 event;
//! - `response.rs`: the function's result (or the invocation's failure) as the
//!   HTTP response;
//! - `routes.rs`: which trigger a request is for (path prefix or Host), from a
//!   cache of the registry's HTTP triggers;
//! - `stats.rs`: per-trigger request and error counters (Prometheus) and the last
//!   error in the registry;
//! - `server.rs`: the listener (HTTP/1.1 with keep-alive and HTTP/2, optionally
//!   TLS), one request from head to response.

pub mod event;
pub mod response;
pub mod routes;
pub mod server;
pub mod spec;
pub mod stats;
