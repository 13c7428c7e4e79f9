//! A Go function built with Debian's Go toolchain (integration/fixtures/build-go-lambda.sh)
//! that speaks the Runtime API itself, deployed on the `provided` runtime as the bundle's
//! `bootstrap` executable; its timeout, out-of-memory, init exit and missing bootstrap
//! (integration/src/provided_binary.rs).

use flint_integration::*;
use flint_proto::v1::*;
use std::path::PathBuf;

fn function_binary() -> PathBuf {
    provided_binary::fixture_binary("go-lambda", "build-go-lambda.sh")
}

fn bundle() -> Vec<u8> {
    provided_binary::bundle_as(&function_binary(), "bootstrap")
}

#[tokio::test]
async fn go_function_speaking_the_runtime_api_runs_on_provided() {
    let agent = TestAgent::start().await;
    let mut c = agent.client().await;
    c.functions
        .create_function(CreateFunctionRequest {
            name: "gopher".into(),
            runtime: "provided.al2023".into(),
            handler: "bootstrap".into(),
            memory_mb: 128,
            timeout_s: 3,
            code_zip: bundle(),
            ..Default::default()
        })
        .await
        .unwrap();
    let r = invoke_ok(&mut c, "gopher", r#"{"k": [1, 2]}"#).await;
    let v = json(&r);
    assert_eq!(v["client"], "go");
    assert_eq!(v["calls"], 1);
    assert_eq!(v["request_id"], r.request_id);
    assert_eq!(v["function"], "gopher");
    assert!(
        v["arn"].as_str().unwrap().ends_with(":function:gopher"),
        "{v}"
    );
    let remaining = v["remaining_ms"].as_i64().unwrap();
    assert!(remaining > 0 && remaining <= 3000, "{v}");
    assert_eq!(v["echo"]["k"][1], 2);
    assert!(
        r.log_result.contains("go handler call 1"),
        "{}",
        r.log_result
    );
    let r = invoke(&mut c, "gopher", "{}").await;
    assert_eq!(json(&r)["calls"], 2, "the Go process must be reused warm");
    let r = invoke(&mut c, "gopher", r#"{"fail": true}"#).await;
    assert_eq!(r.function_error, "Unhandled");
    let v = json(&r);
    assert_eq!(v["errorType"], "HandlerError", "{v}");
    assert_eq!(v["errorMessage"], "the event asked for a failure", "{v}");
    let r = invoke(&mut c, "gopher", "{}").await;
    assert_eq!(json(&r)["calls"], 3, "a handler error is not a crash");
}

#[tokio::test]
async fn go_timeout_out_of_memory_init_exit_and_missing_bootstrap() {
    let agent = TestAgent::start().await;
    let mut c = agent.client().await;
    provided_binary::failures_are_reported_as_lambda_does(&agent, &mut c, "go", &function_binary())
        .await;
}
