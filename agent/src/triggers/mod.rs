//! Triggers: persistent objects that invoke a function when something happens.
//! Today: schedules (EventBridge's `rate(...)` and `cron(...)`).
//!
//! - `schedule_expr.rs`: schedule expressions, time zones, the next fire time;
//! - `cron.rs`: the six-field cron and its calendar rules.

#![allow(dead_code)] // wired to the trigger store in the next commit

mod cron;
pub mod schedule_expr;
