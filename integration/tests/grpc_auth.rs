//! The gRPC API's locks, with a real flintd: on TCP (`--listen`) every call but health
//! checks needs `authorization: Bearer KEYID:SECRET` of a current key from
//! `flint keys create`, checked by a tonic client and by the `flint` CLI (--token and
//! FLINT_TOKEN); the Unix socket needs no token and is created with mode 0660 in
//! the `--socket-group` group.

use flint_agent::client::connect_with_token;
use flint_integration::*;
use flint_proto::v1::ListFunctionsRequest;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A flintd listening on TCP too; returns it and http://ADDR.
async fn start_tcp(extra: &[&str]) -> (TestAgent, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut args = vec!["--listen", &addr];
    args.extend_from_slice(extra);
    let agent = TestAgent::start_args(300, &args).await;
    let t0 = Instant::now();
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "gRPC not listening on {addr}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (agent, format!("http://{addr}"))
}

fn flint(args: &[&str], env_token: Option<&str>) -> Output {
    let mut cmd = Command::new(binary("flint"));
    cmd.args(args).env_remove("FLINT_TOKEN");
    if let Some(t) = env_token {
        cmd.env("FLINT_TOKEN", t);
    }
    cmd.output().expect("run flint")
}

fn key(agent: &TestAgent, action: &[&str]) -> serde_json::Value {
    let mut args = vec!["--json", "keys"];
    args.extend_from_slice(action);
    args.extend_from_slice(&["--data-dir", agent.data_dir.to_str().unwrap()]);
    let out = flint(&args, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

async fn list_code(endpoint: &str, token: Option<&str>) -> Result<usize, tonic::Status> {
    let mut c = connect_with_token(endpoint, token).await.expect("connect");
    tokio::time::timeout(
        Duration::from_secs(10),
        c.functions.list_functions(ListFunctionsRequest::default()),
    )
    .await
    .expect("ListFunctions stalled")
    .map(|r| r.into_inner().functions.len())
}

fn assert_refused(r: Result<usize, tonic::Status>, what: &str) {
    let e = r.expect_err(what);
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{what}: {e:?}");
    assert!(
        e.message().contains("flint keys create"),
        "{what}: the message says how to get a key: {}",
        e.message()
    );
}

#[tokio::test]
async fn tcp_calls_need_a_current_key_and_health_stays_open() {
    let (agent, ep) = start_tcp(&[]).await;

    // No key at all yet, then no token, a malformed one, an unknown id.
    assert_refused(list_code(&ep, None).await, "no token");
    let k = key(&agent, &["create", "--description", "grpc"]);
    let id = k["access_key_id"].as_str().unwrap().to_string();
    let secret = k["secret_access_key"].as_str().unwrap().to_string();
    let token = k["token"].as_str().unwrap().to_string();
    assert_eq!(token, format!("{id}:{secret}"));
    assert_refused(list_code(&ep, None).await, "no token");
    assert_refused(list_code(&ep, Some(&secret)).await, "secret only");
    let mut wrong = secret.clone();
    wrong.replace_range(0..1, if wrong.starts_with('A') { "B" } else { "A" });
    assert_refused(
        list_code(&ep, Some(&format!("{id}:{wrong}"))).await,
        "wrong secret",
    );
    assert_refused(
        list_code(&ep, Some(&format!("FLKAAAAAAAAAAAAAAAAA:{secret}"))).await,
        "unknown id",
    );

    // Health checks need no token.
    let c = connect_with_token(&ep, None).await.unwrap();
    let health = tonic_health::pb::health_client::HealthClient::new(c.channel.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health check without a token");
    assert_eq!(health.into_inner().status, 1, "SERVING");

    // The right token: CreateFunction from a tonic client, then the CLI with --token
    // and with FLINT_TOKEN.
    let mut c = connect_with_token(&ep, Some(&token)).await.unwrap();
    c.functions
        .create_function(python_function(
            "authed",
            "def handler(e, c):\n    return {'ok': True}\n",
        ))
        .await
        .expect("CreateFunction with a token");
    assert_eq!(list_code(&ep, Some(&token)).await.unwrap(), 1);
    let out = flint(&["--endpoint", &ep, "--token", &token, "ls"], None);
    assert!(
        out.status.success(),
        "flint --token: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("authed"));
    let out = flint(&["--endpoint", &ep, "ls"], Some(&token));
    assert!(
        out.status.success(),
        "FLINT_TOKEN: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = flint(
        &["--endpoint", &ep, "invoke", "authed", "--payload", "{}"],
        Some(&token),
    );
    assert!(
        out.status.success(),
        "invoke over TCP: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"ok\": true")
            || String::from_utf8_lossy(&out.stdout).contains("\"ok\":true"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = flint(&["--endpoint", &ep, "ls"], None);
    assert!(!out.status.success(), "flint without a token is refused");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("flint keys create"), "{err}");

    // A revoked key is refused from the next call on, on a connection made before.
    key(&agent, &["revoke", &id]);
    let e = c
        .functions
        .list_functions(ListFunctionsRequest::default())
        .await
        .expect_err("revoked key");
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    assert_refused(list_code(&ep, Some(&token)).await, "revoked key");

    // The Unix socket needs no token.
    let mut local = agent.client().await;
    let n = local
        .functions
        .list_functions(ListFunctionsRequest::default())
        .await
        .expect("Unix socket without a token")
        .into_inner()
        .functions
        .len();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn the_unix_socket_is_0660_owned_by_root_in_the_socket_group() {
    let gid = nix::unistd::getgid();
    let group = nix::unistd::Group::from_gid(gid)
        .unwrap()
        .expect("own group")
        .name;
    let agent = TestAgent::start_args(300, &["--socket-group", &group]).await;
    let m = std::fs::metadata(&agent.socket).unwrap();
    assert_eq!(m.mode() & 0o777, 0o660, "mode {:o}", m.mode() & 0o777);
    assert_eq!(m.uid(), nix::unistd::geteuid().as_raw());
    assert_eq!(m.gid(), gid.as_raw());

    let plain = TestAgent::start().await;
    let m = std::fs::metadata(&plain.socket).unwrap();
    assert_eq!(m.mode() & 0o777, 0o660);
}

#[test]
fn an_unknown_socket_group_stops_flintd_with_its_name() {
    let d = tempfile::tempdir().unwrap();
    let out = Command::new(binary("flintd"))
        .args([
            "--sandbox",
            "namespace",
            "--socket-group",
            "no-such-group-flint",
        ])
        .arg("--data-dir")
        .arg(d.path().join("data"))
        .arg("--socket")
        .arg(d.path().join("s.sock"))
        .arg("--images-dir")
        .arg(images_dir())
        .arg("--init-path")
        .arg(binary("flint-init"))
        .arg("--cgroup-parent")
        .arg(format!("flint-test-{}-badgroup", std::process::id()))
        .output()
        .expect("run flintd");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-group-flint"), "{err}");
}
