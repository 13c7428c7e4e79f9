//! Durable asynchronous invocations. An Event invocation is written to a queue
//! ([`EventQueue`]; the embedded default is SQLite, `<data dir>/events.db`, see
//! [`sqlite`]) and committed before the caller gets its 202; the [`dispatcher`] leases
//! due events and runs them through the normal invocation path with Lambda's retry
//! rules ([`policy`]), then hands the result to the function's destinations
//! ([`record`]). Events that exhausted their retries or expired stay in the queue in
//! state `dead` (the dead-letter queue) until redriven.

pub mod config;
pub mod counters;
pub mod dispatcher;
pub mod metrics;
pub mod persist;
pub mod policy;
pub mod record;
pub mod runner;
pub mod sqlite;
pub mod webhook;

pub use config::{ConfigError, EventConfig};

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// Where an event is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventState {
    /// Waiting for its first attempt.
    Queued,
    /// Leased by the dispatcher: an attempt is running.
    InFlight,
    /// Waiting for its next attempt (after a failure or a throttle).
    Retrying,
    /// Retries exhausted or maximum age passed: in the dead-letter queue.
    Dead,
}

impl EventState {
    /// The name stored and shown (`queued`, `in-flight`, `retrying`, `dead`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventState::Queued => "queued",
            EventState::InFlight => "in-flight",
            EventState::Retrying => "retrying",
            EventState::Dead => "dead",
        }
    }

    /// The state named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => EventState::Queued,
            "in-flight" => EventState::InFlight,
            "retrying" => EventState::Retrying,
            "dead" => EventState::Dead,
            _ => return None,
        })
    }
}

/// An event to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// The same on every attempt, so a function can de-duplicate.
    pub request_id: String,
    pub function: String,
    pub qualifier: String,
    pub payload: Vec<u8>,
    pub client_context: String,
    pub enqueued_ms: u64,
}

/// A queued event as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub request_id: String,
    pub function: String,
    pub qualifier: String,
    pub payload: Vec<u8>,
    pub client_context: String,
    pub enqueued_ms: u64,
    /// Attempts that ran the function (Lambda's approximateInvokeCount).
    pub attempts: u32,
    /// Attempts that could not run it (throttled, no sandbox): they do not count
    /// against MaximumRetryAttempts, only against the maximum event age.
    pub deferrals: u32,
    pub next_attempt_ms: u64,
    pub last_error: String,
    pub state: EventState,
}

/// Numbers for metrics and `flint events ls`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Events not yet finished: queued, in flight or retrying.
    pub depth: u64,
    /// Events in the dead-letter queue.
    pub dead: u64,
    /// Enqueue time of the oldest unfinished event.
    pub oldest_enqueued_ms: Option<u64>,
}

/// Queue failures.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The disk is full: the event cannot be kept, so it is refused (the message names
    /// no host path: it reaches clients)
    #[error("the event queue's disk is full, so the event cannot be stored durably and was not accepted; free space in flintd's data directory and retry")]
    Full { path: String },
    /// SQLite said no
    #[error("event queue {path}: {source}")]
    Sqlite {
        path: String,
        source: rusqlite::Error,
    },
    /// The schema could not be brought up to date
    #[error("event queue {path}: {source}")]
    Migration {
        path: String,
        source: Box<crate::schema::SchemaError>,
    },
    /// A stored row does not read back
    #[error("event queue {path}: corrupt row for event {request_id}: {what}")]
    Corrupt {
        path: String,
        request_id: String,
        what: String,
    },
    /// A request id that is already queued
    #[error("event {0} is already queued")]
    Duplicate(String),
    /// The blocking task that writes the queue failed
    #[error("event queue writer failed: {0}; the event was not accepted, retry")]
    Writer(String),
}

/// A durable queue of asynchronous invocations. The SQLite implementation is the
/// embedded default; a shared queue (e.g. PostgreSQL) can implement the same trait.
pub trait EventQueue: Send + Sync + 'static {
    /// Stores `e` in state queued, due now; durable when this returns.
    fn enqueue(&self, e: &NewEvent) -> Result<(), QueueError>;
    /// Marks the first due event (queued or retrying, next attempt at or before
    /// `now_ms`) in flight and returns it.
    fn lease_due(&self, now_ms: u64) -> Result<Option<Event>, QueueError>;
    /// The earliest next-attempt time of a waiting event.
    fn next_due_ms(&self) -> Result<Option<u64>, QueueError>;
    /// The event is finished: removes it.
    fn complete(&self, request_id: &str) -> Result<(), QueueError>;
    /// The event waits for another attempt at `at_ms`, with its counts and error;
    /// `for_capacity` when it was throttled (it may be [`EventQueue::promote`]d).
    fn retry_at(
        &self,
        request_id: &str,
        at_ms: u64,
        attempts: u32,
        deferrals: u32,
        error: &str,
        for_capacity: bool,
    ) -> Result<(), QueueError>;
    /// A run of `function` ended, so capacity freed: the first of its events waiting
    /// for capacity becomes due at `now_ms` instead of at the end of its backoff.
    /// Returns whether there was one.
    fn promote(&self, function: &str, now_ms: u64) -> Result<bool, QueueError>;
    /// Moves the event to the dead-letter queue.
    fn dead_letter(&self, request_id: &str, attempts: u32, error: &str) -> Result<(), QueueError>;
    /// Events of `function` (all functions when None) in `states` (all when empty),
    /// oldest first, at most `limit`.
    fn list(
        &self,
        function: Option<&str>,
        states: &[EventState],
        limit: u32,
    ) -> Result<Vec<Event>, QueueError>;
    /// Queues the dead events of `function` again with fresh counts and age;
    /// returns how many.
    fn redrive(&self, function: &str, now_ms: u64) -> Result<u64, QueueError>;
    /// Depth, dead-letter count and the oldest unfinished event.
    fn stats(&self) -> Result<QueueStats, QueueError>;
    /// Puts events left in flight by a previous run back in the queue (delivery is at
    /// least once); returns how many.
    fn recover(&self) -> Result<u64, QueueError>;
}

/// Per-function event invoke configurations.
pub trait EventConfigs: Send + Sync + 'static {
    /// The function's configuration, if one was put.
    fn get_config(&self, function: &str) -> Result<Option<EventConfig>, QueueError>;
    /// Stores (replacing) the function's configuration.
    fn put_config(&self, function: &str, c: &EventConfig) -> Result<(), QueueError>;
    /// Removes it; returns whether there was one.
    fn delete_config(&self, function: &str) -> Result<bool, QueueError>;
    /// The configurations of functions whose name sorts after `after` (all when
    /// empty), by name, at most `limit`.
    fn list_configs(
        &self,
        after: &str,
        limit: u32,
    ) -> Result<Vec<(String, EventConfig)>, QueueError>;
}
