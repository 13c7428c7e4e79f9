//! Access-key policies on every front end of a real flintd: a key created with
//! `flint keys create --allow lambda:InvokeFunction:orders-*` cannot create, read or
//! delete functions, nor invoke others, on the REST API (boto3 gets
//! AccessDeniedException) or on gRPC over TCP (the CLI with --token gets
//! PERMISSION_DENIED with the same wording); it invokes matching functions. A key
//! without --allow keeps full access.

use flint_integration::*;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const REGION: &str = "eu-west-1";
const ACCOUNT: &str = "123456789012";

fn free_addr() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    format!("127.0.0.1:{port}")
}

async fn wait_port(addr: &str) {
    let t0 = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "nothing listens on {addr}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn flint(args: &[&str]) -> Output {
    Command::new(binary("flint"))
        .args(args)
        .env_remove("FLINT_TOKEN")
        .output()
        .expect("run flint")
}

fn create_key(agent: &TestAgent, allow: &[&str]) -> serde_json::Value {
    let mut args = vec!["--json", "keys", "create"];
    for a in allow {
        args.extend_from_slice(&["--allow", a]);
    }
    args.extend_from_slice(&["--data-dir", agent.data_dir.to_str().unwrap()]);
    let out = flint(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn an_invoke_only_key_cannot_create_functions_on_rest_or_grpc() {
    let (grpc, rest) = (free_addr(), free_addr());
    let agent = TestAgent::start_args(
        300,
        &[
            "--listen",
            &grpc,
            "--api-listen",
            &rest,
            "--region",
            REGION,
            "--account-id",
            ACCOUNT,
        ],
    )
    .await;
    wait_port(&grpc).await;
    wait_port(&rest).await;
    let sock = agent.socket.to_str().unwrap().to_string();
    assert!(flint(&["--endpoint", &sock, "roles", "create", "r"])
        .status
        .success());
    let mut c = agent.client().await;
    for name in ["orders-eu", "billing"] {
        c.functions
            .create_function(python_function(
                name,
                "def handler(e, c):\n    return {'ok': 1}\n",
            ))
            .await
            .expect("create over the socket");
    }
    let limited = create_key(&agent, &["lambda:InvokeFunction:orders-*"]);
    let full = create_key(&agent, &[]);
    assert_eq!(
        limited["policy"],
        serde_json::json!(["lambda:InvokeFunction:orders-*"])
    );
    assert!(full["policy"].is_null());
    // A typo is refused at creation, with the known actions.
    let bad = flint(&[
        "keys",
        "create",
        "--allow",
        "lambda:Invoke",
        "--data-dir",
        agent.data_dir.to_str().unwrap(),
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("lambda:InvokeFunction"));
    let list = flint(&[
        "keys",
        "list",
        "--data-dir",
        agent.data_dir.to_str().unwrap(),
    ]);
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(
        list.contains("[lambda:InvokeFunction:orders-*]") && list.contains("[full access]"),
        "{list}"
    );

    // REST, with boto3.
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/key_policies/boto3_limited.py");
    let mut cmd = tokio::process::Command::new("/usr/bin/python3");
    cmd.arg(&script)
        .arg(format!("http://{rest}"))
        .arg(limited["access_key_id"].as_str().unwrap())
        .arg(limited["secret_access_key"].as_str().unwrap())
        .arg(REGION)
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(40), cmd.output())
        .await
        .expect("boto3 stalled")
        .expect("run boto3");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "boto3 script failed: {stderr}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{stderr}", String::from_utf8_lossy(&out.stdout)));
    for denied in ["create", "invoke_other", "get", "delete"] {
        assert_eq!(r[denied]["code"], "AccessDeniedException", "{denied}: {r}");
        assert_eq!(r[denied]["http"], 403, "{denied}: {r}");
    }
    let msg = r["create"]["message"].as_str().unwrap();
    let key_id = limited["access_key_id"].as_str().unwrap();
    assert!(
        msg.starts_with(&format!(
            "User: arn:aws:iam::{ACCOUNT}:user/{key_id} is not authorized to perform: lambda:CreateFunction on resource: arn:aws:lambda:{REGION}:{ACCOUNT}:function:orders-new"
        )),
        "{msg}"
    );
    assert_eq!(r["invoke_match"]["ok"], true, "{r}");
    let payload: serde_json::Value =
        serde_json::from_str(r["invoke_match"]["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload, serde_json::json!({"ok": 1}), "{r}");

    // The AWS CLI with the same key.
    let home = tempfile::tempdir().unwrap();
    let zip = home.path().join("code.zip");
    std::fs::write(
        &zip,
        zip_files(&[("app.py", "def handler(e, c):\n    return 1\n")]),
    )
    .unwrap();
    let mut aws = tokio::process::Command::new("/usr/bin/aws");
    aws.args([
        "--endpoint-url",
        &format!("http://{rest}"),
        "lambda",
        "create-function",
    ])
    .args([
        "--function-name",
        "orders-cli",
        "--runtime",
        "python3.11",
        "--handler",
        "app.handler",
    ])
    .args(["--role", &format!("arn:aws:iam::{ACCOUNT}:role/r")])
    .arg("--zip-file")
    .arg(format!("fileb://{}", zip.display()))
    .env(
        "AWS_ACCESS_KEY_ID",
        limited["access_key_id"].as_str().unwrap(),
    )
    .env(
        "AWS_SECRET_ACCESS_KEY",
        limited["secret_access_key"].as_str().unwrap(),
    )
    .env("AWS_DEFAULT_REGION", REGION)
    .env("AWS_CONFIG_FILE", "/nonexistent")
    .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    .env("AWS_EC2_METADATA_DISABLED", "true")
    .env("AWS_MAX_ATTEMPTS", "1")
    .env("HOME", home.path())
    .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(40), aws.output())
        .await
        .expect("aws stalled")
        .expect("run aws");
    assert!(
        !out.status.success(),
        "the AWS CLI created a function with an invoke-only key"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("(AccessDeniedException) when calling the CreateFunction operation"),
        "{err}"
    );

    // gRPC over TCP, with the CLI and --token.
    let ep = format!("http://{grpc}");
    let tok = limited["token"].as_str().unwrap();
    let code_dir = tempfile::tempdir().unwrap();
    std::fs::write(
        code_dir.path().join("app.py"),
        "def handler(e, c):\n    return 1\n",
    )
    .unwrap();
    let code = code_dir.path().to_str().unwrap();
    let create = flint(&[
        "--endpoint",
        &ep,
        "--token",
        tok,
        "create",
        "orders-grpc",
        "--runtime",
        "python3.11",
        "--handler",
        "app.handler",
        "--code",
        code,
    ]);
    assert!(!create.status.success());
    let err = String::from_utf8_lossy(&create.stderr);
    assert!(err.contains("PermissionDenied"), "{err}");
    assert!(
        err.contains("is not authorized to perform: lambda:CreateFunction on resource: arn:aws:lambda:eu-west-1:123456789012:function:orders-grpc"),
        "{err}"
    );
    let ok = flint(&["--endpoint", &ep, "--token", tok, "invoke", "orders-eu"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let other = flint(&["--endpoint", &ep, "--token", tok, "invoke", "billing"]);
    assert!(String::from_utf8_lossy(&other.stderr).contains("PermissionDenied"));
    for denied in [
        &["ls"][..],
        &["get", "orders-eu"],
        &["rm", "orders-eu"],
        &["usage"],
        &["logs", "orders-eu"],
    ] {
        let mut args = vec!["--endpoint", &ep, "--token", tok];
        args.extend_from_slice(denied);
        let out = flint(&args);
        assert!(!out.status.success(), "{denied:?} was allowed");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("PermissionDenied"),
            "{denied:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The key without a policy may do everything, on both front ends.
    let full_tok = full["token"].as_str().unwrap();
    let made = flint(&[
        "--endpoint",
        &ep,
        "--token",
        full_tok,
        "create",
        "orders-grpc",
        "--runtime",
        "python3.11",
        "--handler",
        "app.handler",
        "--code",
        code,
    ]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let ls = flint(&["--endpoint", &ep, "--token", full_tok, "ls"]);
    assert!(ls.status.success() && String::from_utf8_lossy(&ls.stdout).contains("orders-grpc"));
}
