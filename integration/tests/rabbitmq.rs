//! The RabbitMQ event source through a real flintd and a real broker (Debian's
//! rabbitmq-server, started by the test with its own directories, node name, user
//! and virtual host; stopped at the end, also on failure).
//!
//! 10,000 messages wait in a queue before the trigger exists. A Python handler
//! written for Lambda's `aws:rmq` event prints the ids of each batch into its log
//! (`<data-dir>/logs/consumer.log`); it kills its own runtime process (`os._exit`)
//! on the first delivery of a marker message, and flintd itself is SIGKILLed and
//! restarted while batches are in flight. Checked: every id is seen (none lost),
//! an id seen twice was redelivered, no batch is larger than the batch size, the
//! queue ends empty, the event's shape, the password hidden by `flint triggers`,
//! the last fire in `flint triggers ls` and the per-trigger metrics. Then: a
//! poison batch is retried and ends in the dead-letter function; while the function
//! is throttled (reserved concurrency 0) nothing is consumed and nothing lost; after
//! the broker closes every connection, the consumer reconnects and goes on.

use flint_integration::rabbitmq::Broker;
use flint_integration::*;
use flint_proto::v1::*;
use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};
use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MESSAGES: u64 = 10_000;
const BATCH: usize = 100;
/// The message whose first delivery crashes the runtime.
const MARKER: u64 = 7_777;

const CONSUMER: &str = r#"import base64, json, os
def handler(event, context):
    (key, recs), = event["rmqMessagesByQueue"].items()
    ids = []
    for r in recs:
        body = json.loads(base64.b64decode(r["data"]))
        if body.get("crash") and not r["redelivered"]:
            print("CRASHING on " + str(body["id"]), flush=True)
            os._exit(1)
        ids.append(body["id"])
    print("BATCH " + json.dumps({"key": key, "source": event["eventSource"],
        "arn": event["eventSourceArn"], "ids": ids,
        "redelivered": [r["redelivered"] for r in recs],
        "props": recs[0]["basicProperties"]}), flush=True)
    return {"ok": len(ids)}
"#;

const POISON: &str = r#"import base64, json
def handler(event, context):
    for recs in event["rmqMessagesByQueue"].values():
        for r in recs:
            if json.loads(base64.b64decode(r["data"])).get("poison"):
                raise Exception("poison message")
    return "ok"
"#;

const SINK: &str = r#"import json
def handler(event, context):
    print("DLQ " + json.dumps(event), flush=True)
"#;

fn flint(agent: &TestAgent, args: &[&str]) -> Output {
    Command::new(binary("flint"))
        .arg("--endpoint")
        .arg(&agent.socket)
        .args(args)
        .output()
        .expect("run flint")
}

