//! RabbitMQ as a [`Source`]: one AMQP 0-9-1 connection (lapin, on tokio) and channel
//! per session, `basic.qos` prefetch sized to the batches in flight, a consumer with
//! manual acknowledgements, and a passive `queue.declare` for the backlog.

use super::event::{batch_event, queue_key, record};
use super::source::{Message, Probe, Session, Settle, Source, SourceError};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::uri::AMQPUri;
use lapin::{Channel, Connection, ConnectionProperties, Consumer};
use serde_json::Value;
use tokio_stream::StreamExt;

/// A RabbitMQ queue.
pub struct Rmq {
    pub uri: AMQPUri,
    pub queue: String,
    /// The event's `eventSourceArn`.
    pub arn: String,
    /// The event's `QUEUE::VHOST` key.
    pub key: String,
}

impl Rmq {
    pub fn new(uri: AMQPUri, queue: String, arn: String) -> Self {
        let key = queue_key(&queue, &uri.vhost);
        Self {
            uri,
            queue,
            arn,
            key,
        }
    }
}

/// A consuming channel.
pub struct RmqSession {
    // Kept so the connection lives as long as the session (dropping it closes it).
    _conn: Connection,
    channel: Channel,
    consumer: Consumer,
    queue: String,
}

/// The acknowledgement handle of one delivery.
pub struct RmqSettle(lapin::Acker);

/// The backlog reader: a passive declare on the session's channel.
#[derive(Clone)]
pub struct RmqProbe {
    channel: Channel,
    queue: String,
}

impl Source for Rmq {
    type Session = RmqSession;

    async fn connect(&self, prefetch: u16) -> Result<RmqSession, SourceError> {
        let err = |e: lapin::Error| SourceError::Connect {
            queue: self.queue.clone(),
            reason: e.to_string(),
        };
        let conn = Connection::connect_uri(self.uri.clone(), ConnectionProperties::default())
            .await
            .map_err(err)?;
        let channel = conn.create_channel().await.map_err(err)?;
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await
            .map_err(err)?;
        let consumer = channel
            .basic_consume(
                self.queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(err)?;
        Ok(RmqSession {
            _conn: conn,
            channel,
            consumer,
            queue: self.queue.clone(),
        })
    }

    fn event(&self, records: Vec<Value>) -> Value {
        batch_event(&self.arn, &self.key, records)
    }

    fn mark_redelivered(&self, record: &mut Value) {
        record["redelivered"] = Value::Bool(true);
    }
}

impl Session for RmqSession {
    type Settle = RmqSettle;
    type Probe = RmqProbe;

    async fn next(&mut self) -> Result<Message<RmqSettle>, SourceError> {
        match self.consumer.next().await {
            Some(Ok(d)) => {
                let record = record(&d.properties, d.redelivered, &d.data);
                let size = record.to_string().len() + 1;
                Ok(Message {
                    record,
                    size,
                    settle: RmqSettle(d.acker),
                })
            }
            Some(Err(e)) => Err(SourceError::Lost(e.to_string())),
            None => Err(SourceError::Cancelled),
        }
    }

    fn probe(&self) -> RmqProbe {
        RmqProbe {
            channel: self.channel.clone(),
            queue: self.queue.clone(),
        }
    }
}

impl Probe for RmqProbe {
    async fn depth(&self) -> Option<u64> {
        let q = self
            .channel
            .queue_declare(
                self.queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .ok()?;
        Some(u64::from(q.message_count()))
    }
}

impl Settle for RmqSettle {
    async fn ack(self) -> Result<(), SourceError> {
        self.0
            .ack(BasicAckOptions::default())
            .await
            .map(drop)
            .map_err(|e| SourceError::Settle(e.to_string()))
    }

    async fn requeue(self) -> Result<(), SourceError> {
        self.0
            .nack(BasicNackOptions {
                requeue: true,
                ..Default::default()
            })
            .await
            .map(drop)
            .map_err(|e| SourceError::Settle(e.to_string()))
    }

    async fn reject(self) -> Result<(), SourceError> {
        self.0
            .reject(BasicRejectOptions { requeue: false })
            .await
            .map(drop)
            .map_err(|e| SourceError::Settle(e.to_string()))
    }
}
