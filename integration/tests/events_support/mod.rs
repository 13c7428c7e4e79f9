//! Helpers of the event-queue tests (events.rs, events_faults.rs): a flintd on short
//! retry and age clocks, Event invocations, the queue view, function logs, and waits
//! that print the queue and the logs when they pass their deadline.
#![allow(dead_code)]

use flint_integration::*;
use flint_proto::v1::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Retry k waits 200 ms * k; throttles back off from 3 ms to 1 s.
pub const BASE_MS: &str = "200";
/// One "second" of MaximumEventAgeInSeconds is 50 ms: 60 s of age pass in 3 s.
pub const AGE_UNIT_MS: &str = "50";

pub async fn start() -> TestAgent {
    start_with(&[]).await
}

/// [`start`] with more flags.
pub async fn start_with(extra: &[&str]) -> TestAgent {
    let mut args = vec![
        "--event-retry-base-ms",
        BASE_MS,
        "--event-age-unit-ms",
        AGE_UNIT_MS,
    ];
    args.extend_from_slice(extra);
    TestAgent::start_args(300, &args).await
}

pub const SINK: &str =
    "import json\ndef handler(e, c):\n    print('RECORD ' + json.dumps(e))\n    return 1\n";

/// Queues an Event; returns its request id.
pub async fn event(c: &mut flint_agent::client::Client, name: &str, payload: &str) -> String {
    let r = c
        .invocations
        .invoke(InvokeRequest {
            function_name: name.into(),
            invocation_type: InvocationType::Event as i32,
            payload: payload.as_bytes().to_vec(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("Event invoke of {name} refused: {e}"))
        .into_inner();
    assert_eq!(r.status_code, 202, "an Event is accepted with 202");
    r.request_id
}

pub fn log_of(agent: &TestAgent, name: &str) -> String {
    std::fs::read_to_string(agent.data_dir.join(format!("logs/{name}.log"))).unwrap_or_default()
}

pub async fn list(agent: &TestAgent, name: &str, states: &[EventState]) -> ListEventsResponse {
    agent
        .client()
        .await
        .events()
        .list_events(ListEventsRequest {
            function_name: name.into(),
            states: states.iter().map(|s| *s as i32).collect(),
            limit: 10_000,
        })
        .await
        .expect("ListEvents")
        .into_inner()
}

/// What to print when a wait passes its deadline: the queue and the logs.
pub async fn evidence(agent: &TestAgent, functions: &[&str]) -> String {
    let q = list(agent, "", &[]).await;
    let mut s = format!(
        "queue: depth {} dead {}; first events: {:#?}\n",
        q.depth,
        q.dead,
        q.events.iter().take(5).collect::<Vec<_>>()
    );
    for f in functions {
        let log = log_of(agent, f);
        let tail = &log[log.len().saturating_sub(3000)..];
        s.push_str(&format!("--- log of {f} (tail) ---\n{tail}\n"));
    }
    s
}

/// Waits until `cond` holds on the log of `function`; panics with the evidence after
/// `within`.
pub async fn wait_log(
    agent: &TestAgent,
    function: &str,
    within: Duration,
    what: &str,
    cond: impl Fn(&str) -> bool,
) -> String {
    let t0 = Instant::now();
    loop {
        let log = log_of(agent, function);
        if cond(&log) {
            return log;
        }
        if t0.elapsed() > within {
            panic!(
                "stalled after {within:?}: {what}\n{}",
                evidence(agent, &[function]).await
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The destination records in a sink's log.
pub fn records(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|l| l.strip_prefix("RECORD "))
        .map(|j| serde_json::from_str(j).expect("record is JSON"))
        .collect()
}

/// How often each request id started, from the START lines of a function log.
pub fn starts(log: &str) -> HashMap<String, usize> {
    let mut n = HashMap::new();
    for l in log.lines() {
        if let Some(rest) = l.strip_prefix("START RequestId: ") {
            let id = rest.split_whitespace().next().unwrap_or_default();
            *n.entry(id.to_string()).or_default() += 1;
        }
    }
    n
}

pub async fn put_config(
    c: &mut flint_agent::client::Client,
    cfg: EventInvokeConfig,
) -> Result<EventInvokeConfig, tonic::Status> {
    c.events()
        .put_event_invoke_config(PutEventInvokeConfigRequest { config: Some(cfg) })
        .await
        .map(|r| r.into_inner())
}

/// The Prometheus text of flintd's metrics listener on `port`.
pub async fn scrape(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the metrics port");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
        .await
        .expect("scrape answered within 5 s")
        .unwrap();
    out
}

/// The value of `series` (name and labels) in `body`.
pub fn value(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in:\n{body}"))
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}
