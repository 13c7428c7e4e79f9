//! The warm pool: pool hits and misses, demand-driven refills, the function's own
//! environment reaching a runtime started before the function existed, scale to zero.

use flint_integration::*;
use std::time::{Duration, Instant};

async fn wait_pool_ready(agent: &TestAgent, memory_mb: u32, n: u32) {
    let t0 = Instant::now();
    loop {
        let cap = agent.capacity().await;
        let ready = cap
            .pools
            .iter()
            .find(|p| p.runtime == "python3.11" && p.memory_mb == memory_mb)
            .map_or(0, |p| p.ready);
        if ready >= n {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "pool never had {n} ready: {cap:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_for_sandboxes(agent: &TestAgent, n: usize) {
    let t0 = Instant::now();
    while agent.sandbox_count() < n {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "pool never reached {n} sandboxes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const ENV_PROBE: &str = r#"
import os, sys
loaded_at_start = 'json' in sys.modules
def handler(event, context):
    return {"name": os.environ.get("AWS_LAMBDA_FUNCTION_NAME"),
            "handler": os.environ.get("_HANDLER"),
            "mem": context.memory_limit_in_mb,
            "color": os.environ.get("COLOR"),
            "lang": os.environ.get("LANG"),
            "prestart": os.environ.get("FLINT_PRESTART"),
            "cwd": os.getcwd()}
"#;

#[tokio::test]
async fn configured_pool_sandbox_is_used_and_gets_the_functions_environment() {
    let agent = TestAgent::start_args(300, &["--pool-warm", "python3.11:256=1"]).await;
    wait_pool_ready(&agent, 256, 1).await;
    let mut c = agent.client().await;
    let mut req = python_function("probe", ENV_PROBE);
    req.memory_mb = 256;
    req.environment.insert("COLOR".into(), "teal".into());
    // LANG is a default, not reserved: the function's own value wins, as in Lambda.
    req.environment.insert("LANG".into(), "C.UTF-8".into());
    c.functions.create_function(req).await.unwrap();
    let r = invoke(&mut c, "probe", "{}").await;
    let t = r.timings.unwrap();
    assert!(t.cold_start && t.pool_hit, "expected a pool hit: {t:?}");
    assert_eq!(t.sandbox_ns, 0, "a pool hit creates no sandbox");
    let v = json(&r);
    assert_eq!(v["name"], "probe");
    assert_eq!(v["handler"], "app.handler");
    assert_eq!(v["mem"], "256");
    assert_eq!(v["color"], "teal");
    assert_eq!(v["lang"], "C.UTF-8");
    assert_eq!(
        v["prestart"],
        serde_json::Value::Null,
        "FLINT_PRESTART must not leak to the function"
    );
    assert_eq!(v["cwd"], "/var/task");
    // The pool refills in the background: a second function hits it too.
    wait_pool_ready(&agent, 256, 1).await;
    let mut req = python_function("probe2", ENV_PROBE);
    req.memory_mb = 256;
    c.functions.create_function(req).await.unwrap();
    let r = invoke(&mut c, "probe2", "{}").await;
    assert!(r.timings.unwrap().pool_hit);
    assert_eq!(json(&r)["name"], "probe2");
    assert_eq!(json(&r)["lang"], "en_US.UTF-8", "the default LANG");
    // A different memory size has no pool: a miss.
    c.functions
        .create_function(python_function("probe3", ENV_PROBE))
        .await
        .unwrap();
    let r = invoke(&mut c, "probe3", "{}").await;
    let t = r.timings.unwrap();
    assert!(t.cold_start && !t.pool_hit, "{t:?}");
}

#[tokio::test]
async fn demand_fills_the_pool_and_a_new_function_hits_it() {
    let agent = TestAgent::start().await;
    let mut c = agent.client().await;
    assert_eq!(agent.sandbox_count(), 0, "no demand, no sandbox");
    c.functions
        .create_function(python_function("first", ENV_PROBE))
        .await
        .unwrap();
    let r = invoke(&mut c, "first", "{}").await;
    assert!(!r.timings.unwrap().pool_hit, "nothing was there to hit");
    // Demand for (python3.11, 128) refills its pool.
    wait_pool_ready(&agent, 128, 1).await;
    c.functions
        .create_function(python_function("second", ENV_PROBE))
        .await
        .unwrap();
    let r = invoke(&mut c, "second", "{}").await;
    let t = r.timings.unwrap();
    assert!(t.pool_hit, "{t:?}");
    assert_eq!(json(&r)["name"], "second");
    // Init errors in a pool sandbox are the function's, reported as such.
    c.functions
        .create_function(python_function("broken", "import nowhere_to_be_found\n"))
        .await
        .unwrap();
    wait_pool_ready(&agent, 128, 1).await;
    // The pool has a sandbox ready, so "broken" starts in it (its runtime already
    // running) and must still report Lambda's import error.
    let r = invoke(&mut c, "broken", "{}").await;
    assert_eq!(json(&r)["errorType"], "Runtime.ImportModuleError");
}

#[tokio::test]
async fn pool_off_means_every_cold_start_creates_a_sandbox() {
    let agent =
        TestAgent::start_args(300, &["--pool-max", "0", "--pool-warm", "python3.11:128=1"]).await;
    let mut c = agent.client().await;
    for name in ["a", "b"] {
        c.functions
            .create_function(python_function(name, ENV_PROBE))
            .await
            .unwrap();
        let r = invoke(&mut c, name, "{}").await;
        let t = r.timings.unwrap();
        assert!(t.cold_start && !t.pool_hit && t.sandbox_ns > 0, "{t:?}");
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(agent.sandbox_count(), 2, "only the two warm instances");
}

#[tokio::test]
async fn idle_functions_and_pools_scale_to_zero() {
    let agent = TestAgent::start_with(2).await;
    let mut c = agent.client().await;
    c.functions
        .create_function(python_function("brief", ENV_PROBE))
        .await
        .unwrap();
    let r = invoke(&mut c, "brief", "{}").await;
    assert!(r.timings.unwrap().cold_start);
    let r = invoke(&mut c, "brief", "{}").await;
    assert!(!r.timings.unwrap().cold_start, "second call must be warm");
    wait_for_sandboxes(&agent, 2).await;
    // Past the keep-alive (2 s) and the demand window, nothing is held.
    let left = agent.wait_no_sandboxes(Duration::from_secs(10)).await;
    assert!(left.is_empty(), "still held after keep-alive: {left:?}");
    let r = invoke(&mut c, "brief", "{}").await;
    assert!(
        r.timings.unwrap().cold_start,
        "a function scaled to zero starts cold"
    );
}

/// Regression: stopping flintd while pool sandboxes were still starting left empty
/// sandbox cgroups behind.
#[tokio::test]
async fn stopping_while_the_pool_starts_leaves_nothing() {
    for wait_ms in [0u64, 150, 2000] {
        let mut agent = TestAgent::start_args(300, &["--pool-warm", "python3.11:128=3"]).await;
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        let st = agent.stop();
        assert!(st.success(), "flintd exit {st}");
        let left = agent.sandbox_cgroups();
        assert!(left.is_empty(), "after {wait_ms} ms: {left:?}");
    }
}
