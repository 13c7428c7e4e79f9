//! Lambda's REST API end to end, with unmodified clients: Debian's python3-boto3 runs
//! integration/fixtures/lambda_api/boto3_scenario.py (create, invoke sync/Event/DryRun
//! with Tail logs and a function error, get by name and ARNs, list with pagination,
//! updates, concurrency, error shapes, bad signatures, delete), and Debian's awscli
//! runs the same kind of calls from the command line. Both sign with a key made by
//! `flint keys create`. Installed by images/host-deps.sh.

use flint_integration::client_run::run_within;
use flint_integration::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const REGION: &str = "eu-west-3";
const ACCOUNT: &str = "123456789012";
const PYTHON: &str = "/usr/bin/python3";
const AWS: &str = "/usr/bin/aws";

/// A flintd serving the REST API, and a key to sign with.
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

async fn start() -> RestAgent {
    start_with(&[], "http").await
}

/// Starts a flintd with the REST API (and `extra` flags), waits for its port and
/// creates a key.
async fn start_with(extra: &[&str], scheme: &str) -> RestAgent {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut args = vec![
        "--api-listen",
        &addr,
        "--region",
        REGION,
        "--account-id",
        ACCOUNT,
    ];
    args.extend_from_slice(extra);
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
        .args(["--json", "keys", "create", "--description", "tests"])
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
    // CreateFunction names an execution role, as Lambda requires: the scenario's is "r".
    let role = Command::new(binary("flint"))
        .args(["roles", "create", "r"])
        .arg("--endpoint")
        .arg(&agent.socket)
        .output()
        .expect("run flint roles create");
    assert!(
        role.status.success(),
        "{}",
        String::from_utf8_lossy(&role.stderr)
    );
    RestAgent {
        endpoint: format!("{scheme}://{addr}"),
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
async fn boto3_drives_the_whole_api() {
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
    cmd.arg(fixture("boto3_scenario.py"))
        .env("FLINT_API", &a.endpoint)
        .env("FLINT_REGION", REGION)
        .env("FLINT_ACCOUNT", ACCOUNT)
        .env("FLINT_KEY_ID", &a.key_id)
        .env("FLINT_KEY_SECRET", &a.secret)
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent");
    let out = run_within(cmd, Duration::from_secs(120));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim_end().ends_with("ALL PASSED"),
        "boto3 scenario failed ({})\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    drop(a.agent);
}

/// The AWS CLI with the agent's endpoint and a key (or a wrong secret).
fn aws(a: &RestAgent, home: &Path, secret: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(AWS);
    cmd.args(["--endpoint-url", &a.endpoint, "--output", "json", "lambda"])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", &a.key_id)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_DEFAULT_REGION", REGION)
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_MAX_ATTEMPTS", "1")
        .env("AWS_PAGER", "")
        .env("HOME", home);
    run_within(cmd, Duration::from_secs(60))
}

fn ok_json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "aws failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

#[tokio::test]
async fn the_aws_cli_creates_invokes_lists_and_deletes() {
    assert!(
        Path::new(AWS).is_file(),
        "Debian's awscli is missing: run images/host-deps.sh"
    );
    let a = start().await;
    let home = tempfile::tempdir().unwrap();
    let zip = home.path().join("code.zip");
    std::fs::write(
        &zip,
        zip_files(&[(
            "app.py",
            "def handler(event, context):\n    print('cli says', event['n'])\n    return {'double': event['n'] * 2}\n",
        )]),
    )
    .unwrap();
    let fileb = format!("fileb://{}", zip.display());
    let s = a.secret.clone();
    let f = ok_json(&aws(
        &a,
        home.path(),
        &s,
        &[
            "create-function",
            "--function-name",
            "cli",
            "--runtime",
            "python3.11",
            "--role",
            "arn:aws:iam::123456789012:role/r",
            "--handler",
            "app.handler",
            "--zip-file",
            &fileb,
            "--timeout",
            "7",
        ],
    ));
    assert_eq!(
        f["FunctionArn"],
        format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:cli")
    );
    assert_eq!(f["Timeout"], 7);

    let outfile = home.path().join("out.json");
    let r = ok_json(&aws(
        &a,
        home.path(),
        &s,
        &[
            "invoke",
            "--function-name",
            "cli",
            "--cli-binary-format",
            "raw-in-base64-out",
            "--payload",
            r#"{"n": 21}"#,
            "--log-type",
            "Tail",
            outfile.to_str().unwrap(),
        ],
    ));
    assert_eq!(r["StatusCode"], 200);
    assert_eq!(r["ExecutedVersion"], "$LATEST");
    let log = String::from_utf8(
        base64_decode(r["LogResult"].as_str().expect("LogResult")).expect("base64 log"),
    )
    .unwrap();
    assert!(log.contains("cli says 21"), "{log}");
    let body: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&outfile).unwrap()).unwrap();
    assert_eq!(body, serde_json::json!({"double": 42}));

    let r = ok_json(&aws(
        &a,
        home.path(),
        &s,
        &[
            "invoke",
            "--function-name",
            "cli",
            "--invocation-type",
            "Event",
            "--cli-binary-format",
            "raw-in-base64-out",
            "--payload",
            r#"{"n": 1}"#,
            outfile.to_str().unwrap(),
        ],
    ));
    assert_eq!(r["StatusCode"], 202);

    let c = ok_json(&aws(
        &a,
        home.path(),
        &s,
        &["get-function-configuration", "--function-name", "cli"],
    ));
    assert_eq!(c["Handler"], "app.handler");
    ok_json(&aws(
        &a,
        home.path(),
        &s,
        &[
            "create-function",
            "--function-name",
            "cli2",
            "--runtime",
            "python3.11",
            "--role",
            "r",
            "--handler",
            "app.handler",
            "--zip-file",
            &fileb,
        ],
    ));
    // The CLI follows NextMarker itself: pages of one still list both.
    let l = ok_json(&aws(
        &a,
        home.path(),
        &s,
        &["list-functions", "--page-size", "1"],
    ));
    let names: Vec<&str> = l["Functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["FunctionName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cli", "cli2"]);
    let u = ok_json(&aws(
        &a,
        home.path(),
        &s,
        &[
            "update-function-configuration",
            "--function-name",
            "cli",
            "--memory-size",
            "512",
        ],
    ));
    assert_eq!(u["MemorySize"], 512);

    let missing = aws(
        &a,
        home.path(),
        &s,
        &["get-function", "--function-name", "nope"],
    );
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("(ResourceNotFoundException)"), "{err}");

    let wrong = aws(&a, home.path(), "not-the-secret", &["list-functions"]);
    assert!(!wrong.status.success());
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(err.contains("(InvalidSignatureException)"), "{err}");

    ok_json(&aws(
        &a,
        home.path(),
        &s,
        &["delete-function", "--function-name", "cli"],
    ));
    let gone = aws(
        &a,
        home.path(),
        &s,
        &["get-function", "--function-name", "cli"],
    );
    assert!(String::from_utf8_lossy(&gone.stderr).contains("(ResourceNotFoundException)"));
    drop(a.agent);
}

