//! Regression: a runtime that exits right after posting its result (as Lambda's Java
//! runtime does after an OutOfMemoryError) used to fail the next invocation with
//! Runtime.ExitError, because flintd gave it the instance before it saw the exit (or froze
//! the instance mid-exit). The invocation now goes to a new instance.

use flint_integration::*;
use flint_proto::v1::*;
use std::io::Write;
use std::time::Duration;

/// A `provided` bootstrap that serves one invocation with an error, then exits 1.
const BOOTSTRAP: &str = r#"#!/usr/bin/python3
import http.client, os, sys
c = http.client.HTTPConnection(os.environ["AWS_LAMBDA_RUNTIME_API"])
c.request("GET", "/2018-06-01/runtime/invocation/next")
r = c.getresponse()
r.read()
rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
doc = b'{"errorType":"OneShot","errorMessage":"served one, exiting"}'
c.request("POST", f"/2018-06-01/runtime/invocation/{rid}/error", body=doc)
c.getresponse().read()
sys.exit(1)
"#;

#[tokio::test]
async fn a_runtime_exiting_right_after_its_result_does_not_fail_the_next_invocation() {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
    w.start_file("bootstrap", opts).unwrap();
    w.write_all(BOOTSTRAP.as_bytes()).unwrap();
    let code = w.finish().unwrap().into_inner();
    let agent = TestAgent::start().await;
    let mut c = agent.client().await;
    c.functions
        .create_function(CreateFunctionRequest {
            name: "oneshot".into(),
            runtime: "provided".into(),
            handler: "bootstrap".into(),
            memory_mb: 128,
            timeout_s: 5,
            code_zip: code,
            ..Default::default()
        })
        .await
        .unwrap();
    for attempt in 1..=4 {
        let r = invoke(&mut c, "oneshot", "{}").await;
        assert_eq!(r.function_error, "Unhandled");
        let v = json(&r);
        assert_eq!(
            v["errorType"], "OneShot",
            "attempt {attempt}: {v}\n{}",
            r.log_result
        );
        let t = r.timings.unwrap();
        assert!(t.cold_start, "attempt {attempt}: a new instance: {t:?}");
        // Back to back, and after the exit had time to land (or to be frozen mid-way).
        if attempt % 2 == 0 {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    let leaked = agent.wait_all_accounted(Duration::from_secs(10)).await;
    assert_eq!(leaked, 0, "ended instances not destroyed");
}
