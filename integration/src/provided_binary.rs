//! Lambda's failure cases for a compiled function on the `provided` runtime (the Go and
//! Rust fixtures, integration/fixtures/build-{go,rust}-lambda.sh): a timeout, an
//! out-of-memory kill, a bootstrap that exits during init and a bundle without a
//! bootstrap. The fixtures answer `{"sleep_ms": N}` by sleeping, `{"hog": true}` by
//! allocating until stopped, and exit at start with the status in `EXIT_IN_INIT`.

use crate::{invoke, json, Client, TestAgent};
use flint_proto::v1::CreateFunctionRequest;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `${FLINT_CACHE_DIR:-/var/cache/flint}/<fixture>/bootstrap`, built by `script`.
pub fn fixture_binary(fixture: &str, script: &str) -> PathBuf {
    let cache = std::env::var("FLINT_CACHE_DIR").unwrap_or_else(|_| "/var/cache/flint".into());
    let path = PathBuf::from(cache).join(fixture).join("bootstrap");
    assert!(
        path.is_file(),
        "{} is missing: run integration/fixtures/{script} first",
        path.display()
    );
    path
}

/// A zip holding `binary` as the executable `name`.
pub fn bundle_as(binary: &Path, name: &str) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
    w.start_file(name, opts).unwrap();
    w.write_all(&std::fs::read(binary).unwrap()).unwrap();
    w.finish().unwrap().into_inner()
}

fn function(name: &str, code: Vec<u8>, timeout_s: u32) -> CreateFunctionRequest {
    CreateFunctionRequest {
        name: name.into(),
        runtime: "provided.al2023".into(),
        handler: "bootstrap".into(),
        memory_mb: 128,
        timeout_s,
        code_zip: code,
        ..Default::default()
    }
}

fn message(v: &serde_json::Value) -> &str {
    v["errorMessage"].as_str().unwrap_or("")
}

/// Deploys `binary` under names starting with `prefix` and checks each failure case.
pub async fn failures_are_reported_as_lambda_does(
    agent: &TestAgent,
    c: &mut Client,
    prefix: &str,
    binary: &Path,
) {
    let code = bundle_as(binary, "bootstrap");

    // A timeout: Lambda's message, and the process is torn down.
    let name = format!("{prefix}-sleepy");
    c.functions
        .create_function(function(&name, code.clone(), 1))
        .await
        .unwrap();
    let t0 = Instant::now();
    let r = invoke(c, &name, r#"{"sleep_ms": 30000}"#).await;
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t0.elapsed()
    );
    assert_eq!(r.function_error, "Unhandled", "{}", r.log_result);
    let v = json(&r);
    assert!(
        message(&v).contains("Task timed out after 1.00 seconds"),
        "{v}"
    );
    assert_eq!(
        agent.instances_of(&name).await,
        0,
        "timed-out instance kept"
    );

    // Memory: the cgroup's limit kills the process, Runtime.OutOfMemory; the function
    // then starts again.
    let name = format!("{prefix}-hog");
    c.functions
        .create_function(function(&name, code.clone(), 30))
        .await
        .unwrap();
    let r = invoke(c, &name, r#"{"hog": true}"#).await;
    assert_eq!(r.function_error, "Unhandled", "{}", r.log_result);
    let v = json(&r);
    assert_eq!(
        v["errorType"], "Runtime.OutOfMemory",
        "{v}\n{}",
        r.log_result
    );
    let r = invoke(c, &name, "{}").await;
    assert_eq!(r.function_error, "", "a new instance after the kill: {r:?}");
    assert_eq!(json(&r)["calls"], 1, "a new process");

    // A bootstrap that exits before asking for an invocation: Runtime.ExitError with
    // its exit status, as Lambda says it, and its stderr in the log.
    let name = format!("{prefix}-initexit");
    let mut req = function(&name, code.clone(), 3);
    req.environment.insert("EXIT_IN_INIT".into(), "3".into());
    c.functions.create_function(req).await.unwrap();
    let r = invoke(c, &name, "{}").await;
    assert_eq!(r.function_error, "Unhandled", "{}", r.log_result);
    let v = json(&r);
    assert_eq!(v["errorType"], "Runtime.ExitError", "{v}");
    assert!(
        message(&v).contains("Runtime exited with error: exit status 3"),
        "{v}"
    );
    assert!(
        r.log_result.contains("exiting with status 3"),
        "the bootstrap's stderr: {}",
        r.log_result
    );
    assert_eq!(
        agent.instances_of(&name).await,
        0,
        "{name} kept an instance"
    );

    // No bootstrap in the bundle (the binary under another name): Lambda's
    // Runtime.InvalidEntrypoint, "Couldn't find valid bootstrap(s)".
    let name = format!("{prefix}-nobootstrap");
    c.functions
        .create_function(function(&name, bundle_as(binary, "main"), 3))
        .await
        .unwrap();
    let r = invoke(c, &name, "{}").await;
    assert_eq!(r.function_error, "Unhandled", "{}", r.log_result);
    let v = json(&r);
    assert_eq!(v["errorType"], "Runtime.InvalidEntrypoint", "{v}");
    assert!(
        message(&v).contains("Couldn't find valid bootstrap(s)"),
        "{v}"
    );
    let leaked = agent.wait_all_accounted(Duration::from_secs(10)).await;
    assert_eq!(leaked, 0, "ended instances not destroyed");
}
