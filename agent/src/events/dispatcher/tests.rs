//! The dispatcher against a scripted runner and a real SQLite queue.

use super::*;
use crate::events::sqlite::SqliteQueue;
use crate::events::EventState;
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::Instant;

/// One run: function, request id, attempt number, payload.
type Run = (String, String, u32, Vec<u8>);

/// Runs events by a script per function: the nth run of a function gives its nth
/// result (the last one repeats).
struct Scripted {
    script: HashMap<String, Vec<AttemptResult>>,
    runs: Mutex<Vec<Run>>,
    accepting: AtomicBool,
}

impl Scripted {
    fn new(script: &[(&str, Vec<AttemptResult>)]) -> Arc<Self> {
        Arc::new(Self {
            script: script
                .iter()
                .map(|(f, s)| (f.to_string(), s.clone()))
                .collect(),
            runs: Mutex::new(Vec::new()),
            accepting: AtomicBool::new(true),
        })
    }

    fn runs_of(&self, f: &str) -> Vec<(String, u32, Vec<u8>)> {
        self.runs
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.0 == f)
            .map(|r| (r.1.clone(), r.2, r.3.clone()))
            .collect()
    }
}

impl Runner for Scripted {
    fn run<'a>(&'a self, e: &'a Event, attempt: u32) -> crate::events::runner::Attempt<'a> {
        Box::pin(async move {
            let mut runs = self.runs.lock().unwrap();
            let n = runs.iter().filter(|r| r.0 == e.function).count();
            runs.push((
                e.function.clone(),
                e.request_id.clone(),
                attempt,
                e.payload.clone(),
            ));
            let s = &self.script[&e.function];
            s[n.min(s.len() - 1)].clone()
        })
    }

    fn accepting(&self) -> bool {
        self.accepting.load(Ordering::SeqCst)
    }

    fn arn(&self, function: &str) -> String {
        format!("arn:aws:lambda:us-east-1:000000000000:function:{function}")
    }

    fn exists(&self, name: &str) -> bool {
        self.script.contains_key(name)
    }
}

fn ok() -> AttemptResult {
    AttemptResult::Success(Response {
        status_code: 200,
        payload: b"\"done\"".to_vec(),
        function_error: None,
        executed_version: "$LATEST".into(),
    })
}

fn failed() -> AttemptResult {
    AttemptResult::FunctionError(Response {
        status_code: 200,
        payload: br#"{"errorType":"Exception","errorMessage":"boom"}"#.to_vec(),
        function_error: Some("Unhandled".into()),
        executed_version: "$LATEST".into(),
    })
}

fn setup(dir: &std::path::Path) -> Arc<Dispatcher> {
    let q = Arc::new(SqliteQueue::open(&dir.join("events.db")).unwrap());
    Dispatcher::new(
        q.clone(),
        q.clone(),
        q,
        Settings {
            retry_base_ms: 20,
            workers: 4,
            age_unit_ms: 1000,
        },
    )
    .unwrap()
}

fn event(id: &str, f: &str, enqueued_ms: u64) -> NewEvent {
    NewEvent {
        request_id: id.into(),
        function: f.into(),
        qualifier: "$LATEST".into(),
        payload: br#"{"n":1}"#.to_vec(),
        client_context: String::new(),
        enqueued_ms,
    }
}

