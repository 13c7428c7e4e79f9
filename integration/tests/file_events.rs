//! File-event triggers through a real flintd: a Python handler written for S3's
//! event notification reads each created file through the trigger's read-only bind
//! mount (`$FLINT_FILES_ROOT/<bucket>/<key>`), checks its size and MD5 against the
//! record's `size` and `eTag`, tries to write next to it, and prints one `EVT` line
//! per record into the function's log (`<data-dir>/logs/etl.log`), which the test
//! reads. Checked: a burst of 10,000 files is delivered completely (duplicates are
//! allowed as at-least-once, and counted); a deletion; a file in a new
//! subdirectory (key `nested/deep+dir/n1.dat`); prefix, suffix and event
//! filters; the mount is read-only; files written while flintd was down are
//! delivered after its restart (the mark policy); the S3-notification webhook with
//! a MinIO-shaped body, with and without the right bearer token; the counters; the
//! pre-started pool (`--pool-warm`) serves another function, which sees no mount,
//! while the watched function's sandboxes are made for it.

use flint_integration::*;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const ACCOUNT: &str = "123456789012";
const REGION: &str = "eu-west-1";
const TOKEN: &str = "test-webhook-token-0123456789";
const BURST: usize = 10_000;

const APP: &str = r#"import hashlib, json, os, urllib.parse
def handler(event, context):
    for r in event["Records"]:
        s3 = r["s3"]
        key = urllib.parse.unquote_plus(s3["object"]["key"])
        out = {"event": r["eventName"], "source": r["eventSource"], "key": key,
               "bucket": s3["bucket"]["name"], "arn": s3["bucket"].get("arn"),
               "version": r.get("eventVersion"), "seq": s3["object"].get("sequencer")}
        if r["eventSource"] == "aws:s3" and r["eventName"] == "ObjectCreated:Put":
            path = os.path.join(os.environ["FLINT_FILES_ROOT"], out["bucket"], key)
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                out["gone"] = True
                print("EVT " + json.dumps(out), flush=True)
                continue
            out["ok"] = (len(data) == s3["object"]["size"]
                         and hashlib.md5(data).hexdigest() == s3["object"]["eTag"]
                         and data == ("content of " + key).encode())
            if key.endswith("probe.dat"):
                try:
                    open(path + ".w", "wb").close()
                    out["writable"] = True
                except OSError as e:
                    out["writable"] = False
                    out["errno"] = e.errno
        print("EVT " + json.dumps(out), flush=True)
"#;

fn flint(agent: &TestAgent, args: &[&str]) -> Output {
    Command::new(binary("flint"))
        .arg("--endpoint")
        .arg(&agent.socket)
        .args(args)
        .output()
        .expect("run flint")
}