fn ok(o: Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "flint failed: {}\n{out}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

fn log_of(agent: &TestAgent, function: &str) -> String {
    std::fs::read_to_string(agent.data_dir.join(format!("logs/{function}.log"))).unwrap_or_default()
}

/// Every BATCH line of the consumer's log, parsed.
fn batches(agent: &TestAgent) -> Vec<serde_json::Value> {
    log_of(agent, "consumer")
        .lines()
        .filter_map(|l| l.split_once("BATCH ").map(|(_, j)| j))
        .map(|j| serde_json::from_str(j).unwrap_or_else(|e| panic!("bad BATCH line {j}: {e}")))
        .collect()
}

/// How often each id was seen, and whether each later sighting was a redelivery.
fn sightings(agent: &TestAgent) -> BTreeMap<u64, Vec<bool>> {
    let mut seen: BTreeMap<u64, Vec<bool>> = BTreeMap::new();
    for b in batches(agent) {
        let ids = b["ids"].as_array().unwrap();
        let red = b["redelivered"].as_array().unwrap();
        for (id, r) in ids.iter().zip(red) {
            seen.entry(id.as_u64().unwrap())
                .or_default()
                .push(r.as_bool().unwrap());
        }
    }
    seen
}

/// Fails with flintd's function logs and the broker's log.
fn fail(what: &str, agent: &TestAgent, broker: &Broker) -> ! {
    let tail = |s: String| s.lines().rev().take(40).collect::<Vec<_>>().join("\n");
    panic!(
        "{what}\n--- consumer log (last lines, newest first) ---\n{}\n--- flint triggers ls ---\n{}\n--- broker ---\n{}",
        tail(log_of(agent, "consumer")),
        String::from_utf8_lossy(&flint(agent, &["triggers", "ls"]).stdout),
        broker.log()
    )
}

async fn wait_until(
    what: &str,
    within: Duration,
    agent: &TestAgent,
    broker: &Broker,
    mut pred: impl FnMut() -> bool,
) {
    let t0 = Instant::now();
    while !pred() {
        if t0.elapsed() > within {
            fail(&format!("{what}: not within {within:?}"), agent, broker);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Publishes one message; returns the broker's confirmation to wait for.
async fn publish_only(
    ch: &Channel,
    queue: &str,
    id: u64,
    body: serde_json::Value,
) -> lapin::PublisherConfirm {
    let props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_message_id(format!("m-{id}").into())
        .with_delivery_mode(2);
    ch.basic_publish(
        "".into(),
        queue.into(),
        BasicPublishOptions::default(),
        body.to_string().as_bytes(),
        props,
    )
    .await
    .expect("publish")
}

async fn publish(ch: &Channel, queue: &str, id: u64, body: serde_json::Value) {
    publish_only(ch, queue, id, body)
        .await
        .await
        .expect("publish confirmation");
}

/// Messages ready in `queue` (not delivered to a consumer).
async fn depth(ch: &Channel, queue: &str) -> u32 {
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("passive declare")
    .message_count()
}

/// Publishes `n` messages to a fresh queue and times a plain consumer draining them.
async fn baseline_drain(broker: &Broker, n: u64) -> Duration {
    use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
    use tokio_stream::StreamExt;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    ch.queue_declare("baseline".into(), Default::default(), FieldTable::default())
        .await
        .unwrap();
    let mut confirms = Vec::new();
    for id in 0..n {
        confirms.push(publish_only(&ch, "baseline", id, serde_json::json!({"id": id})).await);
    }
    for c in confirms {
        c.await.expect("publish confirmation");
    }
    ch.basic_qos(300, BasicQosOptions::default()).await.unwrap();
    let t0 = Instant::now();
    let mut consumer = ch
        .basic_consume(
            "baseline".into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    for _ in 0..n {
        let d = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .expect("baseline delivery within 10 s")
            .expect("baseline consumer open")
            .expect("baseline delivery");
        d.acker.ack(BasicAckOptions::default()).await.unwrap();
    }
    let took = t0.elapsed();
    let _ = conn.close(200, "baseline done".into()).await;
    took
}

async fn scrape(port: u16) -> String {
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

fn series(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no series {name} in:\n{body}"))
}

#[tokio::test]
async fn ten_thousand_messages_survive_a_crashing_runtime_and_a_killed_flintd() {
    let metrics_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let metrics = format!("127.0.0.1:{metrics_port}");
    let flags = ["--metrics-listen", metrics.as_str()];
    let (broker, mut agent) = tokio::join!(Broker::start(), TestAgent::start_args(300, &flags));
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    for q in ["orders", "poison"] {
        ch.queue_declare(
            q.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
    let t0 = Instant::now();
    let mut confirms = Vec::new();
    for id in 0..MESSAGES {
        let body = if id == MARKER {
            serde_json::json!({"id": id, "crash": true})
        } else {
            serde_json::json!({"id": id})
        };
        confirms.push(publish_only(&ch, "orders", id, body).await);
    }
    for c in confirms {
        c.await.expect("publish confirmation");
    }
    eprintln!("published {MESSAGES} in {:?}", t0.elapsed());
    assert_eq!(depth(&ch, "orders").await as u64, MESSAGES);

    let mut c = agent.client().await;
    for (name, code) in [
        ("consumer", CONSUMER),
        ("poison", POISON),
        ("dlq-sink", SINK),
    ] {
        c.functions
            .create_function(python_function(name, code))
            .await
            .unwrap();
    }
    // Same-run baseline: a plain lapin consumer (prefetch 300, one ack per message)
    // drains 3,000 messages from another queue.
    let baseline = baseline_drain(&broker, 3_000).await;
    let url = broker.url();
    let created = Instant::now();
    let out = ok(flint(
        &agent,
        &[
            "triggers",
            "create",
            "orders",
            "--function",
            "consumer",
            "--queue",
            &url,
            "--queue-name",
            "orders",
            "--batch-size",
            "100",
            "--batching-window-s",
            "0.5",
            "--max-concurrency",
            "3",
            "--retries",
            "2",
        ],
    ));
    assert!(!out.contains(&broker.password), "password shown: {out}");
    assert!(out.contains("amqp://flint:****@127.0.0.1"), "{out}");

    // Half way, flintd is killed with batches in flight, then started again.
    wait_until(
        "3,000 ids seen",
        Duration::from_secs(60),
        &agent,
        &broker,
        || sightings(&agent).len() >= 3_000,
    )
    .await;
    eprintln!(
        "3,000 messages: trigger (create to handled, cold start included) {:?}; plain consumer {baseline:?}",
        created.elapsed()
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent.pid() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    agent.restart_after_kill().await;
    eprintln!("flintd killed and restarted after {:?}", t0.elapsed());

    wait_until(
        "every id seen",
        Duration::from_secs(90),
        &agent,
        &broker,
        || sightings(&agent).len() as u64 == MESSAGES,
    )
    .await;
    eprintln!("all {MESSAGES} seen after {:?}", t0.elapsed());
    let seen = sightings(&agent);
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        (0..MESSAGES).collect::<Vec<_>>()
    );
    for (id, s) in &seen {
        assert!(
            s[1..].iter().all(|r| *r),
            "id {id} seen again without being redelivered: {s:?}"
        );
    }
    let all = batches(&agent);
    let again = seen.values().filter(|s| s.len() > 1).count();
    let redelivered = seen.values().filter(|s| s[0]).count();
    eprintln!(
        "{} batches; {again} ids seen more than once, {redelivered} first seen as redeliveries",
        all.len()
    );
    assert!(
        redelivered > 0,
        "the killed flintd's unacknowledged deliveries came again, redelivered"
    );
    assert!(all
        .iter()
        .all(|b| b["ids"].as_array().unwrap().len() <= BATCH));
    assert!(
        all.iter()
            .filter(|b| b["ids"].as_array().unwrap().len() == BATCH)
            .count()
            > 50,
        "a backlog is consumed in full batches"
    );
    let log = log_of(&agent, "consumer");
    assert!(
        log.contains(&format!("CRASHING on {MARKER}")),
        "the marker crashed the runtime"
    );
    assert_eq!(
        seen[&MARKER].last(),
        Some(&true),
        "the marker's batch was retried as a redelivery"
    );
    let first = &all[0];
    assert_eq!(first["source"], "aws:rmq");
    assert_eq!(first["key"], "orders::flint-test");
    assert!(
        first["arn"].as_str().unwrap().starts_with("arn:aws:mq:"),
        "{first}"
    );
    assert_eq!(first["props"]["contentType"], "application/json");
    assert_eq!(first["props"]["deliveryMode"], 2);
    assert!(first["props"]["messageId"]
        .as_str()
        .unwrap()
        .starts_with("m-"));

    // Everything acknowledged: nothing waits in the queue.
    let conn_ch = ch.clone();
    let t1 = Instant::now();
    while depth(&conn_ch, "orders").await > 0 {
        assert!(t1.elapsed() < Duration::from_secs(10), "queue not drained");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ls = ok(flint(&agent, &["triggers", "ls"]));
    assert!(
        ls.contains("queue:orders") && !ls.contains(&broker.password),
        "{ls}"
    );
    let t = c
        .triggers()
        .get_trigger(GetTriggerRequest {
            name: "orders".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!t.last_fire.is_empty(), "{t:?}");
    let m = scrape(metrics_port).await;
    assert!(
        series(&m, "flint_queue_trigger_messages_total{trigger=\"orders\"}") > 0.0,
        "{m}"
    );
    assert!(series(&m, "flint_queue_trigger_failures_total{trigger=\"orders\"}") >= 1.0);

    // A poison batch: retried once, then handed to the dead-letter function.
    ok(flint(
        &agent,
        &[
            "triggers",
            "create",
            "poisoned",
            "--function",
            "poison",
            "--queue",
            &url,
            "--queue-name",
            "poison",
            "--batch-size",
            "5",
            "--batching-window-s",
            "0.3",
            "--retries",
            "1",
            "--dead-letter",
            "dlq-sink",
        ],
    ));
    for id in 0..3 {
        publish(
            &ch,
            "poison",
            id,
            serde_json::json!({"id": id, "poison": id == 1}),
        )
        .await;
    }
    wait_until(
        "the dead-letter record",
        Duration::from_secs(30),
        &agent,
        &broker,
        || log_of(&agent, "dlq-sink").contains("DLQ "),
    )
    .await;
    let dlq = log_of(&agent, "dlq-sink");
    let rec: serde_json::Value =
        serde_json::from_str(dlq.lines().find_map(|l| l.split_once("DLQ ")).unwrap().1).unwrap();
    assert_eq!(
        rec["requestContext"]["condition"], "RetryAttemptsExhausted",
        "{rec}"
    );
    assert_eq!(rec["requestContext"]["approximateInvokeCount"], 2, "{rec}");
    assert_eq!(rec["requestPayload"]["eventSource"], "aws:rmq");
    let msgs = rec["requestPayload"]["rmqMessagesByQueue"]["poison::flint-test"]
        .as_array()
        .unwrap();
    assert_eq!(msgs.len(), 3, "{rec}");
    let t1 = Instant::now();
    while depth(&ch, "poison").await > 0 {
        assert!(
            t1.elapsed() < Duration::from_secs(10),
            "poison queue not drained"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let m = scrape(metrics_port).await;
    assert_eq!(
        series(
            &m,
            "flint_queue_trigger_dead_lettered_total{trigger=\"poisoned\"}"
        ),
        3.0
    );

    // Throttled (reserved concurrency 0): nothing is consumed, nothing lost.
    c.functions
        .put_function_concurrency(PutFunctionConcurrencyRequest {
            name: "consumer".into(),
            reserved_concurrency: 0,
        })
        .await
        .unwrap();
    for id in MESSAGES..MESSAGES + 50 {
        publish(&ch, "orders", id, serde_json::json!({"id": id})).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        sightings(&agent).len() as u64,
        MESSAGES,
        "consumed while throttled"
    );
    let t = c
        .triggers()
        .get_trigger(GetTriggerRequest {
            name: "orders".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(t.last_error.contains("TooManyRequests"), "{t:?}");
    c.functions
        .delete_function_concurrency(DeleteFunctionConcurrencyRequest {
            name: "consumer".into(),
        })
        .await
        .unwrap();
    wait_until(
        "the 50 held back consumed",
        Duration::from_secs(30),
        &agent,
        &broker,
        || sightings(&agent).len() as u64 == MESSAGES + 50,
    )
    .await;

    // The broker drops every connection: the consumer reconnects and goes on.
    let connections = |m: &str| {
        series(
            m,
            "flint_queue_trigger_connections_total{trigger=\"orders\"}",
        )
    };
    let before = connections(&scrape(metrics_port).await);
    let vhost = broker.vhost.clone();
    broker.ctl(&[
        "close_all_connections",
        "-p",
        &vhost,
        "test: connection loss",
    ]);
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    for id in MESSAGES + 50..MESSAGES + 60 {
        publish(&ch, "orders", id, serde_json::json!({"id": id})).await;
    }
    wait_until(
        "messages after a reconnect consumed",
        Duration::from_secs(30),
        &agent,
        &broker,
        || sightings(&agent).len() as u64 == MESSAGES + 60,
    )
    .await;
    let m = scrape(metrics_port).await;
    assert!(connections(&m) > before, "the consumer reconnected: {m}");
    assert!(
        series(&m, "flint_queue_trigger_lag_messages{trigger=\"orders\"}") >= 0.0,
        "{m}"
    );
    eprintln!("done after {:?}", t0.elapsed());
    drop(conn);
}
