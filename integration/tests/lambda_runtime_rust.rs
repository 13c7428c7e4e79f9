//! A Rust function built with the `lambda_runtime` crate from crates.io
//! (integration/fixtures/build-rust-lambda.sh), deployed on the `provided` runtime as the
//! bundle's `bootstrap` executable: flint-init's Runtime API must be good enough for
//! Lambda's own Rust client.

use flint_integration::*;
use flint_proto::v1::*;
use std::io::Write;
use std::path::PathBuf;

fn function_binary() -> PathBuf {
    let cache = std::env::var("FLINT_CACHE_DIR").unwrap_or_else(|_| "/var/cache/flint".into());
    let path = PathBuf::from(cache).join("rust-lambda/bootstrap");
    assert!(
        path.is_file(),
        "{} is missing: run integration/fixtures/build-rust-lambda.sh first",
        path.display()
    );
    path
}

fn bundle() -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
    w.start_file("bootstrap", opts).unwrap();
    w.write_all(&std::fs::read(function_binary()).unwrap())
        .unwrap();
    w.finish().unwrap().into_inner()
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
