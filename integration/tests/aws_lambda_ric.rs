//! A function that bundles AWS's own Node.js runtime interface client (the npm package
//! aws-lambda-ric, its native Runtime API client built by
//! integration/fixtures/fetch-node-ric.sh) and starts it from a custom-runtime bootstrap:
//! flint-init's Runtime API must be good enough for Lambda's real Node client.

use flint_integration::*;
use flint_proto::v1::*;
use std::io::Write;
use std::path::{Path, PathBuf};

const VERSION: &str = "3.3.0";

fn package_dir() -> PathBuf {
    let cache = std::env::var("FLINT_CACHE_DIR").unwrap_or_else(|_| "/var/cache/flint".into());
    let dir = PathBuf::from(cache).join(format!("npm/aws-lambda-ric-{VERSION}"));
    assert!(
        dir.join(".complete").is_file(),
        "{} is missing: run integration/fixtures/fetch-node-ric.sh first",
        dir.display()
    );
    dir
}

/// Adds every file under `dir` to the zip as `prefix/<relative path>`.
fn add_tree(w: &mut zip::ZipWriter<std::io::Cursor<Vec<u8>>>, dir: &Path, prefix: &str) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let path = e.path();
        let name = format!("{prefix}/{}", e.file_name().to_string_lossy());
        if path.is_dir() {
            n += add_tree(w, &path, &name);
        } else if !name.ends_with("/.complete") {
            let opts = zip::write::SimpleFileOptions::default().unix_permissions(0o644);
            w.start_file(name, opts).unwrap();
            w.write_all(&std::fs::read(&path).unwrap()).unwrap();
            n += 1;
        }
    }
    n
}

/// The package under node_modules, the handler and a bootstrap, in one zip.
fn bundle() -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let files = add_tree(&mut w, &package_dir(), "node_modules/aws-lambda-ric");
    assert!(
        files >= 4,
        "aws-lambda-ric package looks empty: {files} files"
    );
    let opts = zip::write::SimpleFileOptions::default();
    w.start_file("bootstrap", opts.unix_permissions(0o755))
        .unwrap();
    w.write_all(
        b"#!/bin/sh\ncd /var/task\nexec /usr/bin/node /var/task/node_modules/aws-lambda-ric/bin/index.mjs \"$_HANDLER\"\n",
    )
    .unwrap();
    w.start_file("index.js", opts.unix_permissions(0o644))
        .unwrap();
    w.write_all(
        br#"let calls = 0;
exports.handler = async (event, context) => {
  calls += 1;
  if (event.fail) throw new RangeError('wanted');
  return { client: 'aws-lambda-ric', calls, id: context.awsRequestId,
           mem: context.memoryLimitInMB, echo: event, node: process.version };
};
"#,
    )
    .unwrap();
    w.finish().unwrap().into_inner()
}

#[tokio::test]
async fn aws_lambda_ric_runs_as_the_runtime_client() {
    let agent = TestAgent::start().await;
    let mut c = agent.client().await;
    c.functions
        .create_function(CreateFunctionRequest {
            name: "noderic".into(),
            runtime: "provided".into(),
            handler: "index.handler".into(),
            memory_mb: 256,
            timeout_s: 10,
            code_zip: bundle(),
            ..Default::default()
        })
        .await
        .unwrap();
    let r = invoke_ok(&mut c, "noderic", r#"{"k": [1, 2]}"#).await;
    let v = json(&r);
    assert_eq!(v["client"], "aws-lambda-ric");
    assert_eq!(v["id"], r.request_id);
    assert_eq!(v["mem"], "256");
    assert_eq!(v["echo"]["k"][1], 2);
    assert!(v["node"].as_str().unwrap().starts_with("v18."), "{v}");
    let r = invoke(&mut c, "noderic", "{}").await;
    assert_eq!(
        json(&r)["calls"],
        2,
        "the aws-lambda-ric instance must be reused warm"
    );
    let r = invoke(&mut c, "noderic", r#"{"fail": true}"#).await;
    assert_eq!(r.function_error, "Unhandled");
    let v = json(&r);
    assert_eq!(v["errorType"], "RangeError", "{v}");
    assert_eq!(v["errorMessage"], "wanted", "{v}");
    // The same error document shape as flint's own nodejs18.x runtime.
    assert_eq!(v["trace"][0], "RangeError: wanted", "{v}");
}
