//! `flint logs` and `flint history` against a real flintd: a function's log lines from
//! its log files (all, one invocation's with --request-id, those since a time), --follow
//! seeing a new invocation within a second and across a rotation, the invocation
//! history from the metering database newest first, log files past
//! --function-log-retention-days removed, and --version keeping one version's
//! invocations.

use flint_integration::*;
use std::io::BufRead;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

fn flint(agent: &TestAgent, args: &[&str]) -> Output {
    let out = Command::new(binary("flint"))
        .arg("--endpoint")
        .arg(&agent.socket)
        .args(args)
        .output()
        .expect("run flint");
    assert!(
        out.status.success(),
        "flint {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const APP: &str = "import sys\n\
def handler(e, c):\n    \
    print('said', e['n'])\n    \
    if e.get('big'):\n        \
        sys.stdout.write(('x' * 99 + '\\n') * 300)\n    \
    if e.get('fail'):\n        \
        raise ValueError('no ' + str(e['n']))\n    \
    return e['n']\n";

#[tokio::test]
async fn logs_by_request_and_since_then_history_newest_first() {
    let agent = TestAgent::start().await;
    let mut c = agent.client().await;
    c.functions
        .create_function(python_function("talker", APP))
        .await
        .expect("create");
    let a = invoke_ok(&mut c, "talker", r#"{"n": 1}"#).await.request_id;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let b = invoke(&mut c, "talker", r#"{"n": 2, "fail": true}"#).await;
    assert_eq!(b.function_error, "Unhandled");
    let b = b.request_id;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let between = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let d = invoke_ok(&mut c, "talker", r#"{"n": 3}"#).await.request_id;

    let all = text(&flint(&agent, &["logs", "talker"]));
    for (id, said) in [(&a, "said 1"), (&b, "said 2"), (&d, "said 3")] {
        assert!(all.contains(&format!("START RequestId: {id}")), "{all}");
        assert!(all.contains(said), "{all}");
    }
    let one = text(&flint(&agent, &["logs", "talker", "--request-id", &b]));
    assert!(one.starts_with(&format!("START RequestId: {b}")), "{one}");
    assert!(
        one.trim_end()
            .lines()
            .last()
            .unwrap()
            .starts_with(&format!("REPORT RequestId: {b}")),
        "{one}"
    );
    assert!(
        one.contains("said 2") && one.contains("ValueError"),
        "{one}"
    );
    assert!(!one.contains("said 1") && !one.contains("said 3"), "{one}");
    let since = flint_agent::timefmt::rfc3339_millis(between / 1000, (between % 1000) as u32);
    let recent = text(&flint(&agent, &["logs", "talker", "--since", &since]));
    assert!(
        recent.contains("said 3") && !recent.contains("said 1") && !recent.contains("said 2"),
        "{recent}"
    );
    let ten_min = text(&flint(&agent, &["logs", "talker", "--since", "10m"]));
    assert!(
        ten_min.contains("said 1") && ten_min.contains("said 3"),
        "{ten_min}"
    );

    // History: newest first, with outcome, error type and cold start.
    let h = text(&flint(&agent, &["--json", "history", "talker"]));
    let rows: Vec<serde_json::Value> = h
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<&str> = rows
        .iter()
        .map(|r| r["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [d.as_str(), b.as_str(), a.as_str()], "{h}");
    assert_eq!(rows[1]["outcome"], "function_error", "{h}");
    assert_eq!(rows[1]["error_type"], "ValueError", "{h}");
    assert_eq!(rows[0]["outcome"], "success", "{h}");
    assert_eq!(rows[2]["cold_start"], true, "{h}");
    assert_eq!(rows[0]["cold_start"], false, "{h}");
    assert!(rows[0]["duration_ms"].as_f64().unwrap() > 0.0, "{h}");
    let h = text(&flint(
        &agent,
        &["--json", "history", "talker", "--limit", "1"],
    ));
    assert_eq!(h.lines().count(), 1);
    assert!(h.contains(&d), "{h}");
    let h = text(&flint(
        &agent,
        &["--json", "history", "talker", "--since", &since],
    ));
    assert_eq!(h.lines().count(), 1, "{h}");
    let table = text(&flint(&agent, &["history", "talker"]));
    assert!(
        table.starts_with("REQUEST ID") && table.contains("ValueError"),
        "{table}"
    );
    // A name that is no function: NOT_FOUND for logs.
    let out = Command::new(binary("flint"))
        .arg("--endpoint")
        .arg(&agent.socket)
        .args(["logs", "nobody"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NotFound"));
}

#[tokio::test]
async fn follow_sees_a_new_invocation_within_a_second_and_across_rotation() {
    // 64 KiB files: a "big" invocation writes ~30 KB, so three rotate the file.
    let agent = TestAgent::start_args(300, &["--function-log-max-bytes", "65536"]).await;
    let mut c = agent.client().await;
    c.functions
        .create_function(python_function("tail", APP))
        .await
        .expect("create");
    invoke_ok(&mut c, "tail", r#"{"n": 0}"#).await;
    let mut child = Command::new(binary("flint"))
        .arg("--endpoint")
        .arg(&agent.socket)
        .args(["logs", "tail", "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("flint logs --follow");
    let (tx, rx) = std::sync::mpsc::channel::<(Instant, String)>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(l) = line else { return };
            if tx.send((Instant::now(), l)).is_err() {
                return;
            }
        }
    });
    // The backlog first.
    let wait_for =
        |rx: &std::sync::mpsc::Receiver<(Instant, String)>, want: &str, within: Duration| {
            let t0 = Instant::now();
            loop {
                let left = within.saturating_sub(t0.elapsed());
                match rx.recv_timeout(left) {
                    Ok((at, l)) if l.contains(want) => return at,
                    Ok(_) => {}
                    Err(_) => panic!("{want:?} not followed within {within:?}"),
                }
            }
        };
    wait_for(&rx, "said 0", Duration::from_secs(5));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = invoke_ok(&mut c, "tail", r#"{"n": 1}"#).await;
    let done = Instant::now();
    let seen = wait_for(
        &rx,
        &format!("REPORT RequestId: {}", r.request_id),
        Duration::from_secs(5),
    );
    let lag = seen.saturating_duration_since(done);
    assert!(lag < Duration::from_secs(1), "followed after {lag:?}");
    // Across rotations: every invocation's REPORT arrives, in order.
    let logs = agent.data_dir.join("logs");
    let mut ids = Vec::new();
    for n in 2..6 {
        ids.push(
            invoke_ok(&mut c, "tail", &format!(r#"{{"n": {n}, "big": true}}"#))
                .await
                .request_id,
        );
    }
    assert!(logs.join("tail.log.1").exists(), "the log rotated");
    for id in &ids {
        wait_for(
            &rx,
            &format!("REPORT RequestId: {id}"),
            Duration::from_secs(5),
        );
    }
    let _ = child.kill();
    let _ = child.wait();

    // --follow with --request-id ends after that invocation's REPORT.
    let last = ids.last().unwrap();
    let mut one = tokio::process::Command::new(binary("flint"));
    one.arg("--endpoint")
        .arg(&agent.socket)
        .args(["logs", "tail", "--follow", "--request-id", last])
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(10), one.output())
        .await
        .expect("--follow --request-id did not end at the REPORT")
        .expect("run flint logs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!("START RequestId: {last}")),
        "{}",
        &text[..200.min(text.len())]
    );
    assert!(text.trim_end().ends_with("MB") && text.contains(&format!("REPORT RequestId: {last}")));
}

#[tokio::test]
async fn logs_past_the_retention_are_removed_at_start() {
    let mut agent = TestAgent::start_args(300, &["--function-log-retention-days", "2"]).await;
    let mut c = agent.client().await;
    c.functions
        .create_function(python_function("kept", APP))
        .await
        .expect("create");
    invoke_ok(&mut c, "kept", r#"{"n": 1}"#).await;
    drop(c);
    let logs = agent.data_dir.join("logs");
    let old = logs.join("gone.log.1");
    let stale = logs.join("stale.log");
    for f in [&old, &stale] {
        std::fs::write(f, "START RequestId: x Version: $LATEST\n").unwrap();
        std::fs::File::options()
            .write(true)
            .open(f)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(3 * 86_400))
            .unwrap();
    }
    let young = logs.join("young.log.1");
    std::fs::write(&young, "y\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&young)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(86_400))
        .unwrap();
    agent.restart().await;
    let t0 = Instant::now();
    while old.exists() || stale.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "expired logs still there"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(young.exists(), "a log within the retention is kept");
    assert!(logs.join("kept.log").exists());
}

#[tokio::test]
async fn logs_by_version_keep_the_invocations_of_that_version() {
    let agent = TestAgent::start().await;
    let mut c = agent.client().await;
    c.functions
        .create_function(python_function("vlog", APP))
        .await
        .expect("create");
    let published = text(&flint(&agent, &["publish", "vlog"]));
    assert!(published.contains("version 1"), "{published}");
    let one = invoke_ok(&mut c, "vlog:1", r#"{"n": 1}"#).await.request_id;
    let latest = invoke_ok(&mut c, "vlog", r#"{"n": 2}"#).await.request_id;

    let v1 = text(&flint(&agent, &["logs", "vlog", "--version", "1"]));
    assert!(
        v1.contains(&format!("START RequestId: {one} Version: 1")) && v1.contains("said 1"),
        "{v1}"
    );
    assert!(!v1.contains(&latest) && !v1.contains("said 2"), "{v1}");
    let l = text(&flint(&agent, &["logs", "vlog", "--version", "$LATEST"]));
    assert!(l.contains(&latest) && l.contains("said 2"), "{l}");
    assert!(!l.contains(&one) && !l.contains("said 1"), "{l}");
    let none = text(&flint(&agent, &["logs", "vlog", "--version", "7"]));
    assert_eq!(none, "", "no invocation of version 7");
}
