//! Ephemeral storage as a per-function setting (issue 14, item 3), through a real
//! flintd with the namespace sandbox: a 128 MB function with a 1024 MB /tmp writes
//! more than 700 MB into it without an OOM and gets ENOSPC just past 1024 MB, while
//! one with the default gets ENOSPC just past 512 MB; Lambda's REST API (Debian's
//! python3-boto3, signed with a `flint keys create` key) reports the size (of
//! `$LATEST` and of a published version) and refuses sizes outside 512-10240 MB, as
//! the gRPC API does; `flint get` shows it.

use flint_agent::client::Client;
use flint_integration::*;
use flint_proto::v1::{GetFunctionRequest, UpdateFunctionConfigurationRequest};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const REGION: &str = "eu-west-3";
const PYTHON: &str = "/usr/bin/python3";
const MB: u64 = 1024 * 1024;

const APP: &str = r#"
import os
def handler(event, context):
    fd = os.open("/tmp/fill", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    chunk = b"\x5a" * (1 << 20)
    written, err = 0, 0
    try:
        while written < (2 << 30):
            written += os.write(fd, chunk)
        os.fsync(fd)
    except OSError as e:
        err = e.errno
    os.close(fd)
    os.unlink("/tmp/fill")
    return {"written": written, "errno": err}
"#;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Fills /tmp of `name` and checks ENOSPC comes just past `size_mb`.
async fn fills_to(c: &mut Client, name: &str, size_mb: u64) {
    filled_to(name, &json(&invoke_ok(c, name, "{}").await), size_mb);
}

/// Checks the fill's result `r` says ENOSPC came just past `size_mb`.
fn filled_to(name: &str, r: &serde_json::Value, size_mb: u64) {
    let written = r["written"].as_u64().unwrap();
    assert_eq!(r["errno"], 28, "{name}: ENOSPC expected: {r}");
    assert!(
        written >= size_mb * MB - 24 * MB && written < size_mb * MB + 24 * MB,
        "{name}: ENOSPC just past {size_mb} MB expected, not at {} MB",
        written / MB
    );
}

/// Runs a boto3 script against the agent's REST API, within 30 s; returns stdout.
fn boto3(endpoint: &str, key: &serde_json::Value, script: &str) -> String {
    let mut child = Command::new(PYTHON)
        .args(["-c", script])
        .env("EP", endpoint)
        .env("R", REGION)
        .env("K", key["access_key_id"].as_str().unwrap())
        .env("S", key["secret_access_key"].as_str().unwrap())
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3 (Debian's python3-boto3: images/host-deps.sh)");
    let t0 = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if t0.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "boto3 script failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// botocore checks the size's minimum itself: its check is off, so the server's is tested.
const SCRIPT: &str = r#"
import os, boto3, botocore
from botocore.config import Config
c = boto3.client("lambda", endpoint_url=os.environ["EP"], region_name=os.environ["R"],
                 aws_access_key_id=os.environ["K"], aws_secret_access_key=os.environ["S"],
                 config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=20,
                               parameter_validation=False))
print("big", c.get_function_configuration(FunctionName="big")["EphemeralStorage"]["Size"])
print("default", c.get_function_configuration(FunctionName="default")["EphemeralStorage"]["Size"])
for size in (511, 10241):
    try:
        c.update_function_configuration(FunctionName="big", EphemeralStorage={"Size": size})
        print("accepted", size)
    except botocore.exceptions.ClientError as e:
        print("refused", size, e.response["Error"]["Code"], e.response["Error"]["Message"])
v = c.publish_version(FunctionName="big")["Version"]
print("version", c.get_function_configuration(FunctionName="big", Qualifier=v)["EphemeralStorage"]["Size"])
u = c.update_function_configuration(FunctionName="default", EphemeralStorage={"Size": 2048})
print("updated", u["EphemeralStorage"]["Size"])
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tmp_has_the_functions_ephemeral_storage_size() {
    let addr = format!("127.0.0.1:{}", free_port());
    // One pre-started 128 MB sandbox (made with the pool's 512 MB /tmp) waits for "big".
    let agent = TestAgent::start_args(
        300,
        &[
            "--api-listen",
            &addr,
            "--region",
            REGION,
            "--pool-warm",
            "python3.11:128=1",
        ],
    )
    .await;
    let mut c = agent.client().await;
    for (name, size) in [("big", 1024), ("default", 0)] {
        let mut req = python_function(name, APP);
        req.memory_mb = 128;
        req.timeout_s = 60;
        req.ephemeral_storage_mb = size;
        let f = c.functions.create_function(req).await.expect("create");
        let want = if size == 0 { 512 } else { size };
        assert_eq!(f.into_inner().ephemeral_storage_mb, want);
    }
    let mut bad = python_function("bad", APP);
    bad.ephemeral_storage_mb = 100;
    let e = c.functions.create_function(bad).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("512-10240 MB"), "{}", e.message());

    // More than the memory size, no OOM, ENOSPC at the function's size; twice on the
    // same instance. The first start is a pool hit: the pre-started sandbox's /tmp
    // was replaced by one of the function's size with Configure.
    agent
        .wait_pool_ready("python3.11", 128, Duration::from_secs(60))
        .await;
    let first = invoke(&mut c, "big", "{}").await;
    let t = first.timings.expect("timings");
    assert!(t.cold_start && t.pool_hit, "expected a pool hit: {t:?}");
    filled_to("big", &json(&first), 1024);
    fills_to(&mut c, "big", 1024).await;
    fills_to(&mut c, "default", 512).await;
    assert_eq!(agent.instances_of("big").await, 1);

    // The REST API.
    while std::net::TcpStream::connect(&addr).is_err() {
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
    let key: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stdout = boto3(&format!("http://{addr}"), &key, SCRIPT);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[..2], ["big 1024", "default 512"], "{stdout}");
    assert!(
        lines[2].starts_with("refused 511 InvalidParameterValueException")
            && lines[2].contains("greater than or equal to 512"),
        "{stdout}"
    );
    assert!(
        lines[3].starts_with("refused 10241 InvalidParameterValueException")
            && lines[3].contains("less than or equal to 10240"),
        "{stdout}"
    );
    assert_eq!(lines[4], "version 1024", "{stdout}");
    assert_eq!(lines[5], "updated 2048", "{stdout}");

    // The change is stored and retires the idle instance; the next one has 2048 MB.
    let f = c
        .functions
        .get_function(GetFunctionRequest {
            name: "default".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(f.ephemeral_storage_mb, 2048);
    let out = Command::new(binary("flint"))
        .args(["get", "default", "--endpoint"])
        .arg(&agent.socket)
        .output()
        .expect("run flint get");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("/tmp:          2048 MB"), "{shown}");
    let t0 = Instant::now();
    while agent.instances_of("default").await != 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "idle instance not retired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let e = c
        .functions
        .update_function_configuration(UpdateFunctionConfigurationRequest {
            name: "default".into(),
            ephemeral_storage_mb: Some(10241),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
}
