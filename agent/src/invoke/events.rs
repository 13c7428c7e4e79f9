//! Asynchronous (Event) invocations. An admitted Event is stored in the durable queue
//! (`crate::events`) before its 202 ([`enqueue`]); the dispatcher runs each attempt
//! through the normal path ([`Agent::run_queued`]) by the [`Runner`] below, with the
//! event's own request id on every attempt.

use super::admit::Admitted;
use super::{InvocationType, InvokeError, InvokeInput, InvokeOutput};
use crate::core::Agent;
use crate::events::policy::{AttemptResult, Response};
use crate::events::runner::{Attempt, Runner};
use crate::events::{now_ms, Event, NewEvent, QueueError};
use crate::limiter::Throttle;
use crate::store::StoreError;
use flint_proto::lambda::LATEST;
use std::sync::{Arc, Weak};

/// Stores `admitted` durably; the caller gets 202 only once it is on disk (a queue
/// that cannot keep it, e.g. a full disk, is an error, never a 202).
pub(super) async fn enqueue(
    agent: &Arc<Agent>,
    admitted: Admitted,
) -> Result<InvokeOutput, InvokeError> {
    // The code pin and the (absent) permit go: the event takes its own when it runs.
    let Admitted {
        input,
        function,
        request_id,
        qualifier,
        ..
    } = admitted;
    if agent.limiter().draining() {
        return Err(Throttle::Draining.into());
    }
    agent.disk().check("an Event invocation")?;
    let event = NewEvent {
        request_id: request_id.clone(),
        function: function.name.clone(),
        // Each attempt resolves the qualifier again (an alias draws per attempt).
        qualifier: qualifier.unwrap_or_else(|| LATEST.into()),
        payload: input.payload,
        client_context: input.client_context,
        enqueued_ms: now_ms(),
    };
    // Off the async workers: the commit waits for the disk, and enqueues waiting
    // together share one commit.
    let events = agent.events().clone();
    tokio::task::spawn_blocking(move || events.enqueue(&event))
        .await
        .unwrap_or_else(|j| Err(QueueError::Writer(j.to_string())))?;
    tracing::debug!(function = %function.name, %request_id, "event queued");
    Ok(InvokeOutput {
        status_code: 202,
        request_id,
        ..Default::default()
    })
}

impl Agent {
    /// One attempt of a queued event: the synchronous path with the event's own
    /// request id, taking a permit like any invocation (a throttle leaves it queued);
    /// metered with its `attempt` number.
    pub(crate) async fn run_queued(
        self: &Arc<Self>,
        input: InvokeInput,
        request_id: String,
        attempt: u32,
    ) -> Result<InvokeOutput, InvokeError> {
        let mut admitted = self.admit_attempt(input, request_id).await?;
        admitted.attempt = attempt;
        self.run(admitted).await
    }
}

fn response(out: InvokeOutput) -> Response {
    Response {
        status_code: out.status_code,
        payload: out.payload,
        function_error: out.function_error,
        executed_version: out.executed_version,
    }
}

/// The dispatcher holds the agent weakly: a dropped agent stops running events.
impl Runner for Weak<Agent> {
    fn run<'a>(&'a self, e: &'a Event, attempt: u32) -> Attempt<'a> {
        Box::pin(async move {
            let Some(agent) = self.upgrade() else {
                return AttemptResult::SystemError("the agent is stopping".into());
            };
            let function_name = if e.qualifier == LATEST || e.qualifier.is_empty() {
                e.function.clone()
            } else {
                format!("{}:{}", e.function, e.qualifier)
            };
            let input = InvokeInput {
                function_name,
                invocation_type: InvocationType::Event,
                log_tail: false,
                payload: e.payload.clone(),
                client_context: e.client_context.clone(),
            };
            match agent.run_queued(input, e.request_id.clone(), attempt).await {
                Ok(out) if out.function_error.is_some() => {
                    AttemptResult::FunctionError(response(out))
                }
                Ok(out) => AttemptResult::Success(response(out)),
                Err(InvokeError::Throttled(t)) => AttemptResult::Throttled(t.to_string()),
                Err(InvokeError::Store(e @ StoreError::NotFound(_))) => {
                    AttemptResult::Gone(e.to_string())
                }
                Err(e) => AttemptResult::SystemError(e.to_string()),
            }
        })
    }

    fn accepting(&self) -> bool {
        self.upgrade().is_some_and(|a| !a.limiter().draining())
    }

    fn arn(&self, function: &str) -> String {
        self.upgrade()
            .map(|a| Agent::arn(&a, function))
            .unwrap_or_default()
    }

    fn exists(&self, name: &str) -> bool {
        self.upgrade().is_some_and(|a| a.store().get(name).is_ok())
    }
}
