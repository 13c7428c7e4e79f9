//! Lambda's Amazon MQ for RabbitMQ event (`aws:rmq`): one record per message, with
//! the message's `basicProperties`, `redelivered` and base64 `data`, grouped under
//! `rmqMessagesByQueue["QUEUE::VHOST"]`.

use base64::Engine;
use chrono::{DateTime, Utc};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::BasicProperties;
use serde_json::{json, Map, Value};

/// The event source ARN: `arn:aws:mq:REGION:ACCOUNT:broker:TRIGGER:HOST` (Lambda's is
/// the Amazon MQ broker's ARN; Flint's broker is named by the trigger and its host).
pub fn source_arn(region: &str, account: &str, trigger: &str, host: &str) -> String {
    format!("arn:aws:mq:{region}:{account}:broker:{trigger}:{host}")
}

/// The key of the queue's records: `QUEUE::VHOST` (Lambda: `pizzaQueue::/`).
pub fn queue_key(queue: &str, vhost: &str) -> String {
    format!("{queue}::{vhost}")
}

/// The record of one message.
pub fn record(props: &BasicProperties, redelivered: bool, data: &[u8]) -> Value {
    let s = |v: &Option<ShortString>| v.as_ref().map(|s| s.as_str().to_string());
    json!({
        "basicProperties": {
            "contentType": s(props.content_type()),
            "contentEncoding": s(props.content_encoding()),
            "headers": props.headers().as_ref().map(table),
            "deliveryMode": props.delivery_mode(),
            "priority": props.priority(),
            "correlationId": s(props.correlation_id()),
            "replyTo": s(props.reply_to()),
            "expiration": s(props.expiration()),
            "messageId": s(props.message_id()),
            "timestamp": props.timestamp().map(java_date),
            "type": s(props.kind()),
            "userId": s(props.user_id()),
            "appId": s(props.app_id()),
            "clusterId": s(props.cluster_id()),
            "bodySize": data.len(),
        },
        "redelivered": redelivered,
        "data": base64::engine::general_purpose::STANDARD.encode(data),
    })
}

/// The event for one batch of records from one queue.
pub fn batch_event(arn: &str, key: &str, records: Vec<Value>) -> Value {
    json!({
        "eventSource": "aws:rmq",
        "eventSourceArn": arn,
        "rmqMessagesByQueue": { key: records },
    })
}

/// An AMQP timestamp (seconds) as Lambda writes it: Java's default date format in
/// UTC, e.g. `Jan 1, 1970, 12:33:41 AM`.
fn java_date(secs: u64) -> String {
    DateTime::<Utc>::from_timestamp(secs.min(i64::MAX as u64) as i64, 0)
        .unwrap_or_default()
        .format("%b %-d, %Y, %-I:%M:%S %p")
        .to_string()
}

/// Header tables as Lambda shows them: strings as `{"bytes": [...]}`, numbers and
/// booleans as themselves, nested tables and arrays likewise.
fn table(t: &FieldTable) -> Value {
    Value::Object(
        t.inner()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), value(v)))
            .collect::<Map<_, _>>(),
    )
}

fn value(v: &AMQPValue) -> Value {
    let bytes = |b: &[u8]| json!({ "bytes": b });
    match v {
        AMQPValue::Boolean(b) => json!(b),
        AMQPValue::ShortShortInt(n) => json!(n),
        AMQPValue::ShortShortUInt(n) => json!(n),
        AMQPValue::ShortInt(n) => json!(n),
        AMQPValue::ShortUInt(n) => json!(n),
        AMQPValue::LongInt(n) => json!(n),
        AMQPValue::LongUInt(n) => json!(n),
        AMQPValue::LongLongInt(n) => json!(n),
        AMQPValue::Float(n) => json!(n),
        AMQPValue::Double(n) => json!(n),
        AMQPValue::DecimalValue(d) => json!(f64::from(d.value) / 10f64.powi(i32::from(d.scale))),
        AMQPValue::ShortString(s) => json!(s.as_str()),
        AMQPValue::LongString(s) => bytes(s.as_bytes()),
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(value).collect()),
        AMQPValue::Timestamp(t) => json!(t),
        AMQPValue::FieldTable(t) => table(t),
        AMQPValue::ByteArray(b) => bytes(b.as_slice()),
        AMQPValue::Void => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::{FieldTable, LongString};

    #[test]
    fn a_message_has_lambdas_rmq_shape() {
        let mut headers = FieldTable::default();
        headers.insert(
            "header1".into(),
            AMQPValue::LongString(LongString::from("value1")),
        );
        headers.insert("numberInHeader".into(), AMQPValue::LongInt(10));
        let props = BasicProperties::default()
            .with_content_type("text/plain".into())
            .with_headers(headers)
            .with_delivery_mode(1)
            .with_priority(34)
            .with_expiration("60000".into())
            .with_timestamp(2021)
            .with_user_id("AIDACKCEVSQ6C2EXAMPLE".into());
        let data = br#"{"timeout":0,"data":"CZrmf0Gw8Ov4bqLQxD4E"}"#;
        let r = record(&props, false, data);
        let arn = source_arn("us-west-2", "111122223333", "pizzaBroker", "b-1");
        let ev = batch_event(&arn, &queue_key("pizzaQueue", "/"), vec![r]);
        assert_eq!(
            ev,
            json!({
                "eventSource": "aws:rmq",
                "eventSourceArn": "arn:aws:mq:us-west-2:111122223333:broker:pizzaBroker:b-1",
                "rmqMessagesByQueue": {
                    "pizzaQueue::/": [{
                        "basicProperties": {
                            "contentType": "text/plain",
                            "contentEncoding": null,
                            "headers": {
                                "header1": {"bytes": [118, 97, 108, 117, 101, 49]},
                                "numberInHeader": 10
                            },
                            "deliveryMode": 1,
                            "priority": 34,
                            "correlationId": null,
                            "replyTo": null,
                            "expiration": "60000",
                            "messageId": null,
                            "timestamp": "Jan 1, 1970, 12:33:41 AM",
                            "type": null,
                            "userId": "AIDACKCEVSQ6C2EXAMPLE",
                            "appId": null,
                            "clusterId": null,
                            "bodySize": 43
                        },
                        "redelivered": false,
                        "data": "eyJ0aW1lb3V0IjowLCJkYXRhIjoiQ1pybWYwR3c4T3Y0YnFMUXhENEUifQ=="
                    }]
                }
            })
        );
    }

    #[test]
    fn binary_bodies_and_empty_properties() {
        let r = record(&BasicProperties::default(), true, &[0, 255, 7]);
        assert_eq!(r["data"], "AP8H");
        assert_eq!(r["redelivered"], true);
        assert_eq!(r["basicProperties"]["headers"], Value::Null);
        assert_eq!(r["basicProperties"]["bodySize"], 3);
    }
}
