//! EventBridge's Scheduled Event, the payload a schedule trigger invokes with.

use chrono::{DateTime, SecondsFormat, Utc};

/// The event for one fire: `time` is the scheduled time (RFC 3339, whole seconds
/// when it is on a second, as EventBridge writes it), `resources` the trigger's ARN.
pub fn scheduled_event(
    id: uuid::Uuid,
    account: &str,
    region: &str,
    trigger_arn: &str,
    scheduled: DateTime<Utc>,
) -> Vec<u8> {
    let time = if scheduled.timestamp_subsec_millis() == 0 {
        scheduled.to_rfc3339_opts(SecondsFormat::Secs, true)
    } else {
        scheduled.to_rfc3339_opts(SecondsFormat::Millis, true)
    };
    serde_json::json!({
        "version": "0",
        "id": id.to_string(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": time,
        "region": region,
        "resources": [trigger_arn],
        "detail": {},
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_eventbridge_shape() {
        let t = DateTime::parse_from_rfc3339("2026-12-06T10:05:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let id = uuid::Uuid::nil();
        let v: serde_json::Value = serde_json::from_slice(&scheduled_event(
            id,
            "123456789012",
            "eu-west-1",
            "arn:aws:events:eu-west-1:123456789012:rule/r",
            t,
        ))
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "version": "0",
                "id": "00000000-0000-0000-0000-000000000000",
                "detail-type": "Scheduled Event",
                "source": "aws.events",
                "account": "123456789012",
                "time": "2026-12-06T10:05:00Z",
                "region": "eu-west-1",
                "resources": ["arn:aws:events:eu-west-1:123456789012:rule/r"],
                "detail": {}
            })
        );
    }
}