#[tokio::test]
async fn boto3_over_tls_with_the_agents_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a = start_with(
        &[
            "--api-tls-cert",
            cert.to_str().unwrap(),
            "--api-tls-key",
            key.to_str().unwrap(),
        ],
        "https",
    )
    .await;
    let script = r#"
import os, sys, boto3, botocore
from botocore.config import Config
def client(ep, verify):
    return boto3.client("lambda", endpoint_url=ep, region_name=os.environ["R"], verify=verify,
                        aws_access_key_id=os.environ["K"], aws_secret_access_key=os.environ["S"],
                        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=10))
print(client(os.environ["EP"], os.environ["CERT"]).list_functions()["Functions"])
try:
    client(os.environ["EP"].replace("https:", "http:"), False).list_functions()
    print("plain HTTP was answered")
except (botocore.exceptions.ConnectionClosedError, botocore.exceptions.EndpointConnectionError,
        botocore.exceptions.ClientError) as e:
    print("plain HTTP refused:", type(e).__name__)
"#;
    let mut cmd = Command::new(PYTHON);
    cmd.args(["-c", script])
        .env("EP", &a.endpoint)
        .env("CERT", &cert)
        .env("R", REGION)
        .env("K", &a.key_id)
        .env("S", &a.secret)
        .env("AWS_CONFIG_FILE", "/nonexistent");
    let out = run_within(cmd, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("[]\n") && stdout.contains("plain HTTP refused"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_revoked_key_is_refused() {
    let a = start().await;
    let revoke = Command::new(binary("flint"))
        .args(["keys", "revoke", &a.key_id, "--data-dir"])
        .arg(&a.agent.data_dir)
        .output()
        .expect("flint keys revoke");
    assert!(
        revoke.status.success(),
        "{}",
        String::from_utf8_lossy(&revoke.stderr)
    );
    let home = tempfile::tempdir().unwrap();
    let out = aws(&a, home.path(), &a.secret, &["list-functions"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("(UnrecognizedClientException)"), "{err}");
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

/// Regression: unsigned requests were refused only after their whole body (up to
/// ~68 MB) had been buffered.
#[tokio::test]
async fn an_unsigned_request_is_refused_before_its_body_is_read() {
    use std::io::{Read, Write};
    let a = start().await;
    let addr = a.endpoint.trim_start_matches("http://").to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(
        b"POST /2015-03-31/functions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 60000000\r\n\r\n{",
    )
    .unwrap();
    let mut buf = [0u8; 4096];
    let n = s
        .read(&mut buf)
        .expect("an answer without sending the body");
    let text = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 403"), "{text}");
    assert!(
        text.contains("x-amzn-errortype: missingauthenticationtokenexception"),
        "{text}"
    );
    assert!(
        text.contains(r#"{"message":"missing authentication token"}"#),
        "{text}"
    );
}

/// With the microVM backend (no VM is booted: creating a function starts none) a memory
/// size beyond flint-vmm's limit is refused by CreateFunction and
/// UpdateFunctionConfiguration, naming the backend's limit.
#[tokio::test]
async fn memory_beyond_the_microvm_backend_is_refused_naming_its_limit() {
    assert!(
        Path::new(AWS).is_file(),
        "Debian's awscli is missing: run images/host-deps.sh"
    );
    let a = start_with(&["--sandbox", "microvm", "--pool-max", "0"], "http").await;
    let home = tempfile::tempdir().unwrap();
    let zip = home.path().join("code.zip");
    std::fs::write(
        &zip,
        zip_files(&[("app.py", "def handler(e, c):\n    return 1\n")]),
    )
    .unwrap();
    let fileb = format!("fileb://{}", zip.display());
    let s = a.secret.clone();
    let create = |memory: &'static str| {
        aws(
            &a,
            home.path(),
            &s,
            &[
                "create-function",
                "--function-name",
                "big",
                "--runtime",
                "python3.11",
                "--role",
                "arn:aws:iam::123456789012:role/r",
                "--handler",
                "app.handler",
                "--zip-file",
                &fileb,
                "--memory-size",
                memory,
            ],
        )
    };
    let limit = "memory size 4096 MB exceeds the microvm sandbox backend's limit of 3328 MB";
    let refused = create("4096");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "4096 MB accepted on microvm");
    assert!(
        err.contains("InvalidParameterValueException") && err.contains(limit),
        "{err}"
    );
    let f = ok_json(&create("3328"));
    assert_eq!(f["MemorySize"], 3328);
    let update = aws(
        &a,
        home.path(),
        &s,
        &[
            "update-function-configuration",
            "--function-name",
            "big",
            "--memory-size",
            "4096",
        ],
    );
    let err = String::from_utf8_lossy(&update.stderr);
    assert!(!update.status.success(), "update to 4096 MB accepted");
    assert!(
        err.contains("InvalidParameterValueException") && err.contains(limit),
        "{err}"
    );
    let got = ok_json(&aws(
        &a,
        home.path(),
        &s,
        &["get-function-configuration", "--function-name", "big"],
    ));
    assert_eq!(
        got["MemorySize"], 3328,
        "the refused update changed nothing"
    );
}

#[tokio::test]
async fn the_aws_cli_manages_event_invoke_configs() {
    assert!(
        Path::new(AWS).is_file(),
        "Debian's awscli is missing: run images/host-deps.sh"
    );
    let a = start().await;
    let mut c = a.agent.client().await;
    for name in ["src", "sink"] {
        c.functions
            .create_function(python_function(name, "def handler(e, c):\n    return 1\n"))
            .await
            .unwrap();
    }
    let home = tempfile::tempdir().unwrap();
    let s = a.secret.clone();
    let sink_arn = format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:sink");
    let dest = format!(r#"{{"OnFailure":{{"Destination":"{sink_arn}"}}}}"#);
    let put = ok_json(&aws(
        &a,
        home.path(),
        &s,
        &[
            "put-function-event-invoke-config",
            "--function-name",
            "src",
            "--maximum-retry-attempts",
            "1",
            "--maximum-event-age-in-seconds",
            "600",
            "--destination-config",
            &dest,
        ],
    ));
    assert_eq!(
        put["FunctionArn"],
        format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:src:$LATEST")
    );
    assert_eq!(put["MaximumRetryAttempts"], 1);
    assert_eq!(put["MaximumEventAgeInSeconds"], 600);
    assert_eq!(
        put["DestinationConfig"]["OnFailure"]["Destination"],
        sink_arn.as_str()
    );
    // Update merges: the retries change, the destination stays.
    ok_json(&aws(
        &a,
        home.path(),
        &s,
        &[
            "update-function-event-invoke-config",
            "--function-name",
            "src",
            "--maximum-retry-attempts",
            "0",
        ],
    ));
    let got = ok_json(&aws(
        &a,
        home.path(),
        &s,
        &["get-function-event-invoke-config", "--function-name", "src"],
    ));
    assert_eq!(got["MaximumRetryAttempts"], 0);
    assert_eq!(got["MaximumEventAgeInSeconds"], 600);
    assert_eq!(
        got["DestinationConfig"]["OnFailure"]["Destination"],
        sink_arn.as_str()
    );
    // The same configuration over gRPC.
    let g = c
        .events()
        .get_event_invoke_config(flint_proto::v1::GetEventInvokeConfigRequest {
            function_name: "src".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(g.on_failure, "sink");
    // A destination that does not exist is refused with Lambda's error.
    let bad = aws(
        &a,
        home.path(),
        &s,
        &[
            "put-function-event-invoke-config",
            "--function-name",
            "src",
            "--destination-config",
            r#"{"OnSuccess":{"Destination":"nowhere"}}"#,
        ],
    );
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("InvalidParameterValueException"), "{err}");
    // A webhook destination is kept as its URL; a URL flintd cannot POST to is
    // refused, saying what to use.
    let hook = "https://hooks.example.com/flint?k=1";
    let put = ok_json(&aws(
        &a,
        home.path(),
        &s,
        &[
            "update-function-event-invoke-config",
            "--function-name",
            "src",
            "--destination-config",
            &format!(r#"{{"OnSuccess":{{"Destination":"{hook}"}}}}"#),
        ],
    ));
    assert_eq!(put["DestinationConfig"]["OnSuccess"]["Destination"], hook);
    assert_eq!(
        put["DestinationConfig"]["OnFailure"]["Destination"],
        sink_arn.as_str()
    );
    let bad = aws(
        &a,
        home.path(),
        &s,
        &[
            "update-function-event-invoke-config",
            "--function-name",
            "src",
            "--destination-config",
            r#"{"OnSuccess":{"Destination":"ftp://files.example.com/x"}}"#,
        ],
    );
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("InvalidParameterValueException"), "{err}");
    assert!(err.contains("use http:// or https://"), "{err}");
    // ListFunctionEventInvokeConfigs: the function's configuration (of $LATEST).
    let listed = ok_json(&aws(
        &a,
        home.path(),
        &s,
        &[
            "list-function-event-invoke-configs",
            "--function-name",
            "src",
        ],
    ));
    let items = listed["FunctionEventInvokeConfigs"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{listed}");
    assert_eq!(items[0]["MaximumRetryAttempts"], 0);
    assert_eq!(
        items[0]["DestinationConfig"]["OnSuccess"]["Destination"],
        hook
    );
    let bad = aws(
        &a,
        home.path(),
        &s,
        &[
            "list-function-event-invoke-configs",
            "--function-name",
            "src",
            "--max-items",
            "51",
            "--page-size",
            "51",
        ],
    );
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success(), "MaxItems 51 accepted");
    assert!(err.contains("MaxItems 51"), "{err}");
    // Lambda's DeadLetterConfig on the function configuration is the dead-letter
    // target of the event invoke configuration.
    let upd = ok_json(&aws(
        &a,
        home.path(),
        &s,
        &[
            "update-function-configuration",
            "--function-name",
            "src",
            "--dead-letter-config",
            &format!("TargetArn={sink_arn}"),
        ],
    ));
    assert_eq!(upd["DeadLetterConfig"]["TargetArn"], sink_arn.as_str());
    let conf = ok_json(&aws(
        &a,
        home.path(),
        &s,
        &["get-function-configuration", "--function-name", "src"],
    ));
    assert_eq!(conf["DeadLetterConfig"]["TargetArn"], sink_arn.as_str());
    let bad = aws(
        &a,
        home.path(),
        &s,
        &[
            "update-function-configuration",
            "--function-name",
            "src",
            "--dead-letter-config",
            &format!("TargetArn=arn:aws:sqs:{REGION}:{ACCOUNT}:dlq"),
        ],
    );
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("InvalidParameterValueException"), "{err}");
    assert!(err.contains("http(s):// URL"), "{err}");
    // gRPC's ListEventInvokeConfigs lists every function's configuration.
    let all = c
        .events()
        .list_event_invoke_configs(flint_proto::v1::ListEventInvokeConfigsRequest {
            marker: String::new(),
            max_items: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.configs.len(), 1);
    assert_eq!(all.configs[0].function_name, "src");
    assert_eq!(all.configs[0].on_success, hook);
    assert_eq!(all.configs[0].dead_letter, "sink");
    assert_eq!(all.next_marker, "");
    ok_json(&aws(
        &a,
        home.path(),
        &s,
        &[
            "delete-function-event-invoke-config",
            "--function-name",
            "src",
        ],
    ));
    let gone = aws(
        &a,
        home.path(),
        &s,
        &["get-function-event-invoke-config", "--function-name", "src"],
    );
    assert!(!gone.status.success());
    let err = String::from_utf8_lossy(&gone.stderr);
    assert!(err.contains("ResourceNotFoundException"), "{err}");
    let listed = ok_json(&aws(
        &a,
        home.path(),
        &s,
        &[
            "list-function-event-invoke-configs",
            "--function-name",
            "src",
        ],
    ));
    assert_eq!(listed["FunctionEventInvokeConfigs"], serde_json::json!([]));
}

/// Function URLs (on http triggers) and event source mappings (on queue triggers)
/// with boto3, and curl on the URL: integration/fixtures/lambda_api/boto3_triggers.py.
#[tokio::test]
async fn boto3_function_urls_and_event_source_mappings() {
    let http = format!("127.0.0.1:{}", free_port());
    let a = start_with(&["--http-listen", &http], "http").await;
    let mut cmd = Command::new(PYTHON);
    cmd.arg(fixture("boto3_triggers.py"))
        .env("FLINT_API", &a.endpoint)
        .env("FLINT_HTTP", &http)
        .env("FLINT_REGION", REGION)
        .env("FLINT_ACCOUNT", ACCOUNT)
        .env("FLINT_KEY_ID", &a.key_id)
        .env("FLINT_KEY_SECRET", &a.secret)
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent");
    let out = run_within(cmd, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim_end().ends_with("ALL PASSED"),
        "boto3 triggers scenario failed ({})\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    drop(a.agent);
}
