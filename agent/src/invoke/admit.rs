//! Admission: what an invocation must pass before anything runs. The payload's size
//! and JSON, the client context, the function's row (with its code pinned: from the
//! registry's row cache, or read off the async workers) and a concurrency permit from
//! the limiter.

use super::{InvocationType, InvokeError, InvokeInput};
use crate::code::CodePin;
use crate::core::Agent;
use crate::limiter::Permit;
use crate::limits::{ASYNC_PAYLOAD_MAX, SYNC_PAYLOAD_MAX};
use crate::store::versions::LATEST;
use crate::store::{Function, StoreError};
use crate::versions::Resolved;
use std::sync::Arc;

/// Largest client context, as in Lambda.
pub const CLIENT_CONTEXT_MAX: usize = 3583;

/// An invocation that passed admission.
pub(crate) struct Admitted {
    pub input: InvokeInput,
    /// The function's configuration as this invocation sees it: $LATEST's row or a
    /// published version's snapshot.
    pub function: Function,
    /// `$LATEST` or the version number that runs (an alias has drawn it).
    pub version: String,
    /// The qualifier the caller named (a version, an alias, `$LATEST`), if any.
    pub qualifier: Option<String>,
    /// Keeps the function's code bundle until the invocation ends: an update-code or
    /// delete meanwhile cannot collect the bundle this invocation is about to load.
    pub code_pin: CodePin,
    /// The limiter's permit (none for DryRun, and none for an Event until it runs).
    pub permit: Option<Permit>,
    pub request_id: String,
    /// Which run of the request this is: 1, or the attempt of a queued event.
    pub attempt: u32,
}

/// Refuses a payload or client context Lambda would refuse; an empty payload is `{}`.
fn check_input(input: &mut InvokeInput) -> Result<(), InvokeError> {
    let (limit, kind) = match input.invocation_type {
        InvocationType::Event => (ASYNC_PAYLOAD_MAX, "asynchronous (Event)"),
        _ => (SYNC_PAYLOAD_MAX, "synchronous (RequestResponse)"),
    };
    if input.payload.len() > limit {
        return Err(InvokeError::PayloadTooLarge {
            size: input.payload.len(),
            limit,
            kind,
        });
    }
    if input.payload.iter().all(u8::is_ascii_whitespace) {
        input.payload = b"{}".to_vec();
    }
    if let Err(e) = crate::payload::check(&input.payload) {
        return Err(InvokeError::PayloadNotJson(e.to_string()));
    }
    if input.client_context.len() > CLIENT_CONTEXT_MAX {
        return Err(InvokeError::ClientContext(input.client_context.len()));
    }
    Ok(())
}

impl Agent {
    /// Checks `input`, reads its function and takes a permit (refusals are counted
    /// by the observers); the invocation's id is `request_id`.
    pub(super) async fn admit(
        self: &Arc<Self>,
        mut input: InvokeInput,
        request_id: String,
    ) -> Result<Admitted, InvokeError> {
        check_input(&mut input)?;
        // Only a synchronous call takes its permit now: a DryRun runs nothing, and an
        // Event waits in the queue and takes one per attempt (`admit_attempt`).
        let permit = input.invocation_type == InvocationType::RequestResponse;
        self.admit_checked(input, request_id, permit).await
    }

    /// Admits one attempt of a queued event (its input was checked when it was
    /// accepted): the function's current row and a permit, under the event's own
    /// request id.
    pub(super) async fn admit_attempt(
        self: &Arc<Self>,
        input: InvokeInput,
        request_id: String,
    ) -> Result<Admitted, InvokeError> {
        self.admit_checked(input, request_id, true).await
    }

    async fn admit_checked(
        self: &Arc<Self>,
        input: InvokeInput,
        request_id: String,
        take_permit: bool,
    ) -> Result<Admitted, InvokeError> {
        let (name, qualifier) = crate::versions::split_qualified(&input.function_name);
        let (name, qualifier) = (name.to_string(), qualifier.map(str::to_string));
        let (Resolved { function, version }, code_pin) = match qualifier.as_deref() {
            None | Some(LATEST) => self.pinned_latest(name).await?,
            Some(q) => self.pinned_qualified(name, q.to_string()).await?,
        };
        let permit = if take_permit {
            match self.limiter().acquire(&function.name) {
                Ok(p) => Some(p),
                Err(t) => {
                    self.record_throttle(&function.name, t.name());
                    return Err(t.into());
                }
            }
        } else {
            None
        };
        Ok(Admitted {
            input,
            function,
            version,
            qualifier,
            code_pin,
            permit,
            request_id,
            attempt: 1,
        })
    }

    /// $LATEST's row with its code pinned. A function this agent has read or written
    /// since it started is in the registry's row cache: no SQLite, no hop to a blocking
    /// thread (the warm path).
    async fn pinned_latest(
        self: &Arc<Self>,
        name: String,
    ) -> Result<(Resolved, CodePin), StoreError> {
        let latest = |function| Resolved {
            function,
            version: LATEST.to_string(),
        };
        match self.code().read_pinned(
            || self.store().cached(&name).map(latest).ok_or(()),
            |r| &r.function.code_sha256,
        ) {
            Ok(read) => Ok(read),
            Err(()) => {
                self.blocking(move |agent| {
                    agent.code().read_pinned(
                        || agent.store().get(&name).map(latest),
                        |r| &r.function.code_sha256,
                    )
                })
                .await
            }
        }
    }

    /// The configuration `name:qualifier` runs (an alias draws its version) with its
    /// code pinned, from the registry's caches when it can, else from SQLite.
    async fn pinned_qualified(
        self: &Arc<Self>,
        name: String,
        qualifier: String,
    ) -> Result<(Resolved, CodePin), StoreError> {
        match self.code().read_pinned(
            || self.resolve_cached(&name, &qualifier).ok_or(()),
            |r| &r.function.code_sha256,
        ) {
            Ok(read) => Ok(read),
            Err(()) => {
                self.blocking(move |agent| {
                    agent.code().read_pinned(
                        || agent.resolve_invocation(&name, &qualifier),
                        |r| &r.function.code_sha256,
                    )
                })
                .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(kind: InvocationType, payload: &[u8], client_context: &str) -> InvokeInput {
        InvokeInput {
            function_name: "f".into(),
            invocation_type: kind,
            log_tail: false,
            payload: payload.to_vec(),
            client_context: client_context.into(),
        }
    }

    #[test]
    fn empty_payload_becomes_an_empty_object() {
        let mut i = input(InvocationType::RequestResponse, b" \n", "");
        check_input(&mut i).unwrap();
        assert_eq!(i.payload, b"{}");
    }

    #[test]
    fn refuses_what_lambda_refuses() {
        let big = vec![b' '; ASYNC_PAYLOAD_MAX + 1];
        let mut i = input(InvocationType::Event, &big, "");
        assert!(matches!(
            check_input(&mut i),
            Err(InvokeError::PayloadTooLarge { limit, .. }) if limit == ASYNC_PAYLOAD_MAX
        ));
        let mut i = input(InvocationType::RequestResponse, b"{", "");
        assert!(matches!(
            check_input(&mut i),
            Err(InvokeError::PayloadNotJson(_))
        ));
        let ctx = "x".repeat(CLIENT_CONTEXT_MAX + 1);
        let mut i = input(InvocationType::RequestResponse, b"{}", &ctx);
        assert!(matches!(
            check_input(&mut i),
            Err(InvokeError::ClientContext(n)) if n == CLIENT_CONTEXT_MAX + 1
        ));
    }
}
