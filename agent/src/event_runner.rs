//! The agent's side of asynchronous invocations: an Event is stored in the durable
//! queue before its 202 (`Agent::enqueue_event`), and the dispatcher runs each attempt
//! through the normal invocation path (`Agent::run_queued`) via the [`Runner`] below.

use crate::core::Agent;
use crate::events::policy::{AttemptResult, Response};
use crate::events::runner::{Attempt, Runner};
use crate::events::{now_ms, Event, NewEvent, QueueError};
use crate::invoke::{InvocationType, InvokeError, InvokeInput, InvokeOutput};
use crate::limiter::Throttle;
use crate::store::StoreError;
use std::sync::Weak;

impl Agent {
    /// Stores an accepted Event durably; the 202 is returned only once it is on disk.
    pub(crate) async fn enqueue_event(
        &self,
        function: &str,
        request_id: String,
        input: &InvokeInput,
    ) -> Result<InvokeOutput, InvokeError> {
        if self.limiter.draining() {
            return Err(Throttle::Draining.into());
        }
        let event = NewEvent {
            request_id: request_id.clone(),
            function: function.to_string(),
            qualifier: "$LATEST".into(),
            payload: input.payload.clone(),
            client_context: input.client_context.clone(),
            enqueued_ms: now_ms(),
        };
        // Off the async workers: the commit waits for the disk, and enqueues waiting
        // together share one commit.
        let events = self.events.clone();
        tokio::task::spawn_blocking(move || events.enqueue(&event))
            .await
            .unwrap_or_else(|j| Err(QueueError::Writer(j.to_string())))?;
        tracing::debug!(function, %request_id, "event queued");
        Ok(InvokeOutput {
            status_code: 202,
            request_id,
            ..Default::default()
        })
    }
}

fn response(out: InvokeOutput) -> Response {
    Response {
        status_code: out.status_code,
        payload: out.payload,
        function_error: out.function_error,
        executed_version: "$LATEST".into(),
    }
}

/// The dispatcher holds the agent weakly: a dropped agent stops running events.
impl Runner for Weak<Agent> {
    fn run<'a>(&'a self, e: &'a Event, _attempt: u32) -> Attempt<'a> {
        Box::pin(async move {
            let Some(agent) = self.upgrade() else {
                return AttemptResult::SystemError("the agent is stopping".into());
            };
            let input = InvokeInput {
                function_name: e.function.clone(),
                invocation_type: InvocationType::Event,
                log_tail: false,
                payload: e.payload.clone(),
                client_context: e.client_context.clone(),
            };
            match agent.run_queued(&input, &e.request_id).await {
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
        self.upgrade().is_some_and(|a| !a.limiter.draining())
    }

    fn arn(&self, function: &str) -> String {
        self.upgrade()
            .map(|a| Agent::arn(&a, function))
            .unwrap_or_default()
    }

    fn exists(&self, name: &str) -> bool {
        self.upgrade().is_some_and(|a| a.store.get(name).is_ok())
    }
}
