//! Admission: requests the agent refuses before anything starts (unknown function,
//! payload too large or not JSON, client context too large), each with a message
//! that says what to fix, and nothing created or metered.

use super::guest::Script;
use super::harness::Harness;
use crate::invoke::{InvocationType, InvokeError, InvokeInput};
use crate::limits::{ASYNC_PAYLOAD_MAX, SYNC_PAYLOAD_MAX};

fn input(kind: InvocationType, payload: Vec<u8>, client_context: &str) -> InvokeInput {
    InvokeInput {
        function_name: "f".into(),
        invocation_type: kind,
        log_tail: false,
        payload,
        client_context: client_context.into(),
    }
}

#[tokio::test]
async fn bad_requests_are_refused_before_anything_starts() {
    let h = Harness::open(Script::echo(), &[]);
    match h.invoke("nope", "{}").await {
        Err(InvokeError::Store(e)) => assert!(e.to_string().contains("nope"), "{e}"),
        other => panic!("{other:?}"),
    }
    h.create("f", "v1");
    let sync = InvocationType::RequestResponse;
    let cases = [
        (
            input(sync, b"{not json".to_vec(), ""),
            "payload is not valid JSON",
        ),
        (
            input(sync, vec![b' '; SYNC_PAYLOAD_MAX + 1], ""),
            "the limit for synchronous (RequestResponse) invocations is 6291456 bytes",
        ),
        (
            input(InvocationType::Event, vec![b' '; ASYNC_PAYLOAD_MAX + 1], ""),
            "the limit for asynchronous (Event) invocations is 262144 bytes",
        ),
        (
            input(sync, b"{}".to_vec(), &"c".repeat(3584)),
            "client context is 3584 bytes: at most 3583 allowed",
        ),
    ];
    for (req, words) in cases {
        let e = h.agent.invoke(req).await.unwrap_err();
        assert!(e.to_string().contains(words), "{e}");
    }
    assert!(h.backend.created().is_empty());
    assert!(h.records().is_empty() && h.throttles().is_empty());
}
