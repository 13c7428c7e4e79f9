//! Webhook destinations through a real flintd and a real HTTP server started by the
//! test: a webhook that is down at first gets the record once it is up (and the
//! pending delivery survives kill -9 of flintd meanwhile); one that stays down sends
//! the event to the dead-letter queue, from where a redrive delivers it; the
//! dead-letter target (a function) gets the record of an event that exhausted its
//! retries; an https webhook is verified against `--destination-ca-file` (and refused
//! under a name its certificate does not carry). Every wait has a deadline and prints
//! the queue and the logs; flintd's own log goes to stderr.

mod events_support;

use events_support::*;
use flint_integration::*;
use flint_proto::v1::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bodies a hook server received, in order.
type Got = Arc<Mutex<Vec<serde_json::Value>>>;

/// Reads one POST from `s`, keeps its JSON body in `keep`, answers 200.
async fn serve<S>(mut s: S, keep: Got)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let body = loop {
        let n = match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        assert!(head.starts_with("post /hook?src=flint "), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        if buf.len() >= end + 4 + len {
            break buf[end + 4..end + 4 + len].to_vec();
        }
    };
    keep.lock()
        .unwrap()
        .push(serde_json::from_slice(&body).expect("a JSON record"));
    let _ = s
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .await;
    let _ = s.shutdown().await;
}

/// An HTTP server on `port` that answers 200 to every POST and keeps its JSON body.
async fn hook_server(port: u16) -> (Got, tokio::task::JoinHandle<()>) {
    let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind the hook port");
    let got: Got = Arc::default();
    let keep = got.clone();
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(serve(s, keep.clone()));
        }
    });
    (got, task)
}

/// The same over TLS with `cert` and `key` (PEM).
async fn https_hook_server(
    port: u16,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> (Got, tokio::task::JoinHandle<()>) {
    let tls = flint_agent::lambda_api::tls::acceptor(cert, key).expect("TLS acceptor");
    let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind the hook port");
    let got: Got = Arc::default();
    let keep = got.clone();
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let (tls, keep) = (tls.clone(), keep.clone());
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake.
                if let Ok(s) = tls.accept(s).await {
                    serve(s, keep).await;
                }
            });
        }
    });
    (got, task)
}

