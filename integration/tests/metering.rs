//! Metering end to end through a real flintd: the Usage API against a hand
//! computation from each invocation's billed_ms, the free tier, `since` filtering,
//! persistence across a restart, `flint usage`; the Prometheus endpoint with a
//! throttle; JSON logs carrying the invoke span's fields.

use flint_integration::*;
use flint_proto::v1::usage_client::UsageClient;
use flint_proto::v1::*;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const APP: &str = r#"import time

def handler(event, context):
    if event.get('fail'):
        raise ValueError('asked to fail')
    time.sleep(event.get('sleep', 0))
    return {'ok': True}
"#;

// Prices that make the hand computation readable: $2 a request, $0.5 a GB-second,
// 3 requests free.
const FLAGS: &[&str] = &[
    "--price-per-gb-second",
    "0.5",
    "--price-per-million-requests",
    "2000000",
    "--free-requests",
    "3",
];

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1e-12)
}

async fn create(c: &mut flint_agent::client::Client, name: &str, memory_mb: u32) {
    let mut req = python_function(name, APP);
    req.memory_mb = memory_mb;
    c.functions
        .create_function(req)
        .await
        .expect("create function");
}

/// What the test saw for one function: requests, errors, cold starts, billed ms.
#[derive(Default, Debug)]
struct Seen {
    requests: u64,
    errors: u64,
    cold: u64,
    billed_ms: u64,
}

impl Seen {
    fn add(&mut self, r: &InvokeResponse) {
        let t = r.timings.expect("timings in every response");
        self.requests += 1;
        self.errors += u64::from(!r.function_error.is_empty());
        self.cold += u64::from(t.cold_start);
        self.billed_ms += t.billed_ms;
    }
}

async fn usage(c: &flint_agent::client::Client, function: &str, since: u64) -> UsageReport {
    UsageClient::new(c.channel.clone())
        .get_usage(GetUsageRequest {
            function_name: function.into(),
            since_unix_ms: since,
        })
        .await
        .expect("GetUsage")
        .into_inner()
}

fn check(u: &FunctionUsage, seen: &Seen, memory_mb: u32) {
    assert_eq!(u.requests, seen.requests, "{u:?}");
    assert_eq!(u.errors, seen.errors, "{u:?}");
    assert_eq!(u.cold_starts, seen.cold, "{u:?}");
    assert_eq!(u.billed_ms, seen.billed_ms, "{u:?}");
    let gb_s = seen.billed_ms as f64 / 1000.0 * f64::from(memory_mb) / 1024.0;
    assert!(close(u.gb_seconds, gb_s), "{} vs {gb_s}", u.gb_seconds);
    assert!(close(u.compute_cost_usd, gb_s * 0.5), "{u:?}");
    // Per function: the request cost before the free tier.
    assert!(
        close(u.request_cost_usd, seen.requests as f64 * 2.0),
        "{u:?}"
    );
    assert!(close(u.cost_usd, u.request_cost_usd + u.compute_cost_usd));
}

fn flint(agent: &TestAgent, args: &[&str]) -> Output {
    Command::new(binary("flint"))
        .arg("--endpoint")
        .arg(&agent.socket)
        .args(args)
        .output()
        .expect("run flint")
}

