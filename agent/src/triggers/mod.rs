//! Triggers: persistent objects that invoke a function when something happens:
//! schedules (EventBridge's `rate(...)` and `cron(...)`), HTTP function URLs (`http/`,
//! its own folder), file events (`files/`) and message queues (`queue/`: RabbitMQ
//! event source mappings).
//!
//! - `schedule_expr.rs`: schedule expressions, time zones, the next fire time;
//! - `cron.rs`: the six-field cron and its calendar rules;
//! - `model.rs`: the stored trigger, its errors, name and ARN;
//! - `store.rs`: the registry's `triggers` table;
//! - `manage.rs`: create, read, list, enable/disable, delete (on the agent);
//! - `scheduler.rs`: the task that fires schedules (claim in the registry, then an
//!   Event invocation), through the `Host` trait that `host.rs` implements for the
//!   agent; `event.rs`: EventBridge's Scheduled Event;
//! - `state.rs`: the scheduler's wake-up and per-trigger counters;
//! - `per_trigger.rs`: numbers kept per trigger and exported to Prometheus (the
//!   schedule, file-event and queue counters).

mod cron;
pub mod event;
pub mod files;
mod host;
pub mod http;
pub mod manage;
pub mod model;
mod per_trigger;
pub mod queue;
pub mod schedule_expr;
pub mod scheduler;
pub mod state;
pub mod store;
