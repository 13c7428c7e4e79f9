//! Limits: the agent-wide concurrency limit, reserved concurrency, the per-function
//! rate, the start queue, and draining (new invocations refused, running ones
//! finish, the warm pool emptied), each refusal with its message and its throttle
//! record; and a /tmp size the sandbox backend cannot give.

use super::guest::{Answer, Script};
use super::harness::{json, until, Harness, RUNTIME};
use crate::invoke::InvokeError;
use crate::limiter::Throttle;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// A script whose invocations wait for the test to release them.
fn held() -> (Script, Arc<Semaphore>) {
    let gate = Arc::new(Semaphore::new(0));
    (Script::answering(Answer::Held(gate.clone())), gate)
}

fn throttle(r: Result<crate::invoke::InvokeOutput, InvokeError>) -> Throttle {
    match r {
        Err(InvokeError::Throttled(t)) => t,
        other => panic!("expected a throttle, got {other:?}"),
    }
}

#[tokio::test]
async fn the_agent_concurrency_limit_refuses_the_invocation_beyond_it() {
    let (script, gate) = held();
    let h = Harness::open(script, &["--concurrency-limit", "1"]);
    h.create("f", "v1");
    let running = h.spawn_invoke("f", "{}");
    until("the first invocation to run", || {
        h.agent.capacity().concurrency_in_use == 1
    })
    .await;
    let t = throttle(h.invoke("f", "{}").await);
    assert_eq!(
        t,
        Throttle::Unreserved {
            limit: 1,
            agent_limit: 1,
            reserved: 0
        }
    );
    assert!(t.to_string().starts_with(
        "TooManyRequestsException: the agent's unreserved concurrency of 1 is in use"
    ));
    assert_eq!(
        h.throttles(),
        [("f".to_string(), "concurrency_limit".to_string())]
    );
    gate.add_permits(2);
    assert_eq!(json(&running.await.unwrap().unwrap())["served"], 1);
    assert_eq!(json(&h.invoke_ok("f", "{}").await)["served"], 2);
    assert_eq!(h.records().len(), 2, "the refused call is not metered");
}

#[tokio::test]
async fn reserved_concurrency_caps_its_function_and_leaves_others_running() {
    let (held_script, gate) = held();
    let h = Harness::open(Script::echo(), &["--concurrency-limit", "3"]);
    h.backend.script_for("r", held_script);
    h.create("r", "v1");
    h.create("u", "v1");
    h.agent.set_concurrency("r", Some(1)).unwrap();
    let e = h.agent.set_concurrency("u", Some(3)).unwrap_err();
    assert!(e.to_string().contains("at most 1 is available"), "{e}");

    let running = h.spawn_invoke("r", "{}");
    until("r to run", || h.agent.capacity().concurrency_in_use == 1).await;
    let t = throttle(h.invoke("r", "{}").await);
    assert_eq!(
        t,
        Throttle::Reserved {
            function: "r".into(),
            limit: 1
        }
    );
    assert!(t
        .to_string()
        .contains("function r is at its reserved concurrency of 1"));
    // The rest of the agent's concurrency still serves other functions.
    assert_eq!(json(&h.invoke_ok("u", "{}").await)["served"], 1);
    gate.add_permits(1);
    running.await.unwrap().unwrap();

    // A reservation of 0 turns the function off.
    h.agent.set_concurrency("r", Some(0)).unwrap();
    assert_eq!(
        throttle(h.invoke("r", "{}").await),
        Throttle::Reserved {
            function: "r".into(),
            limit: 0
        }
    );
    assert_eq!(
        h.throttles(),
        [
            ("r".to_string(), "reserved_concurrency".to_string()),
            ("r".to_string(), "reserved_concurrency".to_string())
        ]
    );
}

#[tokio::test]
async fn the_rate_limit_refuses_a_burst() {
    let h = Harness::open(Script::echo(), &["--function-rate-limit", "1"]);
    h.create("f", "v1");
    h.create("g", "v1");
    h.invoke_ok("f", "{}").await;
    let t = throttle(h.invoke("f", "{}").await);
    assert_eq!(
        t,
        Throttle::Rate {
            function: "f".into(),
            limit: 1
        }
    );
    assert!(t.to_string().contains("may be invoked 1 times per second"));
    h.invoke_ok("g", "{}").await;
    assert_eq!(h.throttles(), [("f".to_string(), "rate_limit".to_string())]);
}

