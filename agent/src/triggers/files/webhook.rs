//! The S3-notification webhook: S3-compatible object stores (MinIO's and Ceph RGW's
//! webhook targets) POST bucket notifications, a JSON body with S3's `Records[]`
//! (MinIO adds `EventName` and `Key` at the top level, ignored here). Each record
//! becomes one asynchronous invocation of the trigger's function with the payload
//! `{"Records": [record]}`, stored in the durable queue before the answer, exactly as
//! the watcher's own events.
//!
//! Authentication is the trigger's own bearer token (`--webhook-token`; MinIO's
//! `auth_token` sends `Authorization: Bearer TOKEN`), compared in constant time. A
//! trigger without a token, an unknown trigger and a wrong token are refused alike
//! (401), so the endpoint tells nothing about which triggers exist.
//!
//! This module knows nothing of the listener it is mounted on (today the Lambda REST
//! API's, `lambda_api/server.rs`): it takes the trigger name, the `Authorization`
//! header and the body, and answers a status and a JSON body.

use super::deliver::queue;
use super::state::Count;
use crate::core::Agent;
use crate::limits::ASYNC_PAYLOAD_MAX;
use crate::triggers::model::TriggerKind;
use crate::triggers::scheduler::Host;
use serde_json::{json, Value};
use std::sync::Arc;

/// The path prefix the webhook is mounted at; the trigger name follows.
pub const PATH_PREFIX: &str = "/flint/s3-notifications/";
/// The most records one request may carry.
const RECORDS_MAX: usize = 1000;
/// What `{"Records":[...]}` adds around a record.
const PAYLOAD_OVERHEAD: usize = 14;

/// A refused notification.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    /// Unknown trigger, no token configured, or a missing or wrong token
    #[error("missing or wrong bearer token for trigger {0} (Authorization: Bearer TOKEN, the trigger's --webhook-token)")]
    Unauthorized(String),
    /// The trigger is disabled
    #[error("trigger {0} is disabled: flint triggers enable {0}")]
    Disabled(String),
    /// The body is not an S3 notification
    #[error("the body is not an S3 event notification: {0}")]
    Body(String),
    /// An event could not be queued (the agent is stopping, the function is gone)
    #[error("queueing the event failed: {0}")]
    Queue(String),
    /// Registry failure
    #[error("registry: {0}")]
    Store(String),
}

impl WebhookError {
    /// The HTTP status of the refusal.
    pub fn status(&self) -> u16 {
        match self {
            WebhookError::Unauthorized(_) => 401,
            WebhookError::Disabled(_) => 409,
            WebhookError::Body(_) => 400,
            WebhookError::Queue(_) | WebhookError::Store(_) => 503,
        }
    }
}

/// Compares two byte strings in time that depends only on their lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token of an `Authorization: Bearer TOKEN` header.
fn bearer(header: Option<&str>) -> Option<&str> {
    let h = header?.trim();
    let (scheme, token) = h.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The records of a notification body.
pub fn records(body: &[u8]) -> Result<Vec<Value>, WebhookError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| WebhookError::Body(format!("not JSON: {e}")))?;
    let Some(Value::Array(records)) = v.get("Records") else {
        return Err(WebhookError::Body("no Records array".into()));
    };
    if records.is_empty() || records.len() > RECORDS_MAX {
        return Err(WebhookError::Body(format!(
            "Records must hold 1 to {RECORDS_MAX} records, not {}",
            records.len()
        )));
    }
    for (i, r) in records.iter().enumerate() {
        let named = r.get("eventName").is_some_and(Value::is_string);
        let object = r.pointer("/s3/object/key").is_some_and(Value::is_string);
        if !named || !object {
            return Err(WebhookError::Body(format!(
                "Records[{i}] needs eventName and s3.object.key"
            )));
        }
        let size = r.to_string().len() + PAYLOAD_OVERHEAD;
        if size > ASYNC_PAYLOAD_MAX {
            return Err(WebhookError::Body(format!(
                "Records[{i}] is {size} bytes as an event; an asynchronous invocation takes at most {ASYNC_PAYLOAD_MAX}"
            )));
        }
    }
    Ok(records.clone())
}

