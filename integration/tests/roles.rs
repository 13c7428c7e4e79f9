//! Execution roles and secrets at rest, end to end (docs/ROLES.md): a real flintd with
//! the REST API (`--api-listen`) and an operator key; a Python function with role R
//! calls `boto3.client('lambda').invoke(...)` with no credentials in its code
//! (integration/fixtures/roles/caller.py) and gets the callee's result through the
//! sandbox's loopback proxy (its network is none); a callee outside R's policy raises
//! AccessDeniedException; the container-credentials endpoint serves fresh credentials
//! (and refuses a wrong token), which botocore's own provider uses; the temporary
//! credentials work from outside until they expire, then ExpiredTokenException; the
//! data directory (the SQLite registry among it) holds neither the secret value nor
//! any credential in plain text; `flint get` masks the secret.

use flint_integration::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const REGION: &str = "eu-west-3";
const ACCOUNT: &str = "123456789012";
const PYTHON: &str = "/usr/bin/python3";
/// Lifetime of role credentials in this test: short, so expiry is seen in seconds, and
/// long enough for the calls made before the outside check (boto3 inside 128 MB
/// functions, 1/14 of a core each: 12 s ran out on a slow host).
const TTL_S: u64 = 30;
const SECRET_VALUE: &str = "s3cr3t-db-password-5b1f0c";
const NAMED_SECRET: &str = "named-secret-value-93ac2e";
const OTHER_SECRET: &str = "not-for-caller-7d41b9";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// An operator key file (mode `mode`) in `dir`.
fn key_file(dir: &Path, mode: u32) -> PathBuf {
    use base64::Engine;
    let p = dir.join(format!("operator-{mode:o}.key"));
    let key: Vec<u8> = (0..32u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(11))
        .collect();
    std::fs::write(
        &p,
        base64::engine::general_purpose::STANDARD.encode(key) + "\n",
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

/// Runs the `flint` CLI against `a`.
fn flint(a: &TestAgent, args: &[&str]) -> Output {
    Command::new(binary("flint"))
        .args(args)
        .arg("--endpoint")
        .arg(&a.socket)
        .output()
        .expect("run flint")
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Invokes `caller` with `event`; the function must not fail.
async fn call(c: &mut flint_agent::client::Client, event: serde_json::Value) -> serde_json::Value {
    let r = invoke_ok(c, "caller", &event.to_string()).await;
    json(&r)
}

/// Runs host-side boto3 with the given temporary credentials: Invoke `adder` through
/// the REST API's TCP listener; prints the result or the error code.
fn host_invoke(endpoint: &str, creds: &serde_json::Value) -> String {
    let script = r#"
import json, os, boto3, botocore.exceptions
c = boto3.client("lambda", endpoint_url=os.environ["EP"], region_name=os.environ["RG"])
try:
    r = c.invoke(FunctionName="adder", Payload=json.dumps({"a": 4, "b": 5}))
    print("OK", r["Payload"].read().decode())
except botocore.exceptions.ClientError as e:
    print("ERR", e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"])
"#;
    let mut child = Command::new(PYTHON)
        .args(["-c", script])
        .env("EP", endpoint)
        .env("RG", REGION)
        .env(
            "AWS_ACCESS_KEY_ID",
            creds["AWS_ACCESS_KEY_ID"].as_str().unwrap(),
        )
        .env(
            "AWS_SECRET_ACCESS_KEY",
            creds["AWS_SECRET_ACCESS_KEY"].as_str().unwrap(),
        )
        .env(
            "AWS_SESSION_TOKEN",
            creds["AWS_SESSION_TOKEN"].as_str().unwrap(),
        )
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "host boto3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn a_function_with_a_role_invokes_another_through_boto3_within_its_policy() {
    let check = Command::new(PYTHON)
        .args(["-c", "import boto3"])
        .output()
        .expect("run python3");
    assert!(
        check.status.success(),
        "Debian's python3-boto3 is missing: run images/host-deps.sh"
    );
    let keys = tempfile::tempdir().unwrap();
    let key = key_file(keys.path(), 0o600);
    let addr = format!("127.0.0.1:{}", free_port());
    let ttl = TTL_S.to_string();
    let a = TestAgent::start_args(
        300,
        &[
            "--api-listen",
            &addr,
            "--region",
            REGION,
            "--account-id",
            ACCOUNT,
            "--secrets-key-file",
            key.to_str().unwrap(),
            "--credentials-ttl",
            &ttl,
        ],
    )
    .await;
    let mut c = a.client().await;

    ok(
        flint(
            &a,
            &[
                "roles",
                "create",
                "caller-role",
                "--invoke",
                "adder",
                "--invoke",
                "report-*",
                "--read-secret",
                "db-*",
            ],
        ),
        "flint roles create",
    );
    ok(
        flint(
            &a,
            &["secrets", "put", "db-password", "--value", NAMED_SECRET],
        ),
        "flint secrets put",
    );
    ok(
        flint(
            &a,
            &["secrets", "put", "api-token", "--value", OTHER_SECRET],
        ),
        "flint secrets put",
    );
    let listed = ok(flint(&a, &["secrets", "ls"]), "flint secrets ls");
    assert!(
        listed.contains("db-password") && !listed.contains(NAMED_SECRET),
        "{listed}"
    );
    let roles = ok(flint(&a, &["--json", "roles", "ls"]), "flint roles ls");
    assert!(
        roles.contains("arn:aws:iam::123456789012:role/caller-role"),
        "{roles}"
    );

    let adder = "def handler(e, c):\n    return {'sum': e['a'] + e['b']}\n";
    c.functions
        .create_function(python_function("adder", adder))
        .await
        .expect("create adder");
    c.functions
        .create_function(python_function("billing", adder))
        .await
        .expect("create billing");
    let mut caller = python_function("caller", include_str!("../fixtures/roles/caller.py"));
    caller.timeout_s = 30;
    caller.memory_mb = 256;
    caller.role = "arn:aws:iam::123456789012:role/caller-role".into();
    caller.environment = [("PLAIN".to_string(), "visible".to_string())].into();
    caller.secret_environment = [("DB_PASSWORD".to_string(), SECRET_VALUE.to_string())].into();
    let f = c
        .functions
        .create_function(caller)
        .await
        .expect("create caller")
        .into_inner();
    assert_eq!(f.role, "caller-role");
    assert_eq!(f.secret_environment_keys, vec!["DB_PASSWORD".to_string()]);

    // Within the policy: the callee's result, through the loopback proxy (network none).
    let r = call(
        &mut c,
        serde_json::json!({"op": "invoke", "target": "adder", "payload": {"a": 2, "b": 3}}),
    )
    .await;
    assert_eq!(r, serde_json::json!({"ok": {"sum": 5}}), "{r}");

    // Outside the policy: AccessDeniedException, 403, IAM's wording.
    let r = call(
        &mut c,
        serde_json::json!({"op": "invoke", "target": "billing", "payload": {"a": 1, "b": 1}}),
    )
    .await;
    assert_eq!(r["error"], "AccessDeniedException", "{r}");
    assert_eq!(r["status"], 403, "{r}");
    let msg = r["message"].as_str().unwrap();
    assert!(
        msg.contains("assumed-role/caller-role/caller")
            && msg.contains("lambda:InvokeFunction")
            && msg.contains("function:billing"),
        "{msg}"
    );

    // The environment: the secret decrypted into the sandbox, Lambda's credentials.
    let env = call(
        &mut c,
        serde_json::json!({"op": "env", "expect": SECRET_VALUE}),
    )
    .await;
    assert_eq!(env["secret_ok"], true, "{env}");
    assert_eq!(env["region"], REGION, "{env}");
    let creds = env["creds"].clone();
    let key_id = creds["AWS_ACCESS_KEY_ID"].as_str().unwrap().to_string();
    assert!(key_id.starts_with("ASIA") && key_id.len() == 20, "{creds}");

    // The credentials endpoint: fresh credentials with the right token only, and they work.
    let ep = call(&mut c, serde_json::json!({"op": "endpoint"})).await;
    assert_eq!(ep["status"], 200, "{ep}");
    assert_eq!(ep["wrong_token_status"], 403, "{ep}");
    let doc = &ep["doc"];
    assert_ne!(doc["AccessKeyId"], ep["env_key"], "fresh credentials: {ep}");
    assert!(doc["Token"].as_str().unwrap().starts_with("FLT1."), "{ep}");
    let expiration = chrono::DateTime::parse_from_rfc3339(doc["Expiration"].as_str().unwrap())
        .expect("Expiration is RFC 3339");
    let left = expiration.timestamp() - chrono::Utc::now().timestamp();
    assert!(
        left > 0 && left <= TTL_S as i64,
        "expires in {left} s: {ep}"
    );
    assert_eq!(
        ep["with_fresh"],
        serde_json::json!({"ok": {"sum": 42}}),
        "{ep}"
    );

    // Named secrets: what the role's read_secrets names, and nothing else.
    let s = call(
        &mut c,
        serde_json::json!({"op": "secret", "name": "db-password"}),
    )
    .await;
    assert_eq!(s["status"], 200, "{s}");
    assert_eq!(s["doc"]["SecretString"], NAMED_SECRET, "{s}");
    let s = call(
        &mut c,
        serde_json::json!({"op": "secret", "name": "api-token"}),
    )
    .await;
    assert_eq!(s["status"], 403, "{s}");
    assert!(!s.to_string().contains(OTHER_SECRET), "{s}");

    // botocore's own container provider, with no keys in the environment.
    let p = call(&mut c, serde_json::json!({"op": "provider"})).await;
    assert_eq!(p["method"], "container-role", "{p}");
    assert_eq!(p["result"], serde_json::json!({"ok": {"sum": 3}}), "{p}");

    // The same temporary credentials from outside: accepted by the REST API's SigV4
    // check until they expire, then ExpiredTokenException.
    let endpoint = format!("http://{addr}");
    let minted = Instant::now();
    assert_eq!(host_invoke(&endpoint, &creds), r#"OK {"sum": 9}"#);
    let fresh = serde_json::json!({
        "AWS_ACCESS_KEY_ID": doc["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": doc["SecretAccessKey"],
        "AWS_SESSION_TOKEN": doc["Token"],
    });
    let mut forged = fresh.clone();
    forged["AWS_SESSION_TOKEN"] = format!("{}x", doc["Token"].as_str().unwrap()).into();
    assert_eq!(
        host_invoke(&endpoint, &forged),
        "ERR UnrecognizedClientException 403"
    );

    // flint get masks the secret; its JSON too.
    let text = ok(flint(&a, &["get", "caller"]), "flint get");
    assert!(text.contains("DB_PASSWORD=****"), "{text}");
    assert!(
        text.contains("PLAIN=visible") && text.contains("caller-role"),
        "{text}"
    );
    let js = ok(flint(&a, &["--json", "get", "caller"]), "flint get --json");
    assert!(js.contains(r#""DB_PASSWORD":"****""#), "{js}");
    for out in [&text, &js] {
        assert!(!out.contains(SECRET_VALUE), "{out}");
    }

    // Nothing under the data directory (registry, its WAL, logs, metering) holds the
    // secret or a credential in plain text.
    let needles = [
        SECRET_VALUE.to_string(),
        NAMED_SECRET.to_string(),
        OTHER_SECRET.to_string(),
        creds["AWS_SECRET_ACCESS_KEY"].as_str().unwrap().to_string(),
        creds["AWS_SESSION_TOKEN"].as_str().unwrap().to_string(),
        doc["SecretAccessKey"].as_str().unwrap().to_string(),
        doc["Token"].as_str().unwrap().to_string(),
    ];
    let files = files_under(&a.data_dir);
    assert!(
        files.iter().any(|f| f.ends_with("flint.db")),
        "no registry in {files:?}"
    );
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        for n in &needles {
            assert!(
                !contains(&bytes, n),
                "{} holds {n:?} in plain text",
                f.display()
            );
        }
    }

    // Expiry: the environment's credentials stop working after their lifetime.
    let wait = Duration::from_secs(TTL_S + 1).saturating_sub(minted.elapsed());
    tokio::time::sleep(wait).await;
    assert_eq!(
        host_invoke(&endpoint, &creds),
        "ERR ExpiredTokenException 403"
    );
    // The instance holding them was retired before that: a new call still works.
    let r = call(
        &mut c,
        serde_json::json!({"op": "invoke", "target": "adder", "payload": {"a": 7, "b": 8}}),
    )
    .await;
    assert_eq!(r, serde_json::json!({"ok": {"sum": 15}}), "{r}");

    // A role in use is not deleted; secrets are refused without a policy entry name.
    let out = flint(&a, &["roles", "rm", "caller-role"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("caller"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(a);
}

#[tokio::test]
async fn secrets_without_an_operator_key_and_a_readable_key_file_are_refused() {
    // A key file its group can read: flintd refuses to start, saying how to fix it.
    let keys = tempfile::tempdir().unwrap();
    let bad = key_file(keys.path(), 0o640);
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(binary("flintd"))
        .arg("--data-dir")
        .arg(data.path())
        .arg("--socket")
        .arg(data.path().join("s.sock"))
        .arg("--images-dir")
        .arg(images_dir())
        .arg("--init-path")
        .arg(binary("flint-init"))
        .arg("--secrets-key-file")
        .arg(&bad)
        .env_remove("FLINT_SECRETS_KEY")
        .output()
        .expect("run flintd");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "flintd started with {err}");
    assert!(err.contains("chmod 600"), "{err}");

    // No operator key: a secret variable is refused with how to set one.
    let a = TestAgent::start().await;
    let mut c = a.client().await;
    let mut f = python_function("s", "def handler(e, c):\n    return 1\n");
    f.secret_environment = [("K".to_string(), "v".to_string())].into();
    let e = c.functions.create_function(f).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    assert!(
        e.message().contains("--secrets-key-file") && e.message().contains("FLINT_SECRETS_KEY"),
        "{}",
        e.message()
    );
    let code = tempfile::tempdir().unwrap();
    std::fs::write(
        code.path().join("app.py"),
        "def handler(e, c):\n    return 1\n",
    )
    .unwrap();
    let out = flint(
        &a,
        &[
            "create",
            "s2",
            "--runtime",
            "python3.11",
            "--handler",
            "app.handler",
            "--code",
            code.path().to_str().unwrap(),
            "--secret-env",
            "K=v",
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("FLINT_SECRETS_KEY"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = flint(&a, &["secrets", "put", "db", "--value", "x"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--secrets-key-file"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(a);
}
