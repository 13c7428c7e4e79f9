//! Asynchronous invocations: how fast Events are accepted (each is committed to the
//! durable queue before its 202) and how long an accepted event waits until its
//! handler starts, with the queue empty and behind a backlog of throttled events
//! (10,000 full, 1,000 quick), against synchronous invocations of the same warm
//! function in the same run.
//!
//! The probe function runs at reserved concurrency 1 (one instance), records
//! `(request id, time.time())` when an event starts, and returns the list on a
//! synchronous `{"dump": true}`; start minus the client's send time is the latency.

use super::{ms, Ctx, ScenarioError};
use crate::agent::{self, Agent};
use crate::progress::Progress;
use crate::report::Scenario;
use flint_agent::client::Client;
use flint_proto::v1::*;
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PROBE_PY: &str = "import time\nseen = []\n\
def handler(e, c):\n    \
    if e.get('dump'):\n        return seen\n    \
    if e.get('sync'):\n        return 1\n    \
    seen.append([c.aws_request_id, time.time() * 1000.0])\n    \
    return 1\n";

/// Clients sending the backlog at once.
const CLIENTS: usize = 8;

fn unexpected(what: impl std::fmt::Display) -> ScenarioError {
    ScenarioError::Unexpected(what.to_string())
}

fn now_unix_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
        * 1e3
}

fn probe_bundle() -> Result<Vec<u8>, ScenarioError> {
    let dir = tempfile::tempdir().map_err(unexpected)?;
    std::fs::write(dir.path().join("app.py"), PROBE_PY).map_err(unexpected)?;
    flint_agent::client::bundle(dir.path()).map_err(unexpected)
}

/// Sends one Event; returns the call's latency.
async fn event(
    c: &mut Client,
    name: &str,
    payload: &[u8],
) -> Result<(Duration, String), ScenarioError> {
    let t0 = Instant::now();
    let r = c
        .invocations
        .invoke(InvokeRequest {
            function_name: name.into(),
            invocation_type: InvocationType::Event as i32,
            payload: payload.to_vec(),
            ..Default::default()
        })
        .await
        .map_err(|s| unexpected(format!("Event invoke of {name}: {s}")))?
        .into_inner();
    if r.status_code != 202 {
        return Err(unexpected(format!(
            "Event invoke answered {}",
            r.status_code
        )));
    }
    Ok((t0.elapsed(), r.request_id))
}

async fn reserve(c: &mut Client, name: &str, n: u32) -> Result<(), ScenarioError> {
    c.functions
        .put_function_concurrency(PutFunctionConcurrencyRequest {
            name: name.into(),
            reserved_concurrency: n,
        })
        .await
        .map_err(|s| unexpected(format!("reserve {n} for {name}: {s}")))?;
    Ok(())
}