/// Accepts one notification for `trigger`: every record queued as an invocation
/// before the answer. Returns the answer's status and JSON body.
pub async fn accept(
    agent: &Arc<Agent>,
    trigger: &str,
    authorization: Option<&str>,
    body: &[u8],
) -> (u16, Value) {
    match accept_inner(agent, trigger, authorization, body).await {
        Ok(n) => (200, json!({ "accepted": n })),
        Err(e) => {
            tracing::info!(trigger, error = %e, "S3 notification refused");
            (e.status(), json!({ "message": e.to_string() }))
        }
    }
}

async fn accept_inner(
    agent: &Arc<Agent>,
    trigger: &str,
    authorization: Option<&str>,
    body: &[u8],
) -> Result<usize, WebhookError> {
    let unauthorized = || WebhookError::Unauthorized(trigger.to_string());
    let (a, name) = (agent.clone(), trigger.to_string());
    let row = tokio::task::spawn_blocking(move || a.get_trigger(&name))
        .await
        .map_err(|e| WebhookError::Store(e.to_string()))?;
    let t = match row {
        Ok(t) => t,
        Err(crate::triggers::model::TriggerError::NotFound(_)) => return Err(unauthorized()),
        Err(e) => return Err(WebhookError::Store(e.to_string())),
    };
    let TriggerKind::Files(spec) = &t.kind else {
        return Err(unauthorized());
    };
    let (Some(want), Some(got)) = (spec.webhook_token.as_deref(), bearer(authorization)) else {
        return Err(unauthorized());
    };
    if !same(want.as_bytes(), got.as_bytes()) {
        return Err(unauthorized());
    }
    if !t.enabled {
        return Err(WebhookError::Disabled(t.name));
    }
    let records = records(body)?;
    let n = records.len();
    let state = agent.files_triggers().clone();
    state.add(&t.name, Count::Seen, n as u64);
    let mut set = tokio::task::JoinSet::new();
    for r in records {
        let payload = json!({ "Records": [r] }).to_string().into_bytes();
        let host: Arc<dyn Host> = agent.clone();
        set.spawn(queue(Arc::downgrade(&host), t.function.clone(), payload));
    }
    let mut failed = None;
    while let Some(r) = set.join_next().await {
        match r.unwrap_or_else(|e| Err(e.to_string())) {
            Ok(()) => state.add(&t.name, Count::Delivered, 1),
            Err(e) => {
                state.add(&t.name, Count::Failed, 1);
                failed = Some(e);
            }
        }
    }
    match failed {
        Some(e) => Err(WebhookError::Queue(e)),
        None => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_and_compared() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(None), None);
        assert!(same(b"secret", b"secret"));
        assert!(!same(b"secret", b"secreT"));
        assert!(!same(b"secret", b"secret2"));
    }

    #[test]
    fn minio_bodies_are_read_and_bad_ones_refused() {
        let body = br#"{"EventName":"s3:ObjectCreated:Put","Key":"b/k.txt","Records":[
            {"eventVersion":"2.0","eventSource":"minio:s3","eventName":"s3:ObjectCreated:Put",
             "s3":{"bucket":{"name":"b"},"object":{"key":"k.txt","size":3}}}]}"#;
        let r = records(body).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0]["s3"]["object"]["key"], "k.txt");
        for bad in [
            &b"nope"[..],
            br#"{"Records":[]}"#,
            br#"{"Key":"x"}"#,
            br#"{"Records":[{"eventName":"x"}]}"#,
        ] {
            let e = records(bad).unwrap_err();
            assert_eq!(e.status(), 400, "{e}");
        }
        let big = format!(
            r#"{{"Records":[{{"eventName":"x","s3":{{"object":{{"key":"{}"}}}}}}]}}"#,
            "k".repeat(ASYNC_PAYLOAD_MAX)
        );
        let e = records(big.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("at most 262144"), "{e}");
    }
}
