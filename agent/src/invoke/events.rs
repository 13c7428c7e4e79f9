//! Asynchronous (Event) invocations. Today: the admitted invocation runs in a detached
//! task that holds its permit and code pin, and a failure is only logged. A durable
//! queue with retries replaces this file's one entry point, [`start`].

use super::admit::Admitted;
use super::InvokeOutput;
use crate::core::Agent;
use std::sync::Arc;
use tracing::Instrument;

/// Runs `admitted` in the background; the caller gets 202 at once.
pub(super) fn start(agent: &Arc<Agent>, admitted: Admitted) -> InvokeOutput {
    let request_id = admitted.request_id.clone();
    let span = tracing::info_span!("invoke", function = %admitted.function.name, request_id = %request_id, kind = "event");
    let me = agent.clone();
    tokio::spawn(
        async move {
            match me.run(admitted).await {
                Ok(out) if out.function_error.is_some() => {
                    tracing::info!("event invocation failed in the function")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "event invocation could not run"),
            }
        }
        .instrument(span),
    );
    InvokeOutput {
        status_code: 202,
        request_id,
        ..Default::default()
    }
}
