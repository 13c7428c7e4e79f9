//! Asynchronous invocations under faults, through a real flintd: a poison event that
//! crashes its runtime every time ends in the dead-letter queue (with the metrics that
//! say so), a drain waits for running events and leaves queued ones queued, a deleted
//! function's events are dead-lettered.

mod events_support;

use events_support::*;
use flint_integration::*;
use flint_proto::v1::*;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_poison_event_ends_in_the_dead_letter_queue_after_its_retries() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let listen = format!("127.0.0.1:{port}");
    let agent = start_with(&["--metrics-listen", &listen]).await;
    let mut c = agent.client().await;
    c.functions
        .create_function(python_function(
            "poison",
            "import os\ndef handler(e, c):\n    print('CRASH', c.aws_request_id)\n    os._exit(3)\n",
        ))
        .await
        .unwrap();
    c.functions
        .create_function(python_function("sink", SINK))
        .await
        .unwrap();
    put_config(
        &mut c,
        EventInvokeConfig {
            function_name: "poison".into(),
            on_failure: "sink".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let id = event(&mut c, "poison", r#"{"p": 1}"#).await;
    let log = wait_log(
        &agent,
        "sink",
        Duration::from_secs(30),
        "on-failure record",
        |l| !records(l).is_empty(),
    )
    .await;
    let r = &records(&log)[0];
    assert_eq!(r["requestContext"]["requestId"], id.as_str());
    assert_eq!(r["requestContext"]["condition"], "RetriesExhausted");
    assert_eq!(r["requestContext"]["approximateInvokeCount"], 3);
    assert_eq!(r["responseContext"]["functionError"], "Unhandled");
    assert_eq!(
        r["responsePayload"]["errorType"], "Runtime.ExitError",
        "{r}"
    );
    let crashes = log_of(&agent, "poison")
        .matches(&format!("CRASH {id}"))
        .count();
    assert_eq!(crashes, 3, "one run and two retries");
    let dlq = list(&agent, "poison", &[EventState::Dead]).await;
    assert_eq!(dlq.events.len(), 1, "{dlq:?}");
    assert_eq!(dlq.events[0].attempts, 3);

    let m = scrape(port).await;
    assert_eq!(value(&m, "flint_event_retries_total"), 2.0);
    assert_eq!(value(&m, "flint_event_dead_lettered_total"), 1.0);
    assert_eq!(value(&m, "flint_event_dead_letter_depth"), 1.0);
    assert_eq!(value(&m, "flint_event_dropped_by_age_total"), 0.0);
    assert_eq!(
        value(
            &m,
            r#"flint_event_destination_deliveries_total{destination="on_failure",result="ok"}"#
        ),
        1.0
    );
    // The record itself was queued and ran: the queue is empty but for the dead one.
    assert_eq!(value(&m, "flint_event_queue_depth"), 0.0);
    assert_eq!(value(&m, "flint_event_oldest_age_seconds"), 0.0);

    // A deleted function's queued events are dead-lettered, not retried for ever.
    c.functions
        .put_function_concurrency(PutFunctionConcurrencyRequest {
            name: "poison".into(),
            reserved_concurrency: 0,
        })
        .await
        .unwrap();
    let orphan = event(&mut c, "poison", "{}").await;
    c.functions
        .delete_function(DeleteFunctionRequest {
            name: "poison".into(),
            force: false,
        })
        .await
        .unwrap();
    let t0 = Instant::now();
    loop {
        let dead = list(&agent, "poison", &[EventState::Dead]).await;
        if dead.events.iter().any(|e| e.request_id == orphan) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{}",
            evidence(&agent, &[]).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn drain_waits_for_running_events_and_leaves_queued_ones_queued() {
    let agent = start().await;
    let mut c = agent.client().await;
    c.functions
        .create_function(python_function(
            "slow",
            "import time\ndef handler(e, c):\n    time.sleep(1.5)\n    print('DONE', e['n'])\n    return 1\n",
        ))
        .await
        .unwrap();
    c.functions
        .put_function_concurrency(PutFunctionConcurrencyRequest {
            name: "slow".into(),
            reserved_concurrency: 1,
        })
        .await
        .unwrap();
    for n in 0..3 {
        event(&mut c, "slow", &format!(r#"{{"n": {n}}}"#)).await;
    }
    // One runs (reserved concurrency 1), two wait.
    let t0 = Instant::now();
    while !log_of(&agent, "slow").contains("START RequestId")
        && list(&agent, "slow", &[EventState::InFlight])
            .await
            .events
            .is_empty()
    {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "{}",
            evidence(&agent, &["slow"]).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drained = c
        .node
        .drain(DrainRequest {
            wait: true,
            timeout_s: 20,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(drained.in_flight, 0, "drain returned with events running");
    let log = log_of(&agent, "slow");
    assert_eq!(
        log.matches("DONE").count(),
        1,
        "the running event finished: {log}"
    );
    // A draining node refuses new events; the queued ones stay queued.
    let refused = c
        .invocations
        .invoke(InvokeRequest {
            function_name: "slow".into(),
            invocation_type: InvocationType::Event as i32,
            payload: b"{}".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused}");
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(log_of(&agent, "slow").matches("DONE").count(), 1);
    let q = list(&agent, "slow", &[]).await;
    assert_eq!(q.depth, 2, "{q:?}");
    assert!(
        q.events
            .iter()
            .all(|e| e.state != EventState::InFlight as i32),
        "{q:?}"
    );
    c.node.resume(ResumeRequest {}).await.unwrap();
    wait_log(
        &agent,
        "slow",
        Duration::from_secs(30),
        "queued events run after resume",
        |l| l.matches("DONE").count() == 3,
    )
    .await;
}

#[tokio::test]
async fn queued_events_survive_a_sigterm_restart() {
    let mut agent = start().await;
    let mut c = agent.client().await;
    c.functions
        .create_function(python_function(
            "held",
            "def handler(e, c):\n    print('RAN', e['n'])\n    return 1\n",
        ))
        .await
        .unwrap();
    c.functions
        .put_function_concurrency(PutFunctionConcurrencyRequest {
            name: "held".into(),
            reserved_concurrency: 0,
        })
        .await
        .unwrap();
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(event(&mut c, "held", &format!(r#"{{"n": {n}}}"#)).await);
    }
    drop(c);
    agent.restart().await;
    let q = list(&agent, "held", &[]).await;
    assert_eq!(q.depth, 5, "queued events lost across SIGTERM: {q:?}");
    let mut c = agent.client().await;
    c.functions
        .delete_function_concurrency(DeleteFunctionConcurrencyRequest {
            name: "held".into(),
        })
        .await
        .unwrap();
    wait_log(
        &agent,
        "held",
        Duration::from_secs(20),
        "events run after the restart",
        |l| {
            ids.iter()
                .all(|id| l.contains(&format!("END RequestId: {id}")))
        },
    )
    .await;
}
