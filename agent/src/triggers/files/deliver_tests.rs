//! Tests of a trigger's delivery task against a host that records its Event
//! invocations (and can refuse them): filters, the overflow rescan, the mark, and a
//! queue that keeps refusing.

use super::deliver::{Delivery, Target};
use super::record::Sequencer;
use super::spec::{FileEvent, FilesSpec};
use super::state::FilesState;
use super::watch::{Change, Msg};
use crate::metrics::Metrics;
use crate::store::{Function, Store};
use crate::triggers::model::{Trigger, TriggerKind};
use crate::triggers::schedule_expr::ParseOptions;
use crate::triggers::scheduler::{Host, InvokeResult};
use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

struct Recorder {
    store: Store,
    payloads: Mutex<Vec<serde_json::Value>>,
    refuse: AtomicBool,
}

impl Host for Recorder {
    fn store(&self) -> &Store {
        &self.store
    }
    fn parse_options(&self) -> ParseOptions {
        ParseOptions {
            allow_seconds: false,
        }
    }
    fn region_account(&self) -> (String, String) {
        ("eu-west-1".into(), "123456789012".into())
    }
    fn invoke_event(self: Arc<Self>, _function: String, payload: Vec<u8>) -> InvokeResult {
        Box::pin(async move {
            if self.refuse.load(Ordering::Relaxed) {
                return Err("the disk is full".into());
            }
            let v = serde_json::from_slice(&payload).map_err(|e| e.to_string())?;
            self.payloads.lock().unwrap().push(v);
            Ok(())
        })
    }
}

fn spec(dir: &str) -> FilesSpec {
    FilesSpec {
        dir: dir.into(),
        prefix: "in-".into(),
        suffix: String::new(),
        events: vec![FileEvent::Created, FileEvent::Removed],
        webhook_token: None,
    }
}

/// A host whose registry holds function `f` and files trigger `t` on `dir`.
fn host(dir: &std::path::Path, db: &std::path::Path) -> Arc<Recorder> {
    let store = Store::open(db).unwrap();
    store
        .insert(&Function {
            name: "f".into(),
            runtime: "python3.11".into(),
            handler: "h.handler".into(),
            memory_mb: 128,
            timeout_s: 3,
            environment: Default::default(),
            description: String::new(),
            code_sha256: "0".repeat(64),
            code_size: 1,
            last_modified: "2026-12-06T00:00:00Z".into(),
            revision: 1,
            reserved_concurrency: None,
            network: crate::sandbox::NetworkMode::None,
            role: None,
            secret_environment: Default::default(),
            ephemeral_storage_mb: 512,
            layers: Vec::new(),
        })
        .unwrap();
    store
        .insert_trigger(&Trigger {
            name: "t".into(),
            function: "f".into(),
            kind: TriggerKind::Files(spec(dir.to_str().unwrap())),
            enabled: true,
            created: Utc::now(),
            last_fire: None,
            last_error: None,
            next_fire: None,
        })
        .unwrap();
    Arc::new(Recorder {
        store,
        payloads: Mutex::new(Vec::new()),
        refuse: AtomicBool::new(false),
    })
}

fn delivery(h: &Arc<Recorder>, dir: &str) -> Delivery {
    let host: Arc<dyn Host> = h.clone();
    Delivery {
        agent: Arc::downgrade(&host),
        target: Target {
            name: "t".into(),
            function: "f".into(),
            spec: spec(dir),
        },
        state: FilesState::new(&Metrics::new()),
        sequencer: Arc::new(Sequencer::starting_at(1)),
    }
}

fn keys(h: &Recorder) -> Vec<(String, String)> {
    let mut k: Vec<_> = h
        .payloads
        .lock()
        .unwrap()
        .iter()
        .map(|p| {
            let r = &p["Records"][0];
            (
                r["eventName"].as_str().unwrap().to_string(),
                r["s3"]["object"]["key"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    k.sort();
    k
}

fn change(event: FileEvent, key: &str) -> Change {
    Change {
        event,
        key: key.into(),
        at: Utc::now(),
    }
}

#[tokio::test]
async fn filters_overflow_rescan_and_mark() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("w");
    std::fs::create_dir(&dir).unwrap();
    for k in ["in-1", "in-2", "out-3"] {
        std::fs::write(dir.join(k), k).unwrap();
    }
    let h = host(&dir, &d.path().join("flint.db"));
    let del = delivery(&h, dir.to_str().unwrap());
    let state = del.state.clone();
    let (tx, rx) = mpsc::channel(8);
    let task = tokio::spawn(del.run(rx, None));
    tx.send(Msg::Changes(vec![
        change(FileEvent::Created, "in-1"),
        change(FileEvent::Removed, "in-gone"),
        change(FileEvent::Created, "out-3"),
    ]))
    .await
    .unwrap();
    // Later than the mark the task sets when it starts (it starts after this line, and
    // a mark only moves forward): with Utc::now() the test failed whenever the
    // millisecond turned in between.
    let drained: DateTime<Utc> = Utc::now() + chrono::TimeDelta::seconds(5);
    tx.send(Msg::Drained(drained)).await.unwrap();
    tx.send(Msg::Overflow).await.unwrap();
    drop(tx);
    task.await.unwrap();
    let put = "ObjectCreated:Put".to_string();
    assert_eq!(
        keys(&h),
        [
            (put.clone(), "in-1".into()),
            (put.clone(), "in-1".into()),
            (put, "in-2".into()),
            ("ObjectRemoved:Delete".into(), "in-gone".into()),
        ],
        "the prefix filter, then the rescan delivering every file again"
    );
    let c = state.snapshot()["t"];
    assert_eq!((c.seen, c.delivered, c.failed, c.overflows), (4, 4, 0, 1));
    let row = h.store.get_trigger("t").unwrap();
    assert_eq!(
        row.last_fire.map(|t| t.timestamp_millis()),
        Some(drained.timestamp_millis()),
        "the mark moved to the drained time"
    );
    // The record carries the file's size and MD5.
    let all = h.payloads.lock().unwrap().clone();
    let first = all
        .iter()
        .find(|p| p["Records"][0]["s3"]["object"]["key"] == "in-1")
        .unwrap();
    let obj = &first["Records"][0]["s3"]["object"];
    assert_eq!(obj["size"], 4);
    assert_eq!(obj["eTag"], super::record::md5_hex(b"in-1"));
}

#[tokio::test(start_paused = true)]
async fn a_refusing_queue_is_retried_then_counted_and_recorded_and_the_mark_stays() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("w");
    std::fs::create_dir(&dir).unwrap();
    let h = host(&dir, &d.path().join("flint.db"));
    h.refuse.store(true, Ordering::Relaxed);
    let del = delivery(&h, dir.to_str().unwrap());
    let state = del.state.clone();
    let (tx, rx) = mpsc::channel(8);
    let task = tokio::spawn(del.run(rx, None));
    let start_mark = loop {
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        if let Some(m) = h.store.get_trigger("t").unwrap().last_fire {
            break m;
        }
    };
    tx.send(Msg::Changes(vec![change(FileEvent::Removed, "in-x")]))
        .await
        .unwrap();
    tx.send(Msg::Drained(Utc::now() + chrono::TimeDelta::seconds(60)))
        .await
        .unwrap();
    drop(tx);
    task.await.unwrap();
    assert_eq!(state.snapshot()["t"].failed, 1);
    let row = h.store.get_trigger("t").unwrap();
    assert!(
        row.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("the disk is full"),
        "{row:?}"
    );
    assert_eq!(
        row.last_fire,
        Some(start_mark),
        "a failed batch keeps the mark"
    );
}