/// Waits until `name` has nothing unfinished in the queue.
async fn drained(c: &Client, name: &str, within: Duration) -> Result<(), ScenarioError> {
    let t0 = Instant::now();
    loop {
        let q = c
            .events()
            .list_events(ListEventsRequest {
                function_name: name.into(),
                states: vec![],
                limit: 1,
            })
            .await
            .map_err(|s| unexpected(format!("ListEvents: {s}")))?
            .into_inner();
        if q.events.is_empty() {
            return Ok(());
        }
        if t0.elapsed() > within {
            return Err(unexpected(format!(
                "{name}'s events did not all run within {within:?} (queue depth {})",
                q.depth
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sends `k` probe events one at a time, `gap` apart; returns accept latencies (ms)
/// and the send time (unix ms) per request id.
async fn probe_round(
    c: &mut Client,
    probe: &str,
    k: usize,
    p: &mut Progress,
    label: &str,
) -> Result<(Vec<f64>, HashMap<String, f64>), ScenarioError> {
    let mut accept = Vec::with_capacity(k);
    let mut sent = HashMap::with_capacity(k);
    for _ in 0..k {
        let t = now_unix_ms();
        let (dt, id) = event(c, probe, b"{}").await?;
        accept.push(ms(dt));
        sent.insert(id, t);
        p.inc(label);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((accept, sent))
}

/// Start minus send time (ms) of the events in `sent`, from the probe's record.
async fn start_latencies(
    c: &mut Client,
    probe: &str,
    sent: &HashMap<String, f64>,
) -> Result<Vec<f64>, ScenarioError> {
    drained(c, probe, Duration::from_secs(120)).await?;
    let (_, r) = agent::invoke(c, probe, br#"{"dump": true}"#).await?;
    let seen: Vec<(String, f64)> = serde_json::from_slice(&r.payload)
        .map_err(|e| unexpected(format!("probe dump is not [[id, ms]]: {e}")))?;
    let out: Vec<f64> = seen
        .iter()
        .filter_map(|(id, start)| sent.get(id).map(|t| start - t))
        .collect();
    if out.len() != sent.len() {
        return Err(unexpected(format!(
            "the probe saw {} of {} events (an instance was replaced?)",
            out.len(),
            sent.len()
        )));
    }
    Ok(out)
}

/// Measures accept rate and accept-to-start latency.
pub async fn run(ctx: &mut Ctx, agent: &Agent) -> Result<Scenario, ScenarioError> {
    let mut c = agent.client().await?;
    let (k, backlog) = if ctx.cfg.quick {
        (30, 1_000)
    } else {
        (200, 10_000)
    };
    let probe = ctx.name("events-probe", 0);
    agent::deploy(&mut c, &probe, &probe_bundle()?).await?;
    reserve(&mut c, &probe, 1).await?;
    agent::invoke(&mut c, &probe, br#"{"sync": true}"#).await?;
    let mut p = Progress::new("events", (3 * k + CLIENTS) as u64);
    let mut s = Scenario::new("events", "Asynchronous invocations: accept and start");

    let mut sync = Vec::with_capacity(k);
    for _ in 0..k {
        let (dt, _) = agent::invoke(&mut c, &probe, br#"{"sync": true}"#).await?;
        sync.push(ms(dt));
        p.inc("sync");
    }
    let (accept0, sent0) = probe_round(&mut c, &probe, k, &mut p, "depth 0").await?;
    let start0 = start_latencies(&mut c, &probe, &sent0).await?;

    // The backlog: a function at reserved concurrency 0 whose events all wait.
    let held = ctx.name("events-backlog", 0);
    agent::deploy(&mut c, &held, &ctx.code).await?;
    reserve(&mut c, &held, 0).await?;
    let t0 = Instant::now();
    let mut senders = tokio::task::JoinSet::new();
    for i in 0..CLIENTS {
        let mut c = c.clone();
        let held = held.clone();
        let n = backlog / CLIENTS + usize::from(i < backlog % CLIENTS);
        senders.spawn(async move {
            let mut lat = Vec::with_capacity(n);
            for _ in 0..n {
                lat.push(ms(event(&mut c, &held, b"{}").await?.0));
            }
            Ok::<_, ScenarioError>(lat)
        });
    }
    let mut backlog_accept = Vec::with_capacity(backlog);
    while let Some(r) = senders.join_next().await {
        let lat = r.map_err(unexpected)??;
        p.inc("backlog");
        backlog_accept.extend(lat);
    }
    let accept_s = t0.elapsed().as_secs_f64();
    let (accept_n, sent_n) = probe_round(&mut c, &probe, k, &mut p, "depth N").await?;
    let start_n = start_latencies(&mut c, &probe, &sent_n).await?;
    // Stop the backlog: its events are dead-lettered as they come due.
    c.functions
        .delete_function(DeleteFunctionRequest {
            name: held,
            force: false,
        })
        .await
        .map_err(|e| unexpected(format!("delete the backlog function: {e}")))?;
    p.finish("done");

    let b = s.add("synchronous invoke (warm)", "ms", true, &sync);
    let a0 = s.add("Event accepted (202), queue empty", "ms", false, &accept0);
    s.add(
        &format!("Event accepted (202), {CLIENTS} clients filling a {backlog}-event backlog"),
        "ms",
        false,
        &backlog_accept,
    );
    let an = s.add(
        &format!("Event accepted (202), queue depth {backlog}"),
        "ms",
        false,
        &accept_n,
    );
    let l0 = s.add("send to handler start, queue empty", "ms", false, &start0);
    let ln = s.add(
        &format!("send to handler start, queue depth {backlog}"),
        "ms",
        false,
        &start_n,
    );
    s.ratio(
        "Event accept / sync invoke p50, queue empty",
        ("accept", a0),
        ("sync", b),
    );
    s.ratio(
        &format!("Event accept / sync invoke p50, depth {backlog}"),
        ("accept", an),
        ("sync", b),
    );
    s.ratio(
        "send to start / sync invoke p50, queue empty",
        ("start", l0),
        ("sync", b),
    );
    s.ratio(
        &format!("send to start / sync invoke p50, depth {backlog}"),
        ("start", ln),
        ("sync", b),
    );
    s.value(
        &format!("events accepted per second ({CLIENTS} clients)"),
        backlog as f64 / accept_s,
    );
    s.note(format!(
        "The probe runs at reserved concurrency 1 (one warm instance); its events are sent one at a time, 20 ms apart. The backlog is {backlog} events of a function at reserved concurrency 0, waiting (throttled, retried with backoff) in events.db. Start times are the handler's time.time() against the client's clock (same host)."
    ));
    Ok(s)
}
