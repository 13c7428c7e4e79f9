//! `flint events ...` against a real flintd: config (show, set, refuse, delete), ls,
//! dlq and redrive, in text and JSON.

mod events_support;

use events_support::*;
use flint_integration::*;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn flint(agent: &TestAgent, args: &[&str]) -> Output {
    Command::new(binary("flint"))
        .arg("--endpoint")
        .arg(&agent.socket)
        .args(args)
        .output()
        .expect("run flint")
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "flint failed ({}): {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn failed(o: &Output) -> String {
    assert!(
        !o.status.success(),
        "flint succeeded: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn flint_events_configures_lists_and_redrives() {
    let agent = start().await;
    let mut c = agent.client().await;
    c.functions
        .create_function(python_function(
            "fails",
            "def handler(e, c):\n    raise ValueError('no')\n",
        ))
        .await
        .unwrap();
    c.functions
        .create_function(python_function("sink", SINK))
        .await
        .unwrap();

    let out = ok(&flint(
        &agent,
        &[
            "events",
            "config",
            "fails",
            "--max-retries",
            "0",
            "--on-failure",
            "sink",
            "--dead-letter",
            "http://127.0.0.1:9/dlq",
        ],
    ));
    assert!(out.contains("max retries:  0"), "{out}");
    assert!(out.contains("on failure:   sink"), "{out}");
    assert!(
        out.contains("dead letter:  http://127.0.0.1:9/dlq"),
        "{out}"
    );
    let err = failed(&flint(
        &agent,
        &["events", "config", "fails", "--dead-letter", "ftp://x/y"],
    ));
    assert!(err.contains("use http:// or https://"), "{err}");
    let all = ok(&flint(&agent, &["--json", "events", "configs"]));
    let all: serde_json::Value = serde_json::from_str(&all).unwrap();
    assert_eq!(all.as_array().map(Vec::len), Some(1), "{all}");
    assert_eq!(all[0]["function_name"], "fails");
    assert_eq!(all[0]["dead_letter"], "http://127.0.0.1:9/dlq");
    let err = failed(&flint(
        &agent,
        &["events", "config", "fails", "--max-age", "30"],
    ));
    assert!(err.contains("60 to 21600"), "{err}");
    let err = failed(&flint(
        &agent,
        &["events", "config", "fails", "--on-success", "ghost"],
    ));
    assert!(
        err.contains("ghost") && err.contains("InvalidArgument"),
        "{err}"
    );
    let shown: serde_json::Value = serde_json::from_str(&ok(&flint(
        &agent,
        &["--json", "events", "config", "fails"],
    )))
    .unwrap();
    assert_eq!(shown["maximum_retry_attempts"], 0);
    assert_eq!(shown["on_failure"], "sink");

    let id = event(&mut c, "fails", r#"{"x": 1}"#).await;
    let t0 = Instant::now();
    let dlq = loop {
        let out = ok(&flint(&agent, &["events", "dlq", "fails"]));
        if out.contains(&id) {
            break out;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "never dead-lettered: {out}\n{}",
            evidence(&agent, &["fails"]).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(dlq.contains("dead") && dlq.contains("Unhandled"), "{dlq}");
    let all: serde_json::Value =
        serde_json::from_str(&ok(&flint(&agent, &["--json", "events", "ls", "fails"]))).unwrap();
    assert_eq!(all["events"][0]["request_id"], id.as_str());
    assert_eq!(all["events"][0]["state"], "dead");
    assert_eq!(all["events"][0]["attempts"], 1);
    assert_eq!(all["dead"], 1);
    let out = ok(&flint(&agent, &["events", "ls", "--state", "queued"]));
    assert!(!out.contains(&id), "{out}");
    let err = failed(&flint(&agent, &["events", "ls", "--state", "lost"]));
    assert!(err.contains("queued, in-flight, retrying or dead"), "{err}");

    let out = ok(&flint(&agent, &["events", "redrive", "fails"]));
    assert!(out.contains("1 dead events of fails queued again"), "{out}");
    // It fails again (no retries) and is back in the dead-letter queue, run twice.
    let log = wait_log(
        &agent,
        "fails",
        Duration::from_secs(20),
        "second run",
        |l| starts(l).get(&id).copied() == Some(2),
    )
    .await;
    assert!(log.contains("ValueError"), "{log}");

    ok(&flint(&agent, &["events", "config", "fails", "--delete"]));
    let err = failed(&flint(&agent, &["events", "config", "fails"]));
    assert!(err.contains("no event invoke configuration"), "{err}");
}
