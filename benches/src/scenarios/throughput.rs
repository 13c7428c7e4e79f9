//! Throughput: C clients invoking one warm function back to back for a fixed window, at
//! C = 1, 2, 4, ... (256 in full mode), against the raw tonic echo at the same
//! concurrency. One instance per concurrent invocation, as in Lambda.

use super::{ms, Ctx, ScenarioError};
use crate::agent::{self, Agent};
use crate::echo::EchoServer;
use crate::progress::Progress;
use crate::report::{ChartKind, Scenario};
use crate::svg::Line;
use flint_agent::client::Client;
use flint_proto::v1::{InvocationType, InvokeRequest, LogType};
use std::time::{Duration, Instant};

/// How long a warm-up call is retried while flintd throttles its cold start.
const WARM_UP_WITHIN: Duration = Duration::from_secs(60);

/// Completed requests and their latencies (ms) over a window, and the calls flintd
/// refused with RESOURCE_EXHAUSTED (throttled cold starts).
struct Window {
    rps: f64,
    latencies: Vec<f64>,
    throttled: usize,
}

/// How long a client waits after a throttled call before its next one.
const THROTTLE_BACKOFF: Duration = Duration::from_millis(50);

/// `c` tasks, each invoking back to back until `window` has passed.
async fn drive(
    client: &Client,
    name: &str,
    c: usize,
    window: Duration,
) -> Result<Window, ScenarioError> {
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..c {
        let mut cl = client.clone();
        let name = name.to_string();
        tasks.spawn(async move {
            let mut lat = Vec::new();
            let mut throttled = 0usize;
            while start.elapsed() < window {
                let t0 = Instant::now();
                let r = cl
                    .invocations
                    .invoke(InvokeRequest {
                        function_name: name.clone(),
                        invocation_type: InvocationType::RequestResponse as i32,
                        log_type: LogType::LogNone as i32,
                        payload: Vec::new(),
                        client_context: String::new(),
                    })
                    .await;
                let r = match r {
                    Ok(r) => r.into_inner(),
                    // A call that needed a cold start while flintd's start queue was
                    // full (the warm-up can leave fewer than C instances: a call of a
                    // round may reuse an instance another call of it freed). A client
                    // backs off and calls again; the call is counted, not its time.
                    Err(st) if st.code() == tonic::Code::ResourceExhausted => {
                        throttled += 1;
                        tokio::time::sleep(THROTTLE_BACKOFF).await;
                        continue;
                    }
                    Err(st) => {
                        return Err(ScenarioError::Unexpected(format!(
                            "invoke during throughput: {st}"
                        )))
                    }
                };
                if r.status_code != 200 || !r.function_error.is_empty() {
                    return Err(ScenarioError::Unexpected(format!(
                        "invoke during throughput failed: {} {}",
                        r.status_code, r.function_error
                    )));
                }
                lat.push(ms(t0.elapsed()));
            }
            Ok((lat, throttled))
        });
    }
    let mut latencies = Vec::new();
    let mut throttled = 0;
    while let Some(r) = tasks.join_next().await {
        let (lat, t) = r.map_err(|e| ScenarioError::Unexpected(format!("client task: {e}")))??;
        latencies.extend(lat);
        throttled += t;
    }
    Ok(Window {
        rps: latencies.len() as f64 / start.elapsed().as_secs_f64(),
        latencies,
        throttled,
    })
}

/// Measures requests per second at each concurrency level.
pub async fn run(
    ctx: &mut Ctx,
    agent: &Agent,
    echo: &EchoServer,
) -> Result<Scenario, ScenarioError> {
    let mut c = agent.client().await?;
    let e = echo.client().await?;
    let name = ctx.name("tp", 0);
    agent::deploy_sized(&mut c, &name, &ctx.code, ctx.cfg.warm_memory_mb).await?;
    let levels = ctx.cfg.throughput_levels.clone();
    let window = ctx.cfg.throughput_window;
    let mut p = Progress::new("throughput", 2 * levels.len() as u64);
    let mut s = Scenario::new("throughput", "Throughput by concurrency");
    let (mut fl, mut el) = (Vec::new(), Vec::new());
    for &n in &levels {
        // Warm-up: n concurrent invocations, twice, so n warm instances exist (the cold
        // starts a level needs are queued and throttled by flintd: retried).
        for _ in 0..2 {
            let mut set = tokio::task::JoinSet::new();
            for _ in 0..n {
                let mut cl = c.clone();
                let name = name.clone();
                set.spawn(async move {
                    agent::invoke_retrying(&mut cl, &name, b"", WARM_UP_WITHIN)
                        .await
                        .map(|_| ())
                });
            }
            while let Some(r) = set.join_next().await {
                r.map_err(|e| ScenarioError::Unexpected(format!("warm-up task: {e}")))??;
            }
        }
        let f = drive(&c, &name, n, window).await?;
        p.inc(&format!("flint c={n}: {:.0} req/s", f.rps));
        drive(&e, &name, n, Duration::from_millis(50)).await?;
        let b = drive(&e, &name, n, window).await?;
        p.inc(&format!("echo c={n}: {:.0} req/s", b.rps));
        s.add(&format!("flint latency, c={n}"), "ms", false, &f.latencies);
        s.value(&format!("flint req/s, c={n}"), f.rps);
        if f.throttled > 0 {
            s.value(&format!("flint throttled calls, c={n}"), f.throttled as f64);
            s.note(format!(
                "c={n}: {} call(s) were throttled (RESOURCE_EXHAUSTED: a cold start found \
                 flintd's start queue full); each was retried after {THROTTLE_BACKOFF:?} \
                 and is not in the req/s or the latencies",
                f.throttled
            ));
        }
        s.value(&format!("echo req/s, c={n}"), b.rps);
        s.ratio(
            &format!("flint / echo req/s, c={n}"),
            ("flint", Some(f.rps)),
            ("echo", Some(b.rps)),
        );
        fl.push((n as f64, f.rps));
        el.push((n as f64, b.rps));
    }
    p.finish("done");
    s.add(
        "flint req/s over levels",
        "req/s",
        false,
        &fl.iter().map(|x| x.1).collect::<Vec<_>>(),
    );
    s.note(format!(
        "{} s window per level after a warm-up; the client, flintd and the instances share the machine's cores; the function has {} MB ({:.3} vCPU)",
        window.as_secs_f64(),
        ctx.cfg.warm_memory_mb,
        f64::from(ctx.cfg.warm_memory_mb) / 1769.0
    ));
    s.chart_kind = ChartKind::Lines {
        x_label: "concurrent clients".into(),
        y_label: "requests per second".into(),
        lines: vec![
            Line {
                name: "flint (warm hello)".into(),
                points: fl,
            },
            Line {
                name: "tonic echo (floor)".into(),
                points: el,
            },
        ],
    };
    Ok(s)
}
