//! The agent as a queue consumer's [`Invoker`]: synchronous invocations of the
//! trigger's function, asynchronous ones of its dead-letter function, and the
//! trigger's last fire and last error in the registry (written at most once a
//! second each, off the async workers).

use super::consumer::{Invoker, Outcome};
use super::supervisor::Host;
use crate::core::Agent;
use crate::invoke::{InvocationType, InvokeError, InvokeInput};
use crate::metrics::Metrics;
use crate::store::StoreError;
use crate::triggers::model::Trigger;
use chrono::Utc;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// How often the registry is written for one trigger, at most.
const RECORD_EVERY: Duration = Duration::from_secs(1);

/// One trigger's invoker.
pub struct AgentInvoker {
    pub agent: Weak<Agent>,
    pub trigger: String,
    pub function: String,
    pub dead_letter: Option<String>,
    recorded: Mutex<Recorded>,
}

#[derive(Default)]
struct Recorded {
    fire: Option<Instant>,
    error: Option<(Instant, String)>,
}

impl AgentInvoker {
    pub fn new(
        agent: Weak<Agent>,
        trigger: String,
        function: String,
        dead_letter: Option<String>,
    ) -> Self {
        Self {
            agent,
            trigger,
            function,
            dead_letter,
            recorded: Mutex::new(Recorded::default()),
        }
    }

    fn write(&self, error: Option<String>) {
        let Some(agent) = self.agent.upgrade() else {
            return;
        };
        let name = self.trigger.clone();
        tokio::task::spawn_blocking(move || {
            let s = agent.store();
            let r = match error {
                None => s.record_trigger_delivery(&name, Utc::now()),
                Some(e) => s.set_trigger_error(&name, Some(&e)),
            };
            if let Err(e) = r {
                tracing::warn!(trigger = %name, error = %e, "could not record the trigger's last fire or error");
            }
        });
    }
}

impl Host for Agent {
    type Invoker = AgentInvoker;

    fn metrics(&self) -> &Metrics {
        Agent::metrics(self)
    }

    async fn triggers(self: Arc<Self>) -> Result<Vec<Trigger>, StoreError> {
        self.blocking(|a| a.store().list_triggers(None)).await
    }

    fn region_account(&self) -> (String, String) {
        let c = self.config();
        (c.region.clone(), c.account_id.clone())
    }

    fn invoker(
        self: &Arc<Self>,
        trigger: String,
        function: String,
        dead_letter: Option<String>,
    ) -> AgentInvoker {
        AgentInvoker::new(Arc::downgrade(self), trigger, function, dead_letter)
    }
}

/// The outcome of one synchronous invocation.
fn outcome(r: Result<crate::invoke::InvokeOutput, InvokeError>) -> Outcome {
    match r {
        Ok(out) => match out.function_error {
            None => Outcome::Success,
            Some(kind) => {
                let body = String::from_utf8_lossy(&out.payload);
                let body: String = body.chars().take(300).collect();
                Outcome::Failed(format!("function error ({kind}): {body}"))
            }
        },
        Err(e @ (InvokeError::Throttled(_) | InvokeError::Sandbox { .. })) => {
            Outcome::Deferred(e.to_string())
        }
        Err(e @ InvokeError::Store(StoreError::NotFound(_))) => Outcome::Gone(e.to_string()),
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

impl Invoker for AgentInvoker {
    async fn invoke(&self, payload: Vec<u8>) -> Outcome {
        let Some(agent) = self.agent.upgrade() else {
            return Outcome::Deferred("flintd is stopping".into());
        };
        outcome(
            agent
                .invoke(InvokeInput {
                    function_name: self.function.clone(),
                    invocation_type: InvocationType::RequestResponse,
                    log_tail: false,
                    payload,
                    client_context: String::new(),
                })
                .await,
        )
    }

    async fn dead_letter(&self, event: Value, attempts: u32, error: &str) -> Result<(), String> {
        let Some(target) = &self.dead_letter else {
            return Err("no dead-letter function".into());
        };
        let Some(agent) = self.agent.upgrade() else {
            return Err("flintd is stopping".into());
        };
        let record = failure_record(&agent.arn(&self.function), attempts, error, event);
        agent
            .invoke(InvokeInput {
                function_name: target.clone(),
                invocation_type: InvocationType::Event,
                log_tail: false,
                payload: record.to_string().into_bytes(),
                client_context: String::new(),
            })
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    fn fired(&self) {
        let mut r = self.recorded.lock().unwrap_or_else(|p| p.into_inner());
        let due = r.fire.is_none_or(|t| t.elapsed() >= RECORD_EVERY) || r.error.is_some();
        if due {
            r.fire = Some(Instant::now());
            r.error = None;
            drop(r);
            self.write(None);
        }
    }

    fn failed(&self, error: &str) {
        let mut r = self.recorded.lock().unwrap_or_else(|p| p.into_inner());
        let due = r
            .error
            .as_ref()
            .is_none_or(|(t, e)| e != error || t.elapsed() >= RECORD_EVERY);
        if due {
            r.error = Some((Instant::now(), error.to_string()));
            drop(r);
            let at = crate::triggers::store::fmt_time(Utc::now());
            self.write(Some(format!("{at}: {error}")));
        }
    }
}

/// What the dead-letter function receives: Lambda's failure record (as an
/// on-failure destination gets it) with the batch's `aws:rmq` event as its
/// `requestPayload`.
pub fn failure_record(function_arn: &str, attempts: u32, error: &str, event: Value) -> Value {
    json!({
        "version": "1.0",
        "timestamp": crate::triggers::store::fmt_time(Utc::now()),
        "requestContext": {
            "requestId": uuid::Uuid::new_v4().to_string(),
            "functionArn": function_arn,
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": attempts,
        },
        "responseContext": { "functionError": error },
        "requestPayload": event,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limiter::Throttle;

    #[test]
    fn invocation_results_map_to_outcomes() {
        assert_eq!(outcome(Ok(Default::default())), Outcome::Success);
        let failed = crate::invoke::InvokeOutput {
            function_error: Some("Unhandled".into()),
            payload: br#"{"errorType":"Boom"}"#.to_vec(),
            ..Default::default()
        };
        assert_eq!(
            outcome(Ok(failed)),
            Outcome::Failed(r#"function error (Unhandled): {"errorType":"Boom"}"#.into())
        );
        assert!(matches!(
            outcome(Err(InvokeError::Throttled(Throttle::Draining))),
            Outcome::Deferred(_)
        ));
        assert!(matches!(
            outcome(Err(InvokeError::Store(StoreError::NotFound("f".into())))),
            Outcome::Gone(_)
        ));
    }

    #[test]
    fn the_failure_record_carries_the_batch() {
        let ev = json!({"eventSource": "aws:rmq"});
        let r = failure_record("arn:aws:lambda:r:a:function:f", 3, "boom", ev.clone());
        assert_eq!(r["requestContext"]["condition"], "RetryAttemptsExhausted");
        assert_eq!(r["requestContext"]["approximateInvokeCount"], 3);
        assert_eq!(r["responseContext"]["functionError"], "boom");
        assert_eq!(r["requestPayload"], ev);
    }
}