#[tokio::test]
async fn usage_matches_billed_durations_and_survives_restart() {
    let mut agent = TestAgent::start_args(300, FLAGS).await;
    let mut c = agent.client().await;
    create(&mut c, "small", 128).await;
    create(&mut c, "big", 512).await;

    let (mut small, mut big) = (Seen::default(), Seen::default());
    for payload in ["{}", "{\"fail\": true}", "{}"] {
        small.add(&invoke(&mut c, "small", payload).await);
    }
    for _ in 0..2 {
        big.add(&invoke(&mut c, "big", "{}").await);
    }
    assert_eq!((small.errors, small.cold, big.cold), (1, 1, 1));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let t1 = now_ms();
    let late = invoke(&mut c, "small", "{}").await;
    small.add(&late);

    let r = usage(&c, "", 0).await;
    let names: Vec<&str> = r
        .functions
        .iter()
        .map(|f| f.function_name.as_str())
        .collect();
    assert_eq!(names, ["big", "small"]);
    check(&r.functions[0], &big, 512);
    check(&r.functions[1], &small, 128);
    let t = r.total.clone().expect("total");
    assert_eq!((t.requests, t.errors, t.cold_starts), (6, 1, 2));
    assert_eq!(t.billed_ms, small.billed_ms + big.billed_ms);
    let gb_s = (small.billed_ms * 128 + big.billed_ms * 512) as f64 / 1000.0 / 1024.0;
    assert!(close(t.gb_seconds, gb_s));
    // 6 requests, 3 free: 3 billed at $2.
    assert!(close(t.request_cost_usd, 6.0), "{t:?}");
    assert!(close(t.cost_usd, 6.0 + gb_s * 0.5), "{t:?}");
    let p = r.prices.expect("prices");
    assert_eq!(
        (
            p.per_gb_second_usd,
            p.per_million_requests_usd,
            p.free_requests
        ),
        (0.5, 2_000_000.0, 3)
    );

    // since: only the last invocation; under the free tier its request is free.
    let recent = usage(&c, "", t1).await;
    assert_eq!(recent.functions.len(), 1);
    let mut only_late = Seen::default();
    only_late.add(&late);
    check(&recent.functions[0], &only_late, 128);
    assert_eq!(recent.total.clone().unwrap().request_cost_usd, 0.0);
    // One function.
    let b = usage(&c, "big", 0).await;
    assert_eq!(b.functions.len(), 1);
    check(&b.functions[0], &big, 512);
    assert!(usage(&c, "", now_ms() + 60_000).await.functions.is_empty());

    // The CLI: JSON, the table, --since as a duration and as an RFC 3339 time.
    let o = flint(&agent, &["usage", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(j["total"]["requests"], 6);
    assert_eq!(j["functions"][1]["function_name"], "small");
    assert_eq!(j["functions"][1]["billed_ms"], small.billed_ms);
    let o = flint(&agent, &["usage", "--since", "1h"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{out}");
    let row = |name: &str| -> Vec<String> {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} row in\n{out}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(row("small")[1..4], ["4", "1", "1"]);
    assert_eq!(row("big")[1..4], ["2", "0", "1"]);
    assert_eq!(row("TOTAL")[1..4], ["6", "1", "2"]);
    assert!(out.contains("the first 3 requests are free"), "{out}");
    let since = flint_agent::timefmt::rfc3339_millis(t1 / 1000, (t1 % 1000) as u32);
    let o = flint(&agent, &["usage", "small", "--since", &since, "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(j["total"]["requests"], 1, "{j}");
    assert_eq!(j["since_unix_ms"], t1);
    let o = flint(&agent, &["usage", "--since", "last tuesday"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("RFC 3339"));

    // The records are on disk: a restarted agent reports the same.
    agent.restart().await;
    let c = agent.client().await;
    assert_eq!(usage(&c, "", 0).await, r);
    assert!(agent.data_dir.join("metering.db").is_file());
}

async fn scrape(port: u16, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the metrics port");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
        .await
        .expect("scrape answered within 5 s")
        .unwrap();
    out
}

fn value(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_count_invocations_errors_cold_starts_and_throttles() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let listen = format!("127.0.0.1:{port}");
    let agent = TestAgent::start_args(
        300,
        &["--metrics-listen", &listen, "--concurrency-limit", "1"],
    )
    .await;
    let mut c = agent.client().await;
    create(&mut c, "m", 128).await;
    let mut seen = Seen::default();
    let mut cold_pool_hits = 0;
    for payload in ["{}", "{\"fail\": true}", "{}"] {
        let r = invoke(&mut c, "m", payload).await;
        let t = r.timings.unwrap();
        cold_pool_hits += u64::from(t.cold_start && t.pool_hit);
        seen.add(&r);
    }
    // With a concurrency limit of 1, a second invocation while one runs is refused.
    let mut c2 = c.clone();
    let slow = tokio::spawn(async move { invoke(&mut c2, "m", "{\"sleep\": 1.5}").await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refused = c
        .invocations
        .invoke(InvokeRequest {
            function_name: "m".into(),
            payload: b"{}".to_vec(),
            ..Default::default()
        })
        .await
        .expect_err("throttled while the slow one runs");
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    seen.add(&slow.await.unwrap());

    let body = scrape(port, "/metrics").await;
    assert!(body.starts_with("HTTP/1.1 200 OK\r\n"), "{body}");
    assert!(body.contains("Content-Type: text/plain; version=0.0.4"));
    let v = |s: &str| value(&body, s).unwrap_or_else(|| panic!("no {s} in\n{body}"));
    assert_eq!(
        v("flint_invocations_total{function=\"m\",outcome=\"success\"}"),
        3.0
    );
    assert_eq!(
        v("flint_invocations_total{function=\"m\",outcome=\"function_error\"}"),
        1.0
    );
    assert_eq!(
        v("flint_errors_total{function=\"m\",error_type=\"ValueError\"}"),
        1.0
    );
    assert_eq!(
        v("flint_throttles_total{function=\"m\",limit=\"concurrency_limit\"}"),
        1.0
    );
    let cold = value(
        &body,
        "flint_cold_starts_total{function=\"m\",pool_hit=\"false\"}",
    )
    .unwrap_or(0.0)
        + value(
            &body,
            "flint_cold_starts_total{function=\"m\",pool_hit=\"true\"}",
        )
        .unwrap_or(0.0);
    assert_eq!(cold, seen.cold as f64);
    assert!(seen.cold >= 1);
    if cold_pool_hits > 0 {
        assert_eq!(
            v("flint_cold_starts_total{function=\"m\",pool_hit=\"true\"}"),
            cold_pool_hits as f64
        );
    }
    assert_eq!(
        v("flint_invocation_duration_seconds_count{function=\"m\"}"),
        4.0
    );
    assert_eq!(
        v("flint_invocation_duration_seconds_bucket{function=\"m\",le=\"+Inf\"}"),
        4.0
    );
    let slept = v("flint_invocation_duration_seconds_sum{function=\"m\"}");
    assert!(slept >= 1.5, "the slow invocation slept 1.5 s: sum {slept}");
    assert_eq!(
        v("flint_init_duration_seconds_count{function=\"m\"}"),
        seen.cold as f64
    );
    assert_eq!(v("flint_concurrency_in_use"), 0.0);
    assert_eq!(v("flint_concurrency_limit"), 1.0);
    assert!(v("flint_idle_instances") >= 1.0, "the instance is warm");
    assert!(v("flint_sandboxes{state=\"idle\"}") >= 1.0, "{body}");
    assert_eq!(v("flint_sandboxes{state=\"busy\"}"), 0.0);
    // Demand for (python3.11, 128) made a warm pool; its target is at least 1.
    assert!(
        v("flint_pool_target{runtime=\"python3.11\",memory_mb=\"128\",network=\"none\"}") >= 1.0,
        "{body}"
    );
    assert_eq!(v("flint_metering_dropped_records_total"), 0.0);

    let nf = scrape(port, "/").await;
    assert!(nf.starts_with("HTTP/1.1 404"), "{nf}");
}

#[tokio::test]
async fn json_logs_carry_the_invoke_span_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("flintd.sock");
    let log_path = tmp.path().join("flintd.log");
    let mut child = Command::new(binary("flintd"))
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .arg("--socket")
        .arg(&socket)
        .arg("--images-dir")
        .arg(images_dir())
        .arg("--init-path")
        .arg(binary("flint-init"))
        .arg("--cgroup-parent")
        .arg(format!("flint-test-{}-jsonlog", std::process::id()))
        .args(["--log-format", "json"])
        .env("FLINT_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("spawn flintd");
    let sock = socket.to_str().unwrap().to_string();
    let mut c = None;
    for _ in 0..500 {
        if let Ok(cl) = flint_agent::client::connect(&sock).await {
            c = Some(cl);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut c = c.expect("flintd started within 10 s");
    create(&mut c, "logged", 128).await;
    let r = invoke(&mut c, "logged", "{}").await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let st = child.wait().unwrap();
    // The agent removed its sandboxes; the parent cgroups are the test's to remove.
    for dir in
        flint_integration::cgroup_roots(&format!("flint-test-{}-jsonlog", std::process::id()))
    {
        let _ = std::fs::remove_dir(dir);
    }
    assert!(st.success(), "flintd exited with {st}");

    let log = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(!lines.is_empty(), "no log lines");
    let finished = lines
        .iter()
        .find(|l| l["message"] == "invocation finished")
        .unwrap_or_else(|| panic!("no 'invocation finished' line in\n{log}"));
    assert_eq!(finished["level"], "INFO");
    assert_eq!(finished["span"]["function"], "logged", "{finished}");
    assert_eq!(
        finished["span"]["request_id"],
        r.request_id.as_str(),
        "{finished}"
    );
}
