//! File-event triggers: a watched host directory whose changes invoke a function
//! with S3's event notification record, and an HTTP endpoint for the S3-style bucket
//! notifications of object stores.
//!
//! - `spec.rs`: the trigger's settings and their checks;
//! - `record.rs`: S3's event record (keys, eTags, sequencers);
//! - `watch.rs`: the inotify thread of one directory;
//! - `deliver.rs`: changes to records to durable Event invocations, rescans
//!   (`deliver_tests.rs` drives it against a recording host);
//! - `supervisor.rs`: keeps a watcher running per enabled trigger;
//! - `mark.rs`: the high-water mark that a restart rescans from;
//! - `mounts.rs`: the read-only bind mount in the function's sandboxes;
//! - `webhook.rs`: `POST /flint/s3-notifications/{trigger}`;
//! - `state.rs`: the wake-up and per-trigger counters.

pub mod deliver;
#[cfg(test)]
mod deliver_tests;
mod mark;
pub mod mounts;
pub mod record;
pub mod spec;
pub mod state;
pub mod supervisor;
pub mod watch;
pub mod webhook;
