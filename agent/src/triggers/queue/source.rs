//! The interface between the consumer (batching, invoking, retrying) and a message
//! broker. RabbitMQ (`rmq.rs`) is the one implementation; Kafka or NATS sources
//! implement the same three traits with their own event shape.

use serde_json::Value;
use std::future::Future;

/// A broker failure: the session is over (the consumer reconnects with backoff and
/// the broker redelivers what was not acknowledged).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Could not connect, open the channel or start consuming
    #[error("cannot consume {queue}: {reason}")]
    Connect { queue: String, reason: String },
    /// The connection or channel closed while consuming
    #[error("connection to the broker lost: {0}")]
    Lost(String),
    /// The broker cancelled the consumer (queue deleted)
    #[error("the broker cancelled the consumer (was the queue deleted?)")]
    Cancelled,
    /// An acknowledgement could not be sent (the message will be redelivered)
    #[error("could not settle a message: {0}")]
    Settle(String),
}

/// Acknowledges or gives back one message.
pub trait Settle: Send + Sync + 'static {
    /// The function handled it: the broker forgets it.
    fn ack(self) -> impl Future<Output = Result<(), SourceError>> + Send;
    /// Not handled: the broker delivers it again (to this or another consumer).
    fn requeue(self) -> impl Future<Output = Result<(), SourceError>> + Send;
    /// Given up: the broker dead-letters it if the queue says how, else drops it.
    fn reject(self) -> impl Future<Output = Result<(), SourceError>> + Send;
}

/// One message received, not yet settled.
pub struct Message<S> {
    /// The message as the event's record (source-specific shape).
    pub record: Value,
    /// The record's size in the event, in bytes (for the 6 MB payload limit).
    pub size: usize,
    pub settle: S,
}

/// Reads the queue's backlog, while the session consumes.
pub trait Probe: Clone + Send + Sync + 'static {
    /// Messages waiting in the queue (not delivered yet), when the broker says.
    fn depth(&self) -> impl Future<Output = Option<u64>> + Send;
}

/// A live consumer on one queue.
pub trait Session: Send + 'static {
    type Settle: Settle;
    type Probe: Probe;
    /// The next delivery (waits for one); an error ends the session.
    fn next(&mut self) -> impl Future<Output = Result<Message<Self::Settle>, SourceError>> + Send;
    fn probe(&self) -> Self::Probe;
}

/// A broker and queue to consume.
pub trait Source: Send + Sync + 'static {
    type Session: Session;
    /// Connects and starts consuming with at most `prefetch` unacknowledged
    /// deliveries outstanding.
    fn connect(
        &self,
        prefetch: u16,
    ) -> impl Future<Output = Result<Self::Session, SourceError>> + Send;
    /// The invocation event for a batch of records.
    fn event(&self, records: Vec<Value>) -> Value;
    /// Marks a record as delivered again (a retry of its batch).
    fn mark_redelivered(&self, record: &mut Value);
}
