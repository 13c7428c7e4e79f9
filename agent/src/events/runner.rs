//! The narrow interface the dispatcher runs events through: "invoke this function
//! synchronously with this request id". The agent implements it over its normal
//! invocation path; unit tests implement it with a script.

use super::policy::AttemptResult;
use super::Event;
use std::future::Future;
use std::pin::Pin;

/// A boxed attempt.
pub type Attempt<'a> = Pin<Box<dyn Future<Output = AttemptResult> + Send + 'a>>;

/// Runs attempts of events.
pub trait Runner: Send + Sync + 'static {
    /// Runs `e` once (its `attempt`th run, 1-based, for the logs).
    fn run<'a>(&'a self, e: &'a Event, attempt: u32) -> Attempt<'a>;
    /// False while the node drains: no event is leased then.
    fn accepting(&self) -> bool;
    /// The ARN of `function` (for destination records).
    fn arn(&self, function: &str) -> String;
    /// Whether `name` is a function now (a destination must be).
    fn exists(&self, name: &str) -> bool;
}
