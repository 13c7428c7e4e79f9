//! A Go function built with Debian's Go toolchain (integration/fixtures/build-go-lambda.sh)
//! that speaks the Runtime API itself, deployed on the `provided` runtime as the bundle's
//! `bootstrap` executable.

use flint_integration::*;
use flint_proto::v1::*;
use std::io::Write;
use std::path::PathBuf;

fn function_binary() -> PathBuf {
    let cache = std::env::var("FLINT_CACHE_DIR").unwrap_or_else(|_| "/var/cache/flint".into());
    let path = PathBuf::from(cache).join("go-lambda/bootstrap");
    assert!(
        path.is_file(),
        "{} is missing: run integration/fixtures/build-go-lambda.sh first",
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
