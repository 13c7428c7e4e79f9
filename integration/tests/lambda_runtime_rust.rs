//! A Rust function built with the `lambda_runtime` crate from crates.io
//! (integration/fixtures/build-rust-lambda.sh), deployed on the `provided` runtime as the
//! bundle's `bootstrap` executable: flint-init's Runtime API must be good enough for
//! Lambda's own Rust client.

use flint_integration::*;
use flint_proto::v1::*;
use std::path::PathBuf;

fn function_binary() -> PathBuf {
    provided_binary::fixture_binary("rust-lambda", "build-rust-lambda.sh")
}

fn bundle() -> Vec<u8> {
    provided_binary::bundle_as(&function_binary(), "bootstrap")
}

#[tokio::test]
async fn lambda_runtime_crate_function_runs_on_provided() {
    let agent = TestAgent::start().await;
    let mut c = agent.client().await;
    c.functions
        .create_function(CreateFunctionRequest {
            name: "rusty".into(),
            runtime: "provided.al2023".into(),
            handler: "bootstrap".into(),
            memory_mb: 128,
            timeout_s: 5,
            code_zip: bundle(),
            ..Default::default()
        })
        .await
        .unwrap();
    let r = invoke_ok(&mut c, "rusty", r#"{"k": [1, 2]}"#).await;
    let v = json(&r);
    assert_eq!(v["client"], "lambda_runtime");
    assert_eq!(v["calls"], 1);
    assert_eq!(v["request_id"], r.request_id);
    assert_eq!(v["function_name"], "rusty");
    assert_eq!(v["memory"], 128);
    assert_eq!(v["echo"]["k"][1], 2);
    let r = invoke(&mut c, "rusty", "{}").await;
    assert_eq!(json(&r)["calls"], 2, "the Rust process must be reused warm");
    let r = invoke(&mut c, "rusty", r#"{"fail": true}"#).await;
    assert_eq!(r.function_error, "Unhandled");
    let v = json(&r);
    assert_eq!(v["errorMessage"], "the event asked for a failure", "{v}");
    // lambda_runtime names the Rust type of the error it was given.
    assert!(
        v["errorType"]
            .as_str()
            .unwrap_or("")
            .contains("Box<dyn core::error::Error"),
        "{v}"
    );
    // A handler error is not a crash: the instance carries on.
    let r = invoke(&mut c, "rusty", "{}").await;
    assert_eq!(json(&r)["calls"], 4);
}

#[tokio::test]
async fn rust_timeout_out_of_memory_init_exit_and_missing_bootstrap() {
    let agent = TestAgent::start().await;
    let mut c = agent.client().await;
    provided_binary::failures_are_reported_as_lambda_does(
        &agent,
        &mut c,
        "rust",
        &function_binary(),
    )
    .await;
}
