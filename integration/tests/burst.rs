//! Bursts throttle instead of failing late (issue 14): 1,000 concurrent calls of a
//! 2-second function on a cold agent. The start scheduler admits a few cold starts at a time;
//! every call either succeeds or is refused at once (within the start queue wait)
//! with RESOURCE_EXHAUSTED. None fails because other cold starts slowed it down.
//! `FLINT_BURST_CALLS` changes the number of calls; `FLINT_BURST_PARALLEL_STARTS`
//! passes `--parallel-starts` (a huge value turns the scheduler off, for a baseline).

use flint_integration::*;
use flint_proto::v1::*;
use std::time::{Duration, Instant};
use tonic::Code;

const QUEUE_MS: u64 = 1500;
const CLIENTS: usize = 25;

#[derive(Debug)]
enum Outcome {
    Ok(Duration),
    Throttled(Duration),
    Failed(String),
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test]
async fn a_burst_of_cold_calls_succeeds_or_is_throttled_at_once() {
    let calls: usize = std::env::var("FLINT_BURST_CALLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let queue = QUEUE_MS.to_string();
    let mut args = vec!["--pool-max", "0", "--start-queue-ms", &queue];
    let parallel = std::env::var("FLINT_BURST_PARALLEL_STARTS").unwrap_or_default();
    if !parallel.is_empty() {
        args.extend(["--parallel-starts", &parallel]);
    }
    let agent = TestAgent::start_args(300, &args).await;
    let mut c = agent.client().await;
    let mut req = python_function(
        "burst",
        "import time\ndef handler(e, c):\n    time.sleep(2)\n    return 'ok'\n",
    );
    req.timeout_s = 30;
    c.functions.create_function(req).await.unwrap();

    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(agent.client().await);
    }
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..calls {
        let mut c = clients[i % CLIENTS].clone();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = c
                .invocations
                .invoke(InvokeRequest {
                    function_name: "burst".into(),
                    invocation_type: InvocationType::RequestResponse as i32,
                    payload: b"{}".to_vec(),
                    ..Default::default()
                })
                .await;
            let took = t.elapsed();
            match r {
                Ok(r) if r.get_ref().function_error.is_empty() => Outcome::Ok(took),
                Ok(r) => Outcome::Failed(String::from_utf8_lossy(&r.get_ref().payload).into()),
                Err(s) if s.code() == Code::ResourceExhausted => {
                    assert!(
                        s.message().contains("TooManyRequestsException"),
                        "{}",
                        s.message()
                    );
                    Outcome::Throttled(took)
                }
                Err(s) => Outcome::Failed(format!("{:?}: {}", s.code(), s.message())),
            }
        }));
    }
    let mut ok = Vec::new();
    let mut throttled = Vec::new();
    let mut failed = Vec::new();
    for t in tasks {
        match tokio::time::timeout(Duration::from_secs(120), t)
            .await
            .expect("a call took over 120 s")
            .unwrap()
        {
            Outcome::Ok(d) => ok.push(d),
            Outcome::Throttled(d) => throttled.push(d),
            Outcome::Failed(m) => failed.push(m),
        }
    }
    ok.sort();
    throttled.sort();
    println!(
        "burst of {calls} in {:.1} s: {} ok (p50 {:?}, p99 {:?}), {} throttled (p50 {:?}, max {:?}), {} failed",
        t0.elapsed().as_secs_f64(),
        ok.len(),
        percentile(&ok, 0.5),
        percentile(&ok, 0.99),
        throttled.len(),
        percentile(&throttled, 0.5),
        throttled.last().copied().unwrap_or_default(),
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} calls failed instead of running or being throttled, e.g. {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
    assert!(!ok.is_empty(), "no call ran");
    // "At once": a throttled call waited its queue time, not a start's worth more.
    let late = throttled
        .iter()
        .filter(|d| **d > Duration::from_millis(QUEUE_MS + 3000))
        .count();
    assert_eq!(
        late, 0,
        "{late} throttled calls took longer than the queue wait + 3 s"
    );
}

/// A flintd whose start floor no host meets, standing in for a host whose memory is
/// taken; starts queue for at most 300 ms.
async fn short_of_memory(extra: &[&str]) -> TestAgent {
    let mut args = vec![
        "--start-queue-ms",
        "300",
        "--start-min-free-mb",
        "100000000",
    ];
    args.extend_from_slice(extra);
    TestAgent::start_args(300, &args).await
}

#[tokio::test]
async fn cold_starts_are_refused_while_the_host_is_short_of_memory() {
    let agent = short_of_memory(&["--pool-max", "0"]).await;
    let mut c = agent.client().await;
    c.functions
        .create_function(python_function(
            "hungry",
            "def handler(e, c):\n    return 1\n",
        ))
        .await
        .unwrap();
    let t0 = Instant::now();
    let err = c
        .invocations
        .invoke(InvokeRequest {
            function_name: "hungry".into(),
            payload: b"{}".to_vec(),
            ..Default::default()
        })
        .await
        .expect_err("no cold start below the memory floor");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert_eq!(err.code(), Code::ResourceExhausted, "{}", err.message());
    assert!(
        err.message().contains("MB of memory available")
            && err.message().contains("--start-min-free-mb"),
        "{}",
        err.message()
    );
    assert_eq!(agent.sandbox_count(), 0, "no sandbox was started");
}

#[tokio::test]
async fn a_pool_hit_is_served_while_the_host_is_short_of_memory() {
    // The floor holds back starts that make a sandbox; a pre-started one's memory is in
    // use already, so binding it to a function goes ahead.
    let agent = short_of_memory(&["--pool-warm", "python3.11:128=1"]).await;
    let mut c = agent.client().await;
    let mut req = python_function("fed", "def handler(e, c):\n    return 7\n");
    req.memory_mb = 128;
    c.functions.create_function(req).await.unwrap();
    agent
        .wait_pool_ready("python3.11", 128, Duration::from_secs(60))
        .await;
    let r = invoke(&mut c, "fed", "{}").await;
    assert_eq!(r.payload, b"7");
    let t = r.timings.expect("timings");
    assert!(t.cold_start && t.pool_hit, "expected a pool hit: {t:?}");
}