/// Waits until `cond` holds, failing after 5 s with `what`.
async fn until(what: &str, cond: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < Duration::from_secs(5), "stalled: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn fails_twice_then_succeeds_runs_three_times_and_reaches_on_success_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = setup(dir.path());
    d.configs()
        .put_config(
            "f",
            &EventConfig {
                on_success: Some("sink".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let r = Scripted::new(&[("f", vec![failed(), failed(), ok()]), ("sink", vec![ok()])]);
    d.enqueue(&event("req-1", "f", now_ms())).unwrap();
    let t0 = Instant::now();
    let task = d.start(r.clone());
    until("the sink runs", || !r.runs_of("sink").is_empty()).await;
    // Retries wait base*1 then base*2.
    assert!(
        t0.elapsed() >= Duration::from_millis(60),
        "{:?}",
        t0.elapsed()
    );
    let runs = r.runs_of("f");
    assert_eq!(
        runs.iter()
            .map(|(id, a, _)| (id.as_str(), *a))
            .collect::<Vec<_>>(),
        [("req-1", 1), ("req-1", 2), ("req-1", 3)],
        "same request id on every attempt, numbered"
    );
    let sink = r.runs_of("sink");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(r.runs_of("sink").len(), 1, "exactly one destination record");
    let rec: serde_json::Value = serde_json::from_slice(&sink[0].2).unwrap();
    assert_eq!(rec["requestContext"]["requestId"], "req-1");
    assert_eq!(rec["requestContext"]["condition"], "Success");
    assert_eq!(rec["requestContext"]["approximateInvokeCount"], 3);
    assert_eq!(rec["responsePayload"], "done");
    assert_eq!(EventCounters::get(&d.counters.retries), 2);
    assert_eq!(d.counters.deliveries(Kind::OnSuccess, Outcome::Ok), 1);
    until("the queue empties", || {
        d.queue().stats().unwrap().depth == 0
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn exhausted_retries_dead_letter_and_reach_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    let d = setup(dir.path());
    d.configs()
        .put_config(
            "f",
            &EventConfig {
                max_retries: 1,
                on_failure: Some("sink".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let r = Scripted::new(&[("f", vec![failed()]), ("sink", vec![ok()])]);
    d.enqueue(&event("poison", "f", now_ms())).unwrap();
    let task = d.start(r.clone());
    until("the sink runs", || !r.runs_of("sink").is_empty()).await;
    assert_eq!(r.runs_of("f").len(), 2, "one run and one retry");
    let dead = d.queue().list(Some("f"), &[EventState::Dead], 10).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].attempts, dead[0].last_error.as_str()),
        (2, "Unhandled")
    );
    let rec: serde_json::Value = serde_json::from_slice(&r.runs_of("sink")[0].2).unwrap();
    assert_eq!(rec["requestContext"]["condition"], "RetriesExhausted");
    assert_eq!(rec["responseContext"]["functionError"], "Unhandled");
    assert_eq!(rec["requestPayload"]["n"], 1);
    // Redriven, it runs again (and fails again).
    assert_eq!(d.queue().redrive("f", now_ms()).unwrap(), 1);
    d.wake();
    until("the redriven event runs", || r.runs_of("f").len() >= 3).await;
    task.abort();
}

#[tokio::test]
async fn throttles_wait_without_counting_and_expired_events_never_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = setup(dir.path());
    d.configs()
        .put_config(
            "old",
            &EventConfig {
                max_age_s: 60,
                on_failure: Some("sink".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let throttled = AttemptResult::Throttled("reserved concurrency 0".into());
    let r = Scripted::new(&[
        (
            "f",
            vec![throttled.clone(), throttled.clone(), throttled, ok()],
        ),
        ("old", vec![ok()]),
        ("sink", vec![ok()]),
    ]);
    d.enqueue(&event("t", "f", now_ms())).unwrap();
    d.enqueue(&event("e", "old", now_ms() - 61_000)).unwrap();
    let task = d.start(r.clone());
    until("f succeeds", || r.runs_of("f").len() == 4).await;
    assert_eq!(
        r.runs_of("f").iter().map(|x| x.1).collect::<Vec<_>>(),
        [1, 1, 1, 1],
        "throttles do not count as attempts"
    );
    until("the expiry record", || !r.runs_of("sink").is_empty()).await;
    assert!(r.runs_of("old").is_empty(), "an expired event ran");
    let rec: serde_json::Value = serde_json::from_slice(&r.runs_of("sink")[0].2).unwrap();
    assert_eq!(rec["requestContext"]["condition"], "EventAgeExceeded");
    assert_eq!(EventCounters::get(&d.counters.dropped_by_age), 1);
    assert_eq!(EventCounters::get(&d.counters.deferrals), 3);
    task.abort();
}

#[tokio::test]
async fn nothing_is_leased_while_draining() {
    let dir = tempfile::tempdir().unwrap();
    let d = setup(dir.path());
    let r = Scripted::new(&[("f", vec![ok()])]);
    r.accepting.store(false, Ordering::SeqCst);
    d.enqueue(&event("a", "f", now_ms())).unwrap();
    let task = d.start(r.clone());
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(r.runs_of("f").is_empty());
    let q = d.queue().list(None, &[], 10).unwrap();
    assert_eq!(
        q[0].state,
        EventState::Queued,
        "a draining node leaves events queued"
    );
    r.accepting.store(true, Ordering::SeqCst);
    until("the event runs after resume", || r.runs_of("f").len() == 1).await;
    // Stopped, the loop ends and leaves new events queued.
    d.stop();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("the loop ends after stop")
        .unwrap();
    d.enqueue(&event("b", "f", now_ms())).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(r.runs_of("f").len(), 1);
    assert_eq!(d.queue().stats().unwrap().depth, 1);
}