/// Waits until `cond` holds, else panics with `what` and the evidence.
async fn until<F, Fut>(agent: &TestAgent, within: Duration, what: &str, cond: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t0 = Instant::now();
    while !cond().await {
        if t0.elapsed() > within {
            panic!(
                "stalled after {within:?}: {what}\n{}",
                evidence(agent, &["hooked", "failing", "sink"]).await
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn series(dest: &str, result: &str) -> String {
    format!(r#"flint_event_destination_deliveries_total{{destination="{dest}",result="{result}"}}"#)
}

#[tokio::test]
async fn a_webhook_that_is_down_at_first_gets_the_record_once_it_is_up() {
    let metrics = free_port();
    let listen = format!("127.0.0.1:{metrics}");
    let mut agent = start_with(&["--metrics-listen", &listen]).await;
    let mut c = agent.client().await;
    c.functions
        .create_function(python_function(
            "hooked",
            "def handler(e, c):\n    return {'ok': e['k']}\n",
        ))
        .await
        .unwrap();
    // A URL flintd cannot POST to is refused when configured, saying what to fix.
    let err = put_config(
        &mut c,
        EventInvokeConfig {
            function_name: "hooked".into(),
            on_success: "http://user:pw@127.0.0.1/x".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
    assert!(err.message().contains("user info"), "{}", err.message());
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hook?src=flint");
    let stored = put_config(
        &mut c,
        EventInvokeConfig {
            function_name: "hooked".into(),
            on_success: url.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(stored.on_success, url);

    let id = event(&mut c, "hooked", r#"{"k": "v"}"#).await;
    // Nothing listens: the POST fails and is retried.
    until(&agent, Duration::from_secs(20), "a failed POST", || async {
        value(&scrape(metrics).await, &series("on_success", "retry")) >= 1.0
    })
    .await;
    let q = list(&agent, "hooked", &[]).await;
    assert_eq!(q.pending_deliveries, 1, "{q:?}");
    assert_eq!((q.depth, q.dead), (0, 0), "the event itself is done: {q:?}");
    // The pending delivery is on disk: kill -9 of flintd does not lose it.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent.pid() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    drop(c);
    agent.restart_after_kill().await;
    assert_eq!(list(&agent, "hooked", &[]).await.pending_deliveries, 1);
    let (got, server) = hook_server(port).await;
    until(
        &agent,
        Duration::from_secs(20),
        "the record POSTed",
        || async { !got.lock().unwrap().is_empty() },
    )
    .await;
    let r = got.lock().unwrap()[0].clone();
    assert_eq!(r["version"], "1.0");
    assert_eq!(r["requestContext"]["requestId"], id.as_str());
    assert_eq!(r["requestContext"]["condition"], "Success");
    assert_eq!(r["requestContext"]["approximateInvokeCount"], 1);
    assert_eq!(r["requestPayload"], serde_json::json!({"k": "v"}));
    assert_eq!(r["responsePayload"], serde_json::json!({"ok": "v"}));
    // Once: nothing more arrives, nothing is pending or dead.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(got.lock().unwrap().len(), 1);
    let q = list(&agent, "hooked", &[]).await;
    assert_eq!((q.pending_deliveries, q.depth, q.dead), (0, 0, 0), "{q:?}");
    let m = scrape(metrics).await;
    assert_eq!(value(&m, &series("on_success", "ok")), 1.0);
    assert_eq!(value(&m, &series("on_success", "error")), 0.0);
    server.abort();
}

#[tokio::test]
async fn a_webhook_that_stays_down_sends_the_event_to_the_dead_letter_queue() {
    let metrics = free_port();
    let listen = format!("127.0.0.1:{metrics}");
    let agent = start_with(&["--metrics-listen", &listen]).await;
    let mut c = agent.client().await;
    for (name, code) in [
        ("hooked", "def handler(e, c):\n    return {'ok': e['k']}\n"),
        (
            "failing",
            "def handler(e, c):\n    raise Exception('always')\n",
        ),
        ("sink", SINK),
    ] {
        c.functions
            .create_function(python_function(name, code))
            .await
            .unwrap();
    }
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hook?src=flint");
    put_config(
        &mut c,
        EventInvokeConfig {
            function_name: "hooked".into(),
            on_success: url.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // A failing function: its on-failure webhook is down too; its dead-letter target
    // is a function.
    let stored = put_config(
        &mut c,
        EventInvokeConfig {
            function_name: "failing".into(),
            maximum_retry_attempts: Some(0),
            on_failure: url.clone(),
            dead_letter: "sink".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(stored.dead_letter, "sink");
    let ok_id = event(&mut c, "hooked", r#"{"k": 1}"#).await;
    let bad_id = event(&mut c, "failing", r#"{"k": 2}"#).await;

    // The dead-letter target gets the failing event's record.
    let log = wait_log(
        &agent,
        "sink",
        Duration::from_secs(30),
        "dead-letter record",
        |l| !records(l).is_empty(),
    )
    .await;
    let r = &records(&log)[0];
    assert_eq!(r["requestContext"]["requestId"], bad_id.as_str());
    assert_eq!(r["requestContext"]["condition"], "RetriesExhausted");
    assert_eq!(r["responseContext"]["functionError"], "Unhandled");

    // Four POSTs to each webhook (base 200 ms: 0.2 + 0.4 + 0.6 s apart), then both
    // events are in the dead-letter queue, never lost.
    until(
        &agent,
        Duration::from_secs(30),
        "both deliveries given up",
        || async {
            let m = scrape(metrics).await;
            value(&m, &series("on_success", "error")) >= 1.0
                && value(&m, &series("on_failure", "error")) >= 1.0
        },
    )
    .await;
    let m = scrape(metrics).await;
    assert_eq!(value(&m, &series("on_success", "retry")), 3.0);
    assert_eq!(value(&m, &series("on_failure", "retry")), 3.0);
    assert_eq!(value(&m, &series("dead_letter", "ok")), 1.0);
    let dead = list(&agent, "hooked", &[EventState::Dead]).await;
    assert_eq!(dead.events.len(), 1, "{dead:?}");
    assert_eq!(dead.events[0].request_id, ok_id);
    assert!(
        dead.events[0].last_error.contains("on_success webhook")
            && dead.events[0].last_error.contains("failed 4 times"),
        "{dead:?}"
    );
    assert_eq!(dead.pending_deliveries, 0);
    let dead = list(&agent, "failing", &[EventState::Dead]).await;
    assert_eq!(dead.events.len(), 1, "{dead:?}");
    assert!(
        dead.events[0]
            .last_error
            .starts_with("Unhandled; on_failure webhook"),
        "the event's own error, then the webhook's: {dead:?}"
    );

    // Redriven once the webhook is up, the event runs again and its record arrives.
    let (got, server) = hook_server(port).await;
    let n = c
        .events()
        .redrive_events(RedriveEventsRequest {
            function_name: "hooked".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .redriven;
    assert_eq!(n, 1);
    until(
        &agent,
        Duration::from_secs(20),
        "the redriven record",
        || async { !got.lock().unwrap().is_empty() },
    )
    .await;
    let r = got.lock().unwrap()[0].clone();
    assert_eq!(r["requestContext"]["requestId"], ok_id.as_str());
    assert_eq!(r["requestContext"]["condition"], "Success");
    assert_eq!(
        list(&agent, "hooked", &[EventState::Dead]).await.dead,
        1,
        "the failing function's event is still dead"
    );
    server.abort();
}

#[tokio::test]
async fn an_https_webhook_is_verified_against_the_destination_ca_file() {
    // A CA and a server certificate it signed, for 127.0.0.1 only.
    let dir = tempfile::tempdir().unwrap();
    let p = |f: &str| dir.path().join(f);
    std::fs::write(
        p("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=flint-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
        "-out",
        "cert.pem",
    ]);
    let (cert, key) = (p("cert.pem"), p("key.pem"));
    let metrics = free_port();
    let listen = format!("127.0.0.1:{metrics}");
    let ca = p("ca.pem").display().to_string();
    let agent = start_with(&["--metrics-listen", &listen, "--destination-ca-file", &ca]).await;
    let mut c = agent.client().await;
    for name in ["hooked", "failing"] {
        let code = if name == "hooked" {
            "def handler(e, c):\n    return {'ok': e['k']}\n"
        } else {
            "def handler(e, c):\n    raise Exception('always')\n"
        };
        c.functions
            .create_function(python_function(name, code))
            .await
            .unwrap();
    }
    let port = free_port();
    let (got, server) = https_hook_server(port, &cert, &key).await;
    put_config(
        &mut c,
        EventInvokeConfig {
            function_name: "hooked".into(),
            on_success: format!("https://127.0.0.1:{port}/hook?src=flint"),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // The same server by a name its certificate does not carry: refused by rustls.
    put_config(
        &mut c,
        EventInvokeConfig {
            function_name: "failing".into(),
            maximum_retry_attempts: Some(0),
            on_failure: format!("https://localhost:{port}/hook?src=flint"),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let id = event(&mut c, "hooked", r#"{"k": "tls"}"#).await;
    let bad = event(&mut c, "failing", "{}").await;
    until(
        &agent,
        Duration::from_secs(20),
        "the record over TLS",
        || async { !got.lock().unwrap().is_empty() },
    )
    .await;
    let r = got.lock().unwrap()[0].clone();
    assert_eq!(r["requestContext"]["requestId"], id.as_str());
    assert_eq!(r["responsePayload"], serde_json::json!({"ok": "tls"}));
    until(
        &agent,
        Duration::from_secs(30),
        "the unverifiable webhook given up",
        || async { value(&scrape(metrics).await, &series("on_failure", "error")) >= 1.0 },
    )
    .await;
    let dead = list(&agent, "failing", &[EventState::Dead]).await;
    assert_eq!(dead.events.len(), 1, "{dead:?}");
    assert_eq!(dead.events[0].request_id, bad);
    assert!(
        dead.events[0].last_error.contains("TLS with localhost"),
        "{dead:?}"
    );
    assert_eq!(
        got.lock().unwrap().len(),
        1,
        "nothing reached the server unverified"
    );
    server.abort();
}
