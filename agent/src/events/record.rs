//! Lambda's destination record: the JSON document an on-success or on-failure
//! destination receives as its event.

use super::policy::{Condition, Response};
use super::Event;
use serde_json::{json, Value};

/// A payload as JSON when it is JSON, else as a string.
fn as_json(b: &[u8]) -> Value {
    serde_json::from_slice(b).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(b).into()))
}

/// The record of `e` that ended with `condition` after `attempts` runs; `response`
/// is the last one (none when the event expired before running).
pub fn destination_record(
    e: &Event,
    function_arn: &str,
    condition: Condition,
    attempts: u32,
    response: Option<&Response>,
    now_ms: u64,
) -> Value {
    let mut r = json!({
        "version": "1.0",
        "timestamp": crate::timefmt::rfc3339_millis(now_ms / 1000, (now_ms % 1000) as u32),
        "requestContext": {
            "requestId": e.request_id,
            "functionArn": format!("{function_arn}:{}", e.qualifier),
            "condition": condition.as_str(),
            "approximateInvokeCount": attempts,
        },
        "requestPayload": as_json(&e.payload),
    });
    if let Some(resp) = response {
        let mut ctx = json!({
            "statusCode": resp.status_code,
            "executedVersion": resp.executed_version,
        });
        if let Some(fe) = &resp.function_error {
            ctx["functionError"] = Value::String(fe.clone());
        }
        r["responseContext"] = ctx;
        r["responsePayload"] = as_json(&resp.payload);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventState;

    #[test]
    fn record_has_lambdas_shape() {
        let e = Event {
            request_id: "r1".into(),
            function: "f".into(),
            qualifier: "$LATEST".into(),
            payload: br#"{"k":1}"#.to_vec(),
            client_context: String::new(),
            enqueued_ms: 0,
            attempts: 2,
            deferrals: 0,
            next_attempt_ms: 0,
            last_error: String::new(),
            state: EventState::InFlight,
        };
        let resp = Response {
            status_code: 200,
            payload: br#"{"errorType":"Exception"}"#.to_vec(),
            function_error: Some("Unhandled".into()),
            executed_version: "$LATEST".into(),
        };
        let arn = "arn:aws:lambda:us-east-1:000000000000:function:f";
        let r = destination_record(
            &e,
            arn,
            Condition::RetriesExhausted,
            3,
            Some(&resp),
            1_795_787_634_005,
        );
        assert_eq!(
            r,
            json!({
                "version": "1.0",
                "timestamp": "2026-11-27T13:53:54.005Z",
                "requestContext": {
                    "requestId": "r1",
                    "functionArn": format!("{arn}:$LATEST"),
                    "condition": "RetriesExhausted",
                    "approximateInvokeCount": 3
                },
                "requestPayload": {"k": 1},
                "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
                "responsePayload": {"errorType": "Exception"}
            })
        );
        let expired = destination_record(&e, arn, Condition::EventAgeExceeded, 0, None, 0);
        assert!(expired.get("responseContext").is_none());
        assert_eq!(expired["requestContext"]["condition"], "EventAgeExceeded");
    }
}
