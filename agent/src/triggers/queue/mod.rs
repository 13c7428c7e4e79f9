//! Message-queue triggers (event source mappings): a consumer per enabled trigger
//! reads batches from a broker queue and invokes the function synchronously with
//! each, acknowledging only after it succeeds (Lambda's Amazon MQ semantics).
//!
//! - `spec.rs`: the trigger's settings and their checks;
//! - `source.rs`: the broker interface (connect, next message, settle, backlog);
//! - `rmq.rs`: RabbitMQ behind it (lapin); `event.rs`: the `aws:rmq` event;
//! - `consumer.rs`: batching, invoking, retries, dead-lettering, throttle pauses,
//!   concurrency by backlog (`consumer_tests.rs`: its rules against a scripted
//!   broker and invoker);
//! - `host.rs`: the agent's invocations and the registry's last fire and error;
//! - `stats.rs`: per-trigger Prometheus metrics;
//! - `supervisor.rs`: one consumer per enabled trigger, reconnecting with backoff.

pub mod consumer;
#[cfg(test)]
mod consumer_tests;
pub mod event;
pub mod host;
pub mod rmq;
pub mod source;
pub mod spec;
pub mod stats;
pub mod supervisor;

pub use spec::{QueueSpec, SpecError};
