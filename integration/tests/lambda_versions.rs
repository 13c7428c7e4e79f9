//! Versions and aliases end to end, with unmodified clients against a real flintd:
//! Debian's python3-boto3 runs integration/fixtures/lambda_api/boto3_versions.py
//! (publish, list, qualified reads and invocations, an 80/20 alias over 1,000
//! invocations, the error cases); Debian's awscli publishes, aliases and invokes by
//! qualifier; and the gRPC API with the `flint` CLI does the same through
//! `flint publish`, `flint aliases` and `flint invoke NAME:QUALIFIER`.

use flint_integration::client_run::run_within;
use flint_integration::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const REGION: &str = "eu-west-3";
const ACCOUNT: &str = "123456789012";
const PYTHON: &str = "/usr/bin/python3";
const AWS: &str = "/usr/bin/aws";

struct RestAgent {
    agent: TestAgent,
    endpoint: String,
    key_id: String,
    secret: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Runs the `flint` CLI against `agent`; panics with its output when it fails.
fn flint(agent: &TestAgent, args: &[&str]) -> String {
    let out = Command::new(binary("flint"))
        .arg("--endpoint")
        .arg(&agent.socket)
        .args(args)
        .output()
        .expect("run flint");
    assert!(
        out.status.success(),
        "flint {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A flintd with the REST API, a key and the execution role "r".
async fn start() -> RestAgent {
    let addr = format!("127.0.0.1:{}", free_port());
    let args = [
        "--api-listen",
        &addr,
        "--region",
        REGION,
        "--account-id",
        ACCOUNT,
    ];
    let agent = TestAgent::start_args(300, &args).await;
    let t0 = Instant::now();
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "REST API not listening on {addr}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = Command::new(binary("flint"))
        .args(["--json", "keys", "create"])
        .arg("--data-dir")
        .arg(&agent.data_dir)
        .output()
        .expect("run flint keys create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let k: serde_json::Value = serde_json::from_slice(&out.stdout).expect("keys create --json");
    flint(&agent, &["roles", "create", "r"]);
    RestAgent {
        endpoint: format!("http://{addr}"),
        key_id: k["access_key_id"].as_str().unwrap().to_string(),
        secret: k["secret_access_key"].as_str().unwrap().to_string(),
        agent,
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/lambda_api")
        .join(name)
}

#[tokio::test]
async fn boto3_publishes_routes_and_invokes_versions() {
    let check = Command::new(PYTHON)
        .args(["-c", "import boto3"])
        .output()
        .expect("run python3");
    assert!(
        check.status.success(),
        "Debian's python3-boto3 is missing: run images/host-deps.sh"
    );
    let a = start().await;
    let mut cmd = Command::new(PYTHON);
    cmd.arg(fixture("boto3_versions.py"))
        .env("FLINT_API", &a.endpoint)
        .env("FLINT_REGION", REGION)
        .env("FLINT_ACCOUNT", ACCOUNT)
        .env("FLINT_KEY_ID", &a.key_id)
        .env("FLINT_KEY_SECRET", &a.secret)
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent");
    let t0 = Instant::now();
    let out = run_within(cmd, Duration::from_secs(80));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim_end().ends_with("ALL PASSED"),
        "boto3 versions scenario failed ({})\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("boto3 versions scenario: {:?}\n{stdout}", t0.elapsed());
    drop(a.agent);
}

/// The AWS CLI with the agent's endpoint and key.
fn aws(a: &RestAgent, home: &Path, args: &[&str]) -> serde_json::Value {
    let mut cmd = Command::new(AWS);
    cmd.args(["--endpoint-url", &a.endpoint, "--output", "json", "lambda"])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", &a.key_id)
        .env("AWS_SECRET_ACCESS_KEY", &a.secret)
        .env("AWS_DEFAULT_REGION", REGION)
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_MAX_ATTEMPTS", "1")
        .env("AWS_PAGER", "")
        .env("HOME", home);
    let out = run_within(cmd, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "aws {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

const APP: &str = "import os\ndef handler(event, context):\n    return {'code': CODE, 'version': os.environ['AWS_LAMBDA_FUNCTION_VERSION'], 'arn': context.invoked_function_arn}\n";

fn app(code: u32) -> Vec<u8> {
    zip_files(&[("app.py", &APP.replace("CODE", &code.to_string()))])
}

#[tokio::test]
async fn the_aws_cli_publishes_aliases_and_invokes_by_qualifier() {
    assert!(
        Path::new(AWS).is_file(),
        "Debian's awscli is missing: run images/host-deps.sh"
    );
    let a = start().await;
    let home = tempfile::tempdir().unwrap();
    let zip = home.path().join("code.zip");
    std::fs::write(&zip, app(1)).unwrap();
    let fileb = format!("fileb://{}", zip.display());
    aws(
        &a,
        home.path(),
        &[
            "create-function",
            "--function-name",
            "cv",
            "--runtime",
            "python3.11",
            "--role",
            "arn:aws:iam::123456789012:role/r",
            "--handler",
            "app.handler",
            "--zip-file",
            &fileb,
        ],
    );
    let v1 = aws(
        &a,
        home.path(),
        &["publish-version", "--function-name", "cv"],
    );
    assert_eq!(v1["Version"], "1");
    std::fs::write(&zip, app(2)).unwrap();
    let v2 = aws(
        &a,
        home.path(),
        &[
            "update-function-code",
            "--function-name",
            "cv",
            "--zip-file",
            &fileb,
            "--publish",
        ],
    );
    assert_eq!(v2["Version"], "2", "{v2}");
    let alias = aws(
        &a,
        home.path(),
        &[
            "create-alias",
            "--function-name",
            "cv",
            "--name",
            "live",
            "--function-version",
            "2",
            "--routing-config",
            r#"{"AdditionalVersionWeights": {"1": 0.5}}"#,
        ],
    );
    assert_eq!(alias["RoutingConfig"]["AdditionalVersionWeights"]["1"], 0.5);
    let listed = aws(
        &a,
        home.path(),
        &["list-versions-by-function", "--function-name", "cv"],
    );
    let versions: Vec<&str> = listed["Versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["Version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["$LATEST", "1", "2"]);
    let out = home.path().join("out.json");
    for (q, want) in [("1", "1"), ("2", "2")] {
        let r = aws(
            &a,
            home.path(),
            &[
                "invoke",
                "--function-name",
                "cv",
                "--qualifier",
                q,
                out.to_str().unwrap(),
            ],
        );
        assert_eq!(r["ExecutedVersion"], want);
        let body: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        assert_eq!(body["version"], want);
        assert_eq!(body["code"].to_string(), want);
    }
    // By the alias's full ARN: one of its two versions runs, and the context's ARN
    // is the alias's (boto3's scenario measures the split).
    let r = aws(
        &a,
        home.path(),
        &[
            "invoke",
            "--function-name",
            &format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:cv:live"),
            out.to_str().unwrap(),
        ],
    );
    let ran = r["ExecutedVersion"].as_str().unwrap().to_string();
    assert!(ran == "1" || ran == "2", "{r}");
    let body: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert!(
        body["arn"].as_str().unwrap().ends_with(":cv:live"),
        "{body}"
    );
    assert_eq!(body["version"], ran.as_str());
    let aliases = aws(&a, home.path(), &["list-aliases", "--function-name", "cv"]);
    assert_eq!(aliases["Aliases"][0]["Name"], "live");
    aws(
        &a,
        home.path(),
        &["delete-alias", "--function-name", "cv", "--name", "live"],
    );
    aws(
        &a,
        home.path(),
        &[
            "delete-function",
            "--function-name",
            "cv",
            "--qualifier",
            "1",
        ],
    );
    drop(a.agent);
}

#[tokio::test]
async fn grpc_and_the_cli_publish_route_and_keep_instances_per_version() {
    let agent = TestAgent::start().await;
    let mut c = agent.client().await;
    let dir = tempfile::tempdir().unwrap();
    let write = |code: u32| {
        let d = dir.path().join(format!("v{code}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("app.py"), APP.replace("CODE", &code.to_string())).unwrap();
        d
    };
    c.functions
        .create_function(python_function("gv", &APP.replace("CODE", "1")))
        .await
        .expect("create");
    assert!(flint(&agent, &["publish", "gv", "--description", "one"]).contains("version 1"));
    let d2 = write(2);
    flint(
        &agent,
        &["update-code", "gv", "--code", d2.to_str().unwrap()],
    );
    assert!(flint(&agent, &["publish", "gv"]).contains("version 2"));
    flint(
        &agent,
        &[
            "aliases",
            "create",
            "gv",
            "live",
            "--version",
            "1",
            "--route",
            "2=0.3",
        ],
    );
    let got: serde_json::Value =
        serde_json::from_str(&flint(&agent, &["--json", "aliases", "get", "gv", "live"])).unwrap();
    assert_eq!(got["additional_version"], "2");
    // Invocations by version and alias through gRPC (NAME:QUALIFIER).
    for (name, want) in [("gv:1", "1"), ("gv:2", "2"), ("gv", "$LATEST")] {
        let r = invoke_ok(&mut c, name, "{}").await;
        assert_eq!(r.executed_version, want);
        assert_eq!(json(&r)["version"], want);
    }
    let mut twos = 0;
    for _ in 0..200 {
        let r = invoke_ok(&mut c, "gv:live", "{}").await;
        assert_eq!(json(&r)["version"], r.executed_version.as_str());
        twos += u32::from(r.executed_version == "2");
    }
    assert!(
        (30..=90).contains(&twos),
        "30 % of 200 went to version 2: {twos}"
    );
    // The CLI invokes NAME:QUALIFIER too.
    let out: serde_json::Value =
        serde_json::from_str(&flint(&agent, &["--json", "invoke", "gv:2"])).unwrap();
    assert_eq!(out["executed_version"], "2");
    // Updating $LATEST retires only $LATEST's instances: version 1 stays warm.
    let warm = invoke_ok(&mut c, "gv:1", "{}").await;
    assert!(!warm.timings.unwrap().cold_start, "version 1 is warm");
    let d3 = write(3);
    flint(
        &agent,
        &["update-code", "gv", "--code", d3.to_str().unwrap()],
    );
    let r = invoke_ok(&mut c, "gv:1", "{}").await;
    assert!(
        !r.timings.unwrap().cold_start,
        "updating $LATEST kept version 1's instance"
    );
    assert_eq!(json(&r)["code"], 1);
    let r = invoke_ok(&mut c, "gv", "{}").await;
    assert!(
        r.timings.unwrap().cold_start,
        "$LATEST's instance was retired"
    );
    assert_eq!(json(&r)["code"], 3);
    // Usage per version, and the delete refusal.
    let listed: serde_json::Value =
        serde_json::from_str(&flint(&agent, &["--json", "versions", "gv"])).unwrap();
    let by: Vec<(String, u64)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_str().unwrap().to_string(),
                v["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(by.len(), 3, "{by:?}");
    assert!(by.iter().all(|(_, n)| *n > 0), "usage per version: {by:?}");
    assert_eq!(by.iter().map(|(_, n)| n).sum::<u64>(), 3 + 200 + 1 + 3);
    let refused = Command::new(binary("flint"))
        .arg("--endpoint")
        .arg(&agent.socket)
        .args(["delete-version", "gv", "2"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("live"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    flint(&agent, &["aliases", "rm", "gv", "live"]);
    flint(&agent, &["delete-version", "gv", "2"]);
    let err = c
        .invocations
        .invoke(flint_proto::v1::InvokeRequest {
            function_name: "gv:2".into(),
            payload: b"{}".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
}