fn ok(o: Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "flint failed: {}\n{out}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Every EVT line of the function's log so far.
fn events(agent: &TestAgent) -> Vec<serde_json::Value> {
    let log = std::fs::read_to_string(agent.data_dir.join("logs/etl.log")).unwrap_or_default();
    log.lines()
        .filter_map(|l| l.split_once("EVT ").map(|(_, j)| j))
        .map(|j| serde_json::from_str(j).unwrap_or_else(|e| panic!("bad EVT line {j}: {e}")))
        .collect()
}

fn log_tail(agent: &TestAgent) -> String {
    let log = std::fs::read_to_string(agent.data_dir.join("logs/etl.log")).unwrap_or_default();
    let start = log.len().saturating_sub(4000);
    let start = (start..log.len())
        .find(|i| log.is_char_boundary(*i))
        .unwrap_or(0);
    log[start..].to_string()
}

/// Waits until `pred` holds on the events so far; fails as soon as no new event
/// arrived for `stall` (or after `within`), with the function's log.
async fn wait_for(
    agent: &TestAgent,
    what: &str,
    within: Duration,
    stall: Duration,
    pred: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let t0 = Instant::now();
    let (mut seen, mut progress) = (0, Instant::now());
    loop {
        let ev = events(agent);
        if pred(&ev) {
            return ev;
        }
        if ev.len() > seen {
            (seen, progress) = (ev.len(), Instant::now());
        }
        if t0.elapsed() > within || progress.elapsed() > stall {
            let trig = flint(agent, &["triggers", "ls"]);
            panic!(
                "{what}: not within {:?} ({} events, none new for {:?}); triggers:\n{}\nfunction log tail:\n{}",
                t0.elapsed(),
                ev.len(),
                progress.elapsed(),
                String::from_utf8_lossy(&trig.stdout),
                log_tail(agent)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn of<'a>(
    ev: &'a [serde_json::Value],
    bucket: &'a str,
) -> impl Iterator<Item = &'a serde_json::Value> + 'a {
    ev.iter().filter(move |e| e["bucket"] == bucket)
}

fn write(dir: &Path, key: &str) {
    std::fs::write(dir.join(key), format!("content of {key}")).unwrap();
}

fn curl(url: &str, auth: Option<&str>, body: &str) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        "-X",
        "POST",
        "--max-time",
        "20",
    ])
    .args([
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        body,
    ]);
    if let Some(a) = auth {
        cmd.arg("-H").arg(format!("Authorization: Bearer {a}"));
    }
    let o = cmd.arg(url).output().expect("run curl");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn scrape(addr: &str) -> String {
    let o = Command::new("curl")
        .args(["-sS", "--max-time", "5"])
        .arg(format!("http://{addr}/metrics"))
        .output()
        .expect("run curl");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A directory the sandbox's unprivileged uid can read (tempdirs are 0700).
fn watched(root: &Path, name: &str) -> std::path::PathBuf {
    let d = root.join(name);
    std::fs::create_dir(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_ten_thousand_files_deletes_filters_restart_and_the_webhook() {
    let api = format!("127.0.0.1:{}", free_port());
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut agent = TestAgent::start_args(
        300,
        &[
            "--api-listen",
            &api,
            "--metrics-listen",
            &metrics,
            "--event-workers",
            "6",
            "--pool-warm",
            "python3.11:128=2",
            "--function-log-max-bytes",
            "1000000000",
            "--region",
            REGION,
            "--account-id",
            ACCOUNT,
        ],
    )
    .await;
    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (burst_dir, filtered_dir) = (
        watched(root.path(), "burst"),
        watched(root.path(), "filtered"),
    );
    let mut c = agent.client().await;
    c.functions
        .create_function(python_function("etl", APP))
        .await
        .unwrap();

    // Bad directories are refused with a message that says what to fix.
    for (dir, want) in [
        ("relative/dir", "give an absolute path"),
        ("/nonexistent/flint-test", "not an existing directory"),
    ] {
        let o = flint(
            &agent,
            &[
                "triggers",
                "create",
                "bad",
                "--function",
                "etl",
                "--watch",
                dir,
            ],
        );
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "{err}");
    }
    let burst = burst_dir.to_str().unwrap();
    let out = ok(flint(
        &agent,
        &[
            "triggers",
            "create",
            "burst",
            "--function",
            "etl",
            "--watch",
            burst,
            "--suffix",
            ".dat",
            "--webhook-token",
            TOKEN,
        ],
    ));
    assert!(out.contains("arn:aws:s3:::burst"), "{out}");
    assert!(out.contains("/mnt/flint/burst"), "{out}");
    let shown = ok(flint(&agent, &["--json", "triggers", "get", "burst"]));
    assert!(!shown.contains(TOKEN), "the token is never shown: {shown}");
    assert!(shown.contains("(set)"), "{shown}");
    ok(flint(
        &agent,
        &[
            "triggers",
            "create",
            "filtered",
            "--function",
            "etl",
            "--watch",
            filtered_dir.to_str().unwrap(),
            "--prefix",
            "in-",
            "--suffix",
            ".csv",
            "--events",
            "created",
        ],
    ));

    // The burst: 10,000 files plus ones the suffix filter drops.
    let t0 = Instant::now();
    for i in 0..BURST {
        write(&burst_dir, &format!("f{i:05}.dat"));
        if i % 1000 == 0 {
            write(&burst_dir, &format!("skip{i}.txt"));
        }
    }
    let wrote = t0.elapsed();
    let ev = wait_for(
        &agent,
        "all 10,000 files delivered",
        Duration::from_secs(170),
        Duration::from_secs(30),
        |ev| {
            let mut keys = std::collections::BTreeSet::new();
            for e in of(ev, "burst") {
                keys.insert(e["key"].as_str().unwrap_or_default().to_string());
            }
            keys.len() >= BURST
        },
    )
    .await;
    let took = t0.elapsed();
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for e in of(&ev, "burst") {
        assert_eq!(e["event"], "ObjectCreated:Put", "{e}");
        assert_eq!(e["source"], "aws:s3");
        assert_eq!(e["version"], "2.1");
        assert_eq!(e["arn"], "arn:aws:s3:::burst");
        assert_eq!(e["ok"], true, "size, eTag or content wrong: {e}");
        *count
            .entry(e["key"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert!(
        count.keys().all(|k| k.ends_with(".dat")),
        "the suffix filter let through {:?}",
        count.keys().find(|k| !k.ends_with(".dat"))
    );
    let duplicates: usize = count.values().map(|n| n - 1).sum();
    eprintln!(
        "burst: {BURST} files written in {wrote:?}, all delivered and read in {took:?}; {} invocations, {duplicates} duplicates (at-least-once)",
        count.values().sum::<usize>()
    );
    assert!(took < Duration::from_secs(170));

    // A deletion; the read-only mount.
    std::fs::remove_file(burst_dir.join("f00007.dat")).unwrap();
    write(&burst_dir, "probe.dat");
    std::fs::create_dir_all(burst_dir.join("nested/deep dir")).unwrap();
    write(&burst_dir, "nested/deep dir/n1.dat");
    let ev = wait_for(
        &agent,
        "the deletion and the probe",
        Duration::from_secs(20),
        Duration::from_secs(20),
        |ev| {
            of(ev, "burst")
                .any(|e| e["event"] == "ObjectRemoved:Delete" && e["key"] == "f00007.dat")
                && of(ev, "burst").any(|e| e["key"] == "probe.dat")
                && of(ev, "burst").any(|e| e["key"] == "nested/deep dir/n1.dat" && e["ok"] == true)
        },
    )
    .await;
    let probe = of(&ev, "burst").find(|e| e["key"] == "probe.dat").unwrap();
    assert_eq!(
        probe["writable"], false,
        "the mount must be read-only: {probe}"
    );
    assert_eq!(probe["errno"], 30, "EROFS: {probe}");
    assert!(!burst_dir.join("probe.dat.w").exists());

    // Filters: prefix in-, suffix .csv, created only.
    for k in ["in-a.csv", "in-b.txt", "out-c.csv"] {
        write(&filtered_dir, k);
    }
    std::fs::remove_file(filtered_dir.join("in-a.csv")).unwrap();
    write(&filtered_dir, "in-z.csv");
    let ev = wait_for(
        &agent,
        "the filtered trigger's events",
        Duration::from_secs(20),
        Duration::from_secs(20),
        |ev| of(ev, "filtered").any(|e| e["key"] == "in-z.csv"),
    )
    .await;
    let mut keys: Vec<_> = of(&ev, "filtered")
        .map(|e| (e["event"].as_str().unwrap(), e["key"].as_str().unwrap()))
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            ("ObjectCreated:Put", "in-a.csv"),
            ("ObjectCreated:Put", "in-z.csv")
        ],
        "only created in-*.csv"
    );
    // in-a.csv may be gone before the handler reads it (it still gets its event).
    assert!(of(&ev, "filtered").any(|e| e["key"] == "in-z.csv" && e["ok"] == true));

    // Another function sees no mount and still starts from the pre-started pool;
    // the watched function never took a pool sandbox.
    c.functions
        .create_function(python_function(
            "plain",
            "import os\ndef handler(e, c):\n    return {'mnt': os.listdir('/mnt'), 'root': os.environ.get('FLINT_FILES_ROOT')}\n",
        ))
        .await
        .unwrap();
    let r = json(&invoke_ok(&mut c, "plain", "{}").await);
    assert_eq!(r, serde_json::json!({"mnt": [], "root": null}));
    let m = scrape(&metrics);
    let starts = |f: &str, hit: &str| {
        m.lines()
            .filter(|l| l.starts_with("flint_cold_starts_total{"))
            .filter(|l| {
                l.contains(&format!("function=\"{f}\""))
                    && l.contains(&format!("pool_hit=\"{hit}\""))
            })
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum::<f64>()
    };
    assert_eq!(starts("plain", "true"), 1.0, "{m}");
    assert_eq!(starts("etl", "true"), 0.0, "{m}");
    assert!(starts("etl", "false") >= 1.0, "{m}");

    // The webhook: a MinIO-shaped body, refused without the right token.
    let url = format!("http://{api}/flint/s3-notifications/burst");
    let body = r#"{"EventName":"s3:ObjectCreated:Put","Key":"photos/cat 1.jpg","Records":[{"eventVersion":"2.0","eventSource":"minio:s3","awsRegion":"","eventTime":"2026-12-06T11:00:00.000Z","eventName":"s3:ObjectCreated:Put","userIdentity":{"principalId":"minio"},"requestParameters":{"sourceIPAddress":"10.0.0.1"},"responseElements":{},"s3":{"s3SchemaVersion":"1.0","configurationId":"Config","bucket":{"name":"photos","ownerIdentity":{"principalId":"minio"},"arn":"arn:aws:s3:::photos"},"object":{"key":"cat+1.jpg","size":5,"eTag":"abc","sequencer":"17F0"}}}]}"#;
    let (code, answer) = curl(&url, None, body);
    assert_eq!(code, 401, "{answer}");
    let (code, answer) = curl(&url, Some("wrong-token-wrong-token"), body);
    assert_eq!(code, 401, "{answer}");
    let (code, answer) = curl(
        &format!("http://{api}/flint/s3-notifications/nope"),
        Some(TOKEN),
        body,
    );
    assert_eq!(code, 401, "{answer}");
    let (code, answer) = curl(&url, Some(TOKEN), r#"{"Records":[]}"#);
    assert_eq!(code, 400, "{answer}");
    let (code, answer) = curl(&url, Some(TOKEN), body);
    assert_eq!((code, answer.as_str()), (200, r#"{"accepted":1}"#));
    wait_for(
        &agent,
        "the webhook's record",
        Duration::from_secs(20),
        Duration::from_secs(20),
        |ev| {
            ev.iter().any(|e| {
                e["source"] == "minio:s3" && e["bucket"] == "photos" && e["key"] == "cat 1.jpg"
            })
        },
    )
    .await;

    // Counters and the listing.
    let m = scrape(&metrics);
    let seen = "flint_file_events_seen_total{trigger=\"burst\"} ";
    let line = m
        .lines()
        .find(|l| l.starts_with(seen))
        .unwrap_or_else(|| panic!("no {seen} in\n{m}"));
    let n: f64 = line[seen.len()..].trim().parse().unwrap();
    assert!(n >= (BURST + 3) as f64, "{line}");
    assert!(
        m.contains("flint_file_events_delivered_total{trigger=\"filtered\"} 2"),
        "{m}"
    );
    let ls = ok(flint(&agent, &["triggers", "ls"]));
    assert!(ls.contains(&format!("watch {burst}")), "{ls}");

    // Files written while flintd is down are delivered after its restart.
    let pid = nix::unistd::Pid::from_raw(agent.pid() as i32);
    drop(c);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for i in 0..5 {
        write(&burst_dir, &format!("down{i}.dat"));
    }
    agent.restart_after_kill().await;
    wait_for(
        &agent,
        "the files written while flintd was down",
        Duration::from_secs(30),
        Duration::from_secs(30),
        |ev| {
            (0..5).all(|i| {
                of(ev, "burst").any(|e| e["key"] == format!("down{i}.dat") && e["ok"] == true)
            })
        },
    )
    .await;
}
