//! Generic gRPC clients against a real flintd on TCP: grpc-requests from PyPI
//! (installed by integration/fixtures/fetch-grpc-requests.sh into a cached virtualenv)
//! discovers the services by server reflection v1alpha, calls
//! flint.v1.Functions/ListFunctions with a token, and asks the health service about
//! each service by name (discovery.rs checks reflection v1 with a tonic client).

use flint_integration::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const SERVICES: &[&str] = &[
    "flint.v1.Functions",
    "flint.v1.Invocations",
    "flint.v1.Usage",
    "flint.v1.Node",
    "flint.v1.Events",
    "flint.v1.Triggers",
    "flint.v1.Roles",
    "flint.v1.Logs",
    "flint.v1.Layers",
];

fn venv_python() -> PathBuf {
    let cache = std::env::var("FLINT_CACHE_DIR").unwrap_or_else(|_| "/var/cache/flint".into());
    Path::new(&cache).join("venv/grpc-requests/bin/python")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

#[tokio::test]
async fn grpc_requests_discovers_and_calls_flint_by_reflection_v1alpha_with_health_per_service() {
    let py = venv_python();
    assert!(
        py.is_file(),
        "{} is missing: run integration/fixtures/fetch-grpc-requests.sh",
        py.display()
    );
    let addr = format!("127.0.0.1:{}", free_port());
    let agent = TestAgent::start_args(300, &["--listen", &addr]).await;
    let t0 = Instant::now();
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "gRPC not listening on {addr}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut local = agent.client().await;
    local
        .functions
        .create_function(python_function(
            "reflected",
            "def handler(e, c):\n    return 1\n",
        ))
        .await
        .expect("create over the socket");
    let out = Command::new(binary("flint"))
        .args(["--json", "keys", "create"])
        .arg("--data-dir")
        .arg(&agent.data_dir)
        .output()
        .expect("flint keys create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let k: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = k["token"].as_str().unwrap();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/grpc_reflection/reflect.py");
    let mut cmd = tokio::process::Command::new(&py);
    cmd.arg(&script)
        .arg(&addr)
        .arg(token)
        .args(SERVICES)
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .expect("grpc-requests stalled")
        .expect("run grpc-requests");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "grpc-requests failed: {stderr}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{stderr}", String::from_utf8_lossy(&out.stdout)));

    let found: Vec<&str> = r["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    for s in SERVICES.iter().chain(&["grpc.health.v1.Health"]) {
        assert!(found.contains(s), "{s} not discovered: {found:?}");
    }
    assert_eq!(r["functions"], serde_json::json!(["reflected"]), "{r}");
    for s in std::iter::once(&"").chain(SERVICES) {
        assert_eq!(r["health"][s], "SERVING", "health of {s:?}: {r}");
    }
    assert_eq!(r["unknown_service"], "NOT_FOUND", "{r}");
    assert_eq!(r["no_token"], "UNAUTHENTICATED", "{r}");
}
