//! The consumer's settle-by-result rules against a scripted broker and invoker (the
//! real broker is in integration/tests/rabbitmq.rs): retries then the dead-letter
//! function or a reject, the pause after a throttle, concurrency by backlog.

use super::consumer::{Consumer, Invoker, Outcome, Settings};
use super::source::{Message, Probe, Session, Settle, Source, SourceError};
use super::stats::Counters;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

type Log = Arc<Mutex<Vec<String>>>;
/// One invocation: when, the ids of its records, their `redelivered` flags.
type Call = (Instant, Vec<u64>, Vec<bool>);

struct FakeSource {
    rx: Mutex<Option<mpsc::UnboundedReceiver<u32>>>,
    log: Log,
    depth: Arc<AtomicU64>,
}
struct FakeSession {
    rx: mpsc::UnboundedReceiver<u32>,
    log: Log,
    depth: Arc<AtomicU64>,
}
struct FakeSettle(u32, Log);
#[derive(Clone)]
struct FakeProbe(Arc<AtomicU64>);

impl Settle for FakeSettle {
    async fn ack(self) -> Result<(), SourceError> {
        self.1.lock().unwrap().push(format!("ack {}", self.0));
        Ok(())
    }
    async fn requeue(self) -> Result<(), SourceError> {
        self.1.lock().unwrap().push(format!("requeue {}", self.0));
        Ok(())
    }
    async fn reject(self) -> Result<(), SourceError> {
        self.1.lock().unwrap().push(format!("reject {}", self.0));
        Ok(())
    }
}

impl Probe for FakeProbe {
    async fn depth(&self) -> Option<u64> {
        Some(self.0.load(Ordering::Relaxed))
    }
}

impl Session for FakeSession {
    type Settle = FakeSettle;
    type Probe = FakeProbe;
    async fn next(&mut self) -> Result<Message<FakeSettle>, SourceError> {
        let id = self.rx.recv().await.ok_or(SourceError::Cancelled)?;
        Ok(Message {
            record: json!({"id": id, "redelivered": false}),
            size: 10,
            settle: FakeSettle(id, self.log.clone()),
        })
    }
    fn probe(&self) -> FakeProbe {
        FakeProbe(self.depth.clone())
    }
}

impl Source for FakeSource {
    type Session = FakeSession;
    async fn connect(&self, _prefetch: u16) -> Result<FakeSession, SourceError> {
        let rx = self.rx.lock().unwrap().take().ok_or(SourceError::Connect {
            queue: "q".into(),
            reason: "one session only".into(),
        })?;
        Ok(FakeSession {
            rx,
            log: self.log.clone(),
            depth: self.depth.clone(),
        })
    }
    fn event(&self, records: Vec<Value>) -> Value {
        json!({ "records": records })
    }
    fn mark_redelivered(&self, record: &mut Value) {
        record["redelivered"] = Value::Bool(true);
    }
}

#[derive(Default)]
struct FakeInvoker {
    script: Mutex<VecDeque<Outcome>>,
    calls: Mutex<Vec<Call>>,
    dead: Mutex<Vec<(Value, u32)>>,
    active: AtomicU32,
    peak: AtomicU32,
    delay: Duration,
}