#[tokio::test]
async fn a_cold_start_beyond_the_start_queue_is_refused() {
    let h = Harness::open(
        Script::echo(),
        &["--parallel-starts", "1", "--start-queue-ms", "30"],
    );
    h.create("a", "v1");
    h.create("b", "v1");
    h.backend.set_delay(Duration::from_millis(250));
    let slow = h.spawn_invoke("a", "{}");
    until("a's cold start to be under way", || {
        h.agent.capacity().sandboxes.unwrap().starting == 1
    })
    .await;
    match throttle(h.invoke("b", "{}").await) {
        Throttle::Starts {
            parallel: 1,
            waited_ms,
        } => assert!(waited_ms >= 30, "{waited_ms}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        h.throttles(),
        [("b".to_string(), "start_queue".to_string())]
    );
    assert_eq!(json(&slow.await.unwrap().unwrap())["served"], 1);
    // A warm invocation does not queue for a start slot.
    h.backend.set_delay(Duration::ZERO);
    assert_eq!(json(&h.invoke_ok("a", "{}").await)["served"], 2);
}

#[tokio::test]
async fn drain_refuses_new_invocations_waits_for_running_ones_and_empties_the_pool() {
    let (script, gate) = held();
    let warm = format!("{RUNTIME}:128=1");
    let h = Harness::open(script, &["--pool-max", "2", "--pool-warm", &warm]);
    h.create("f", "v1");
    until("the pool to be ready", || {
        h.agent.capacity().pools.iter().any(|p| p.ready == 1)
    })
    .await;
    let running = h.spawn_invoke("f", "{}");
    // Refilled: a second sandbox made, ready (the permit is taken before the pool
    // sandbox is, so "one running, one ready" alone can be the first sandbox).
    until("the invocation to run and the pool to refill", || {
        let c = h.agent.capacity();
        c.concurrency_in_use == 1
            && c.pools.iter().any(|p| p.ready == 1)
            && h.backend.created_ids().len() == 2
    })
    .await;
    let refill = h.backend.created_ids()[1].clone();

    assert_eq!(h.agent.drain(false, Duration::ZERO).await, 1, "one running");
    assert!(h.agent.capacity().draining);
    let t = throttle(h.invoke("f", "{}").await);
    assert_eq!(t, Throttle::Draining);
    assert!(t.to_string().starts_with("node is draining"));
    until("the pool sandbox to be destroyed", || {
        h.backend.destroyed() == [refill.clone()]
    })
    .await;

    let agent = h.agent.clone();
    let drain = tokio::spawn(async move { agent.drain(true, Duration::from_secs(5)).await });
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(
        !drain.is_finished(),
        "drain waits for the running invocation"
    );
    gate.add_permits(1);
    let out = running.await.unwrap().unwrap();
    assert_eq!(out.function_error, None, "a running invocation finishes");
    assert_eq!(drain.await.unwrap(), 0);

    h.agent.resume();
    assert!(!h.agent.capacity().draining);
    gate.add_permits(1);
    assert_eq!(json(&h.invoke_ok("f", "{}").await)["served"], 2);
}

#[tokio::test]
async fn a_tmp_size_other_than_512_mb_is_refused_by_a_backend_that_cannot_size_tmp() {
    let h = Harness::open(Script::answering(Answer::Echo), &[]);
    h.create("f", "v1");
    let change = |mb| crate::functions::ConfigChange {
        ephemeral_storage_mb: Some(mb),
        ..Default::default()
    };
    let e = h
        .agent
        .update_config("f", change(1024))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("the fake sandbox backend's /tmp is fixed at 512 MB"),
        "{e}"
    );
    let e = h
        .agent
        .update_config("f", change(100))
        .unwrap_err()
        .to_string();
    assert!(e.contains("512-10240 MB"), "{e}");
    let f = h.agent.update_config("f", change(512)).unwrap();
    assert_eq!(f.ephemeral_storage_mb, 512);
}
