//! Lambda's limits end to end: reserved concurrency, the agent-wide concurrency limit
//! and the per-function rate, each refusing at once with RESOURCE_EXHAUSTED and a
//! message naming the limit and its value; scale-out up to the limit.

use flint_integration::*;
use flint_proto::v1::*;
use std::time::Duration;
use tonic::Code;

const SLOW: &str =
    "import time\ndef handler(e, c):\n    time.sleep(e.get('s', 1))\n    return 'done'\n";

fn slow_call(name: &str, secs: f64) -> InvokeRequest {
    InvokeRequest {
        function_name: name.into(),
        payload: format!("{{\"s\": {secs}}}").into_bytes(),
        ..Default::default()
    }
}

#[tokio::test]
async fn reserved_concurrency_caps_a_function() {
    let agent = TestAgent::start_args(300, &["--concurrency-limit", "20"]).await;
    let mut c = agent.client().await;
    c.functions
        .create_function(python_function("capped", SLOW))
        .await
        .unwrap();
    let f = c
        .functions
        .put_function_concurrency(PutFunctionConcurrencyRequest {
            name: "capped".into(),
            reserved_concurrency: 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(f.reserved_concurrency, Some(1));
    let mut c2 = c.clone();
    let running =
        tokio::spawn(async move { c2.invocations.invoke(slow_call("capped", 2.0)).await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    let t0 = std::time::Instant::now();
    let err = c
        .invocations
        .invoke(slow_call("capped", 0.0))
        .await
        .unwrap_err();
    assert!(
        t0.elapsed() < Duration::from_millis(500),
        "a throttle must answer at once"
    );
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(
        err.message().contains("reserved concurrency of 1"),
        "{}",
        err.message()
    );
    assert!(
        err.message().contains("TooManyRequestsException"),
        "{}",
        err.message()
    );
    let r = running.await.unwrap().unwrap().into_inner();
    assert_eq!(r.function_error, "");
    // Asking for more than the agent can reserve is refused with the numbers.
    let err = c
        .functions
        .put_function_concurrency(PutFunctionConcurrencyRequest {
            name: "capped".into(),
            reserved_concurrency: 50,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(
        err.message().contains("concurrency limit is 20"),
        "{}",
        err.message()
    );
    // Removing the reservation lifts the cap.
    let f = c
        .functions
        .delete_function_concurrency(DeleteFunctionConcurrencyRequest {
            name: "capped".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(f.reserved_concurrency, None);
}

#[tokio::test]
async fn agent_concurrency_limit_and_scale_out() {
    let agent = TestAgent::start_args(300, &["--concurrency-limit", "3"]).await;
    let c = agent.client().await;
    c.functions
        .clone()
        .create_function(python_function("wide", SLOW))
        .await
        .unwrap();
    let mut running = Vec::new();
    for _ in 0..3 {
        let mut c = c.clone();
        running.push(tokio::spawn(async move {
            c.invocations.invoke(slow_call("wide", 2.5)).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let err = c
        .clone()
        .invocations
        .invoke(slow_call("wide", 0.0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(
        err.message().contains("unreserved concurrency of 3"),
        "{}",
        err.message()
    );
    let cap = agent.capacity().await;
    assert_eq!(cap.concurrency_limit, 3);
    assert_eq!(cap.concurrency_in_use, 3);
    for r in running {
        assert_eq!(r.await.unwrap().unwrap().into_inner().function_error, "");
    }
    assert_eq!(
        agent.instances_of("wide").await,
        3,
        "three concurrent calls scale out to three instances"
    );
}

#[tokio::test]
async fn rate_limit_refuses_bursts() {
    let agent = TestAgent::start_args(300, &["--function-rate-limit", "5"]).await;
    let mut c = agent.client().await;
    c.functions
        .create_function(python_function(
            "quick",
            "def handler(e, c):\n    return 1\n",
        ))
        .await
        .unwrap();
    let mut refused = None;
    for i in 0..20 {
        match c
            .invocations
            .invoke(InvokeRequest {
                function_name: "quick".into(),
                ..Default::default()
            })
            .await
        {
            Ok(_) => {}
            Err(e) => {
                refused = Some((i, e));
                break;
            }
        }
    }
    let (i, e) = refused.expect("20 calls in a burst must exceed 5/s");
    assert!(i >= 5, "refused too early, at call {i}");
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert!(
        e.message().contains("5 times per second"),
        "{}",
        e.message()
    );
}
