//! A function that bundles AWS's own runtime interface client (awslambdaric, from
//! PyPI) and starts it from a custom-runtime bootstrap: flint-init's Runtime API must
//! be good enough for Lambda's real client.

use flint_integration::*;
use flint_proto::v1::*;
use std::io::{Read, Write};
use std::path::PathBuf;

fn wheels_dir() -> PathBuf {
    let cache = std::env::var("FLINT_CACHE_DIR").unwrap_or_else(|_| "/var/cache/flint".into());
    let dir = PathBuf::from(cache).join("wheels/awslambdaric");
    assert!(
        dir.is_dir(),
        "{} is missing: run integration/fixtures/fetch-wheels.sh first",
        dir.display()
    );
    dir
}

/// The wheels' contents, the handler and a bootstrap, in one zip.
fn bundle() -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let mut wheels = 0;
    for e in std::fs::read_dir(wheels_dir()).unwrap().flatten() {
        if e.path().extension().is_none_or(|x| x != "whl") {
            continue;
        }
        wheels += 1;
        let mut whl = zip::ZipArchive::new(std::fs::File::open(e.path()).unwrap()).unwrap();
        for i in 0..whl.len() {
            let mut f = whl.by_index(i).unwrap();
            if f.is_dir() {
                continue;
            }
            let mut data = Vec::new();
            f.read_to_end(&mut data).unwrap();
            let mode = f.unix_mode().unwrap_or(0o644) & 0o777 | 0o444;
            w.start_file(
                f.name(),
                zip::write::SimpleFileOptions::default().unix_permissions(mode),
            )
            .unwrap();
            w.write_all(&data).unwrap();
        }
    }
    assert!(wheels >= 1, "no wheels in {}", wheels_dir().display());
    let opts = zip::write::SimpleFileOptions::default();
    w.start_file("bootstrap", opts.unix_permissions(0o755))
        .unwrap();
    w.write_all(b"#!/bin/sh\nexport PYTHONPATH=/var/task\nexec /usr/bin/python3 -m awslambdaric \"$_HANDLER\"\n")
        .unwrap();
    w.start_file("app.py", opts.unix_permissions(0o644))
        .unwrap();
    w.write_all(
        b"import awslambdaric\ncalls = 0\ndef handler(event, context):\n    global calls\n    calls += 1\n    if event.get('fail'):\n        raise KeyError('wanted')\n    return {'client': 'awslambdaric', 'calls': calls, 'id': context.aws_request_id, 'echo': event}\n",
    )
    .unwrap();
    w.finish().unwrap().into_inner()
}

#[tokio::test]
async fn awslambdaric_runs_as_the_runtime_client() {
    let agent = TestAgent::start().await;
    let mut c = agent.client().await;
    c.functions
        .create_function(CreateFunctionRequest {
            name: "ric".into(),
            runtime: "provided".into(),
            handler: "app.handler".into(),
            memory_mb: 256,
            timeout_s: 10,
            code_zip: bundle(),
            ..Default::default()
        })
        .await
        .unwrap();
    let r = invoke_ok(&mut c, "ric", r#"{"k": [1, 2]}"#).await;
    let v = json(&r);
    assert_eq!(v["client"], "awslambdaric");
    assert_eq!(v["id"], r.request_id);
    assert_eq!(v["echo"]["k"][1], 2);
    let r = invoke(&mut c, "ric", "{}").await;
    assert_eq!(
        json(&r)["calls"],
        2,
        "awslambdaric instance must be reused warm"
    );
    let r = invoke(&mut c, "ric", r#"{"fail": true}"#).await;
    assert_eq!(r.function_error, "Unhandled");
    assert_eq!(
        json(&r)["errorType"],
        "KeyError",
        "{}",
        String::from_utf8_lossy(&r.payload)
    );
}