impl Invoker for Arc<FakeInvoker> {
    async fn invoke(&self, payload: Vec<u8>) -> Outcome {
        let v: Value = serde_json::from_slice(&payload).unwrap();
        let recs = v["records"].as_array().unwrap();
        self.calls.lock().unwrap().push((
            Instant::now(),
            recs.iter().map(|r| r["id"].as_u64().unwrap()).collect(),
            recs.iter()
                .map(|r| r["redelivered"].as_bool().unwrap())
                .collect(),
        ));
        let n = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(n, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        self.active.fetch_sub(1, Ordering::SeqCst);
        let next = self.script.lock().unwrap().pop_front();
        next.unwrap_or(Outcome::Success)
    }
    async fn dead_letter(&self, event: Value, attempts: u32, _error: &str) -> Result<(), String> {
        self.dead.lock().unwrap().push((event, attempts));
        Ok(())
    }
    fn fired(&self) {}
    fn failed(&self, _error: &str) {}
}

struct Rig {
    tx: mpsc::UnboundedSender<u32>,
    log: Log,
    invoker: Arc<FakeInvoker>,
    task: tokio::task::JoinHandle<SourceError>,
}

fn rig(settings: Settings, invoker: FakeInvoker, depth: u64) -> Rig {
    let (tx, rx) = mpsc::unbounded_channel();
    let log: Log = Arc::default();
    let source = FakeSource {
        rx: Mutex::new(Some(rx)),
        log: log.clone(),
        depth: Arc::new(AtomicU64::new(depth)),
    };
    let invoker = Arc::new(invoker);
    let c = Consumer::new(
        source,
        invoker.clone(),
        settings,
        Arc::new(Counters::default()),
    );
    let task = tokio::spawn(async move { c.run_session().await });
    Rig {
        tx,
        log,
        invoker,
        task,
    }
}

fn settings(batch_size: usize, retries: u32, dead_letter_function: bool) -> Settings {
    Settings {
        batch_size,
        window: Duration::from_millis(10),
        max_concurrency: 3,
        retries,
        dead_letter_function,
        max_payload: 1 << 20,
    }
}

fn script(outcomes: &[Outcome]) -> FakeInvoker {
    FakeInvoker {
        script: Mutex::new(outcomes.iter().cloned().collect()),
        ..Default::default()
    }
}

fn failed() -> Outcome {
    Outcome::Failed("boom".into())
}

#[tokio::test(start_paused = true)]
async fn a_failing_batch_is_retried_then_sent_to_the_dead_letter_function_and_acked() {
    let r = rig(
        settings(3, 2, true),
        script(&[failed(), failed(), failed()]),
        0,
    );
    for id in 0..3 {
        r.tx.send(id).unwrap();
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let calls = r.invoker.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 3, "one try and two retries");
    assert!(calls.iter().all(|c| c.1 == [0, 1, 2]));
    assert_eq!(calls[0].2, [false; 3]);
    assert_eq!(calls[2].2, [true; 3], "retries are redeliveries");
    assert!(calls[1].0 - calls[0].0 >= Duration::from_secs(1));
    let dead = r.invoker.dead.lock().unwrap().clone();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].1, 3);
    assert_eq!(dead[0].0["records"].as_array().unwrap().len(), 3);
    assert_eq!(*r.log.lock().unwrap(), ["ack 0", "ack 1", "ack 2"]);
    r.task.abort();
}

#[tokio::test(start_paused = true)]
async fn without_a_dead_letter_function_the_batch_is_rejected_to_the_broker() {
    let r = rig(settings(2, 0, false), script(&[failed()]), 0);
    for id in 0..3 {
        r.tx.send(id).unwrap();
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(r.invoker.dead.lock().unwrap().is_empty());
    assert_eq!(
        *r.log.lock().unwrap(),
        ["reject 0", "reject 1", "ack 2"],
        "the second batch succeeds"
    );
    r.task.abort();
}

#[tokio::test(start_paused = true)]
async fn a_throttled_batch_pauses_consumption_and_is_acked_once_it_runs() {
    let throttled = Outcome::Deferred("TooManyRequestsException".into());
    let r = rig(
        settings(3, 0, true),
        script(&[throttled.clone(), throttled]),
        1000,
    );
    let t0 = Instant::now();
    for id in 0..3 {
        r.tx.send(id).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    for id in 3..6 {
        r.tx.send(id).unwrap();
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let calls = r.invoker.calls.lock().unwrap().clone();
    let first = |ids: &[u64]| calls.iter().find(|c| c.1 == ids).unwrap().0 - t0;
    assert_eq!(calls.iter().filter(|c| c.1 == [0, 1, 2]).count(), 3);
    assert!(
        first(&[3, 4, 5]) >= Duration::from_millis(100),
        "no new batch while paused: {:?}",
        first(&[3, 4, 5])
    );
    assert!(
        r.invoker.dead.lock().unwrap().is_empty(),
        "throttles are not failures"
    );
    let mut log = r.log.lock().unwrap().clone();
    log.sort();
    assert_eq!(log, ["ack 0", "ack 1", "ack 2", "ack 3", "ack 4", "ack 5"]);
    r.task.abort();
}

#[tokio::test(start_paused = true)]
async fn concurrent_batches_follow_the_backlog_up_to_the_maximum() {
    for (depth, want) in [(0, 1), (1000, 3)] {
        let inv = FakeInvoker {
            delay: Duration::from_secs(1),
            ..Default::default()
        };
        let r = rig(settings(2, 0, true), inv, depth);
        tokio::time::sleep(Duration::from_millis(1)).await;
        for id in 0..20 {
            r.tx.send(id).unwrap();
        }
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(
            r.invoker.peak.load(Ordering::SeqCst),
            want,
            "backlog {depth}"
        );
        assert_eq!(r.log.lock().unwrap().len(), 20);
        r.task.abort();
    }
}
