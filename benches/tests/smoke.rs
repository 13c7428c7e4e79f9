//! CI smoke test: `flint-bench --smoke` (quick mode, with the per-runtime and snapshot
//! scenarios cut to their minimum) against a real flintd (needs root, the built workspace
//! binaries, the runtime images and the Go and Rust fixtures of integration/fixtures) must
//! write results.json where every scenario produced numbers, with a chart each, and a
//! cold-start row for every runtime. Speed is not judged here.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Hang guard only; quick mode itself takes well under a minute.
const DEADLINE: Duration = Duration::from_secs(180);

const SCENARIOS: [&str; 11] = [
    "cold_empty",
    "breakdown",
    "warm",
    "throughput",
    "rest",
    "events",
    "density",
    "cold_pool",
    "cold_runtimes",
    "microvm",
    "microvm_snapshot",
];

/// The rows cold_runtimes must have, each with numbers.
const RUNTIMES: [&str; 6] = [
    "python3.11",
    "nodejs18.x",
    "ruby3.2",
    "java17",
    "provided (Go)",
    "provided (Rust)",
];

fn run_quick(out: &std::path::Path) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flint-bench"))
        .args(["--smoke", "--seed", "7", "--out"])
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("flint-bench starts");
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait flint-bench") {
            break st;
        }
        if t0.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("flint-bench --smoke did not finish within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    (status.code(), stderr)
}

fn finite(v: &serde_json::Value) -> bool {
    v.as_f64().is_some_and(f64::is_finite)
}

#[test]
fn quick_run_gives_every_scenario_numbers_and_a_chart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, stderr) = run_quick(dir.path());
    let path = dir.path().join("results.json");
    let body = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("no {} ({e}); flint-bench said:\n{stderr}", path.display()));
    let v: serde_json::Value = serde_json::from_slice(&body).expect("results.json is JSON");

    assert!(
        v["machine"]["cores"].as_u64().unwrap_or(0) >= 1,
        "machine description missing"
    );
    assert_eq!(v["seed"], 7);
    assert_eq!(v["mode"], "smoke");
    let scenarios = v["scenarios"].as_array().expect("scenarios array");
    let mut problems = Vec::new();
    for id in SCENARIOS {
        let Some(s) = scenarios.iter().find(|s| s["id"] == id) else {
            problems.push(format!("{id}: missing from results.json"));
            continue;
        };
        if s["status"] != "ok" {
            problems.push(format!("{id}: status {} ({})", s["status"], s["reason"]));
            continue;
        }
        let series = s["series"].as_array().cloned().unwrap_or_default();
        if series.is_empty() {
            problems.push(format!("{id}: no series"));
        }
        for x in &series {
            let st = &x["stats"];
            let ok = st["n"].as_u64().unwrap_or(0) > 0
                && ["min", "p50", "p90", "p99", "max", "mean"]
                    .iter()
                    .all(|k| finite(&st[k]));
            if !ok {
                problems.push(format!("{id}: series {} has no numbers: {st}", x["label"]));
            }
        }
        if !s["ratios"]
            .as_array()
            .is_some_and(|r| !r.is_empty() && r.iter().all(|r| finite(&r["value"])))
        {
            problems.push(format!("{id}: no baseline ratio"));
        }
        let chart = s["chart"].as_str().map(|c| dir.path().join(c));
        match chart.map(std::fs::read_to_string) {
            Some(Ok(svg)) if svg.starts_with("<svg") => {}
            other => problems.push(format!("{id}: no SVG chart ({other:?})")),
        }
    }
    if let Some(s) = scenarios.iter().find(|s| s["id"] == "cold_runtimes") {
        problems.extend(runtime_rows(s));
    }
    assert!(
        problems.is_empty(),
        "flint-bench --smoke (exit {code:?}) left scenarios without numbers:\n  {}\nits stderr:\n{stderr}",
        problems.join("\n  ")
    );
    assert_eq!(code, Some(0), "flint-bench failed:\n{stderr}");
    assert!(dir.path().join("summary.md").is_file());
}

/// Every runtime has an empty-pool p50, a pool-hit p50 and a floor in cold_runtimes' table.
fn runtime_rows(s: &serde_json::Value) -> Vec<String> {
    let rows = s["table"]["rows"].as_array().cloned().unwrap_or_default();
    let mut problems = Vec::new();
    for rt in RUNTIMES {
        let Some(row) = rows.iter().find(|r| r[0] == rt) else {
            problems.push(format!("cold_runtimes: no row for {rt}"));
            continue;
        };
        let num = |i: usize| row[i].as_str().is_some_and(|c| c.parse::<f64>().is_ok());
        if !num(2) || !num(4) || !num(6) {
            problems.push(format!(
                "cold_runtimes: {rt} lacks numbers (empty pool p50, pool hit p50, floor p50): {row}"
            ));
        }
    }
    problems
}
