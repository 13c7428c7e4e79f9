//! Runtime API state machine tests: a real TCP server, a fake runtime client speaking raw
//! HTTP, and a Unix socketpair standing in for the host stream.

use super::*;
use crate::handoff::{Awaits, Parked};
use crate::host_link::HostLink;
use flint_proto::frame::read_frame;
use flint_proto::init::{guest_message::Msg, GuestMessage, Invoke};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

struct Harness {
    shared: Arc<Shared>,
    /// Frames from init, read continuously like the real host does.
    host: mpsc::Receiver<Msg>,
    addr: SocketAddr,
}

fn harness() -> Harness {
    let (guest_end, mut host) = UnixStream::pair().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        while let Ok(GuestMessage { msg: Some(m) }) = read_frame(&mut host) {
            if tx.send(m).is_err() {
                return;
            }
        }
    });
    let shared = Arc::new(Shared::new(HostLink::new(Box::new(guest_end))));
    shared.mark_configured(Instant::now(), 7);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    spawn(listener, shared.clone()).unwrap();
    Harness {
        shared,
        host: rx,
        addr,
    }
}

impl Harness {
    fn recv(&mut self) -> Msg {
        self.host
            .recv_timeout(Duration::from_secs(10))
            .expect("a frame from init within 10 s")
    }

    fn invoke(&self, id: &str, payload: &[u8]) {
        self.shared.push_invoke(Invoke {
            request_id: id.into(),
            payload: payload.to_vec(),
            deadline_ms: 1_700_000_000_000,
            invoked_function_arn: "arn:aws:lambda:local:0:function:f".into(),
            trace_id: "Root=1-abc".into(),
            client_context: String::new(),
            cognito_identity: "{\"id\":1}".into(),
        });
    }
}

struct Client {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

impl Client {
    fn connect(addr: SocketAddr) -> Self {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Client {
            writer: s.try_clone().unwrap(),
            reader: BufReader::new(s),
        }
    }

    fn send(&mut self, raw: &[u8]) {
        self.writer.write_all(raw).unwrap();
    }

    fn reply(&mut self) -> Reply {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            let mut l = String::new();
            self.reader.read_line(&mut l).unwrap();
            let l = l.trim_end();
            if l.is_empty() {
                break;
            }
            let (n, v) = l.split_once(':').unwrap();
            headers.push((n.to_ascii_lowercase(), v.trim().to_string()));
        }
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map(|(_, v)| v.parse().unwrap())
            .unwrap();
        let mut body = vec![0; len];
        self.reader.read_exact(&mut body).unwrap();
        Reply {
            status,
            headers,
            body,
        }
    }

    fn get_next(&mut self) -> Reply {
        self.send(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n");
        self.reply()
    }

    fn post(&mut self, path: &str, extra: &str, body: &[u8]) -> Reply {
        let head = format!(
            "POST /2018-06-01/runtime/{path} HTTP/1.1\r\nHost: x\r\n{extra}Content-Length: {}\r\n\r\n",
            body.len()
        );
        self.send(head.as_bytes());
        self.send(body);
        self.reply()
    }
}

#[test]
fn next_then_response_round_trips_and_ready_is_sent_once() {
    let mut h = harness();
    let mut c = Client::connect(h.addr);
    let waiter = thread::spawn(move || {
        let r = c.get_next();
        (c, r)
    });
    // The first /next makes init report Ready before any invocation exists.
    match h.recv() {
        Msg::Ready(r) => assert_eq!(r.unpack_ns, 7),
        other => panic!("expected Ready, got {other:?}"),
    }
    h.invoke("req-1", b"{\"k\":1}");
    let (mut c, r) = waiter.join().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"{\"k\":1}");
    assert_eq!(r.header("Lambda-Runtime-Aws-Request-Id"), Some("req-1"));
    assert_eq!(
        r.header("Lambda-Runtime-Deadline-Ms"),
        Some("1700000000000")
    );
    assert_eq!(
        r.header("Lambda-Runtime-Invoked-Function-Arn"),
        Some("arn:aws:lambda:local:0:function:f")
    );
    assert_eq!(r.header("Lambda-Runtime-Trace-Id"), Some("Root=1-abc"));
    assert_eq!(
        r.header("Lambda-Runtime-Cognito-Identity"),
        Some("{\"id\":1}")
    );
    assert_eq!(r.header("Lambda-Runtime-Client-Context"), None);

    let r = c.post("invocation/req-1/response", "", b"\"done\"");
    assert_eq!(r.status, 202);
    assert_eq!(r.json()["status"], "OK");
    match h.recv() {
        Msg::Response(resp) => {
            assert_eq!(resp.request_id, "req-1");
            assert_eq!(resp.payload, b"\"done\"");
        }
        other => panic!("expected Response, got {other:?}"),
    }

    // Second invocation, queued before /next, on the same keep-alive connection.
    h.invoke("req-2", b"2");
    let r = c.get_next();
    assert_eq!(r.header("Lambda-Runtime-Aws-Request-Id"), Some("req-2"));
    let r = c.post("invocation/req-2/response", "", b"ok2");
    assert_eq!(r.status, 202);
    match h.recv() {
        Msg::Response(resp) => assert_eq!(resp.request_id, "req-2"),
        other => panic!("expected Response (no second Ready), got {other:?}"),
    }
}

#[test]
fn stale_or_unknown_request_id_is_rejected() {
    let mut h = harness();
    let mut c = Client::connect(h.addr);
    h.invoke("real", b"x");
    assert_eq!(c.get_next().status, 200);
    assert!(matches!(h.recv(), Msg::Ready(_)));
    let r = c.post("invocation/other/response", "", b"nope");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["errorType"], "InvalidRequestID");
    // Answer the real one, then answering it again is stale.
    assert_eq!(c.post("invocation/real/response", "", b"a").status, 202);
    let r = c.post("invocation/real/response", "", b"b");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["errorType"], "InvalidRequestID");
    // Only the one valid response reached the host.
    match h.recv() {
        Msg::Response(resp) => assert_eq!(resp.payload, b"a"),
        other => panic!("expected Response, got {other:?}"),
    }
    h.invoke("probe", b"");
    c.get_next();
    c.post("invocation/probe/error", "", b"{}");
    match h.recv() {
        Msg::Error(e) => assert_eq!(e.request_id, "probe"),
        other => panic!("stale posts must not reach the host; got {other:?}"),
    }
}

#[test]
fn error_type_comes_from_header_then_body_then_default() {
    let mut h = harness();
    let mut c = Client::connect(h.addr);
    let cases = [
        (
            "Lambda-Runtime-Function-Error-Type: Custom.Header\r\n",
            &br#"{"errorType":"Body"}"#[..],
            "Custom.Header",
        ),
        (
            "",
            &br#"{"errorType":"FromBody","errorMessage":"m"}"#[..],
            "FromBody",
        ),
        ("", &b"not json"[..], "Unhandled"),
    ];
    for (i, (hdr, body, want)) in cases.iter().enumerate() {
        let id = format!("e{i}");
        h.invoke(&id, b"");
        assert_eq!(c.get_next().status, 200);
        let r = c.post(&format!("invocation/{id}/error"), hdr, body);
        assert_eq!(r.status, 202);
        loop {
            match h.recv() {
                Msg::Ready(_) => continue,
                Msg::Error(e) => {
                    assert_eq!(e.request_id, id);
                    assert_eq!(e.error_type, *want);
                    assert_eq!(e.payload, *body);
                    break;
                }
                other => panic!("expected InvokeError, got {other:?}"),
            }
        }
    }
}

#[test]
fn oversized_response_is_413_and_reported_and_connection_survives() {
    let mut h = harness();
    let mut c = Client::connect(h.addr);
    h.invoke("big", b"");
    assert_eq!(c.get_next().status, 200);
    assert!(matches!(h.recv(), Msg::Ready(_)));
    let body = vec![b'a'; RESPONSE_LIMIT + 1];
    let r = c.post("invocation/big/response", "", &body);
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["errorType"], TOO_LARGE);
    match h.recv() {
        Msg::Error(e) => {
            assert_eq!(e.request_id, "big");
            assert_eq!(e.error_type, TOO_LARGE);
        }
        other => panic!("expected InvokeError, got {other:?}"),
    }
    // Exactly at the limit is accepted, on the same connection.
    h.invoke("edge", b"");
    assert_eq!(c.get_next().status, 200);
    let body = vec![b'b'; RESPONSE_LIMIT];
    assert_eq!(c.post("invocation/edge/response", "", &body).status, 202);
    match h.recv() {
        Msg::Response(resp) => assert_eq!(resp.payload.len(), RESPONSE_LIMIT),
        other => panic!("expected Response, got {other:?}"),
    }
}

#[test]
fn chunked_response_and_expect_continue_are_supported() {
    let mut h = harness();
    let mut c = Client::connect(h.addr);
    h.invoke("ch", b"");
    assert_eq!(c.get_next().status, 200);
    c.send(b"POST /2018-06-01/runtime/invocation/ch/response HTTP/1.1\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n");
    let mut line = String::new();
    c.reader.read_line(&mut line).unwrap();
    assert_eq!(line, "HTTP/1.1 100 Continue\r\n");
    line.clear();
    c.reader.read_line(&mut line).unwrap();
    assert_eq!(line, "\r\n");
    c.send(b"4\r\nhell\r\n1\r\no\r\n0\r\n\r\n");
    assert_eq!(c.reply().status, 202);
    assert!(matches!(h.recv(), Msg::Ready(_)));
    match h.recv() {
        Msg::Response(resp) => assert_eq!(resp.payload, b"hello"),
        other => panic!("expected Response, got {other:?}"),
    }
}

#[test]
fn init_error_is_forwarded_once() {
    let mut h = harness();
    let mut c = Client::connect(h.addr);
    let doc = br#"{"errorType":"Runtime.ImportModuleError","errorMessage":"no module"}"#;
    assert_eq!(c.post("init/error", "", doc).status, 202);
    assert_eq!(c.post("init/error", "", b"{}").status, 202);
    match h.recv() {
        Msg::InitError(e) => {
            assert_eq!(e.error_type, "Runtime.ImportModuleError");
            assert_eq!(e.payload, doc);
        }
        other => panic!("expected InitError, got {other:?}"),
    }
    // The second one was dropped: the next frame is the Ready from /next.
    h.invoke("x", b"");
    c.get_next();
    assert!(matches!(h.recv(), Msg::Ready(_)));
}

#[test]
fn unknown_routes_are_404_and_malformed_requests_400_then_closed() {
    let h = harness();
    let mut c = Client::connect(h.addr);
    let r = c.post("invocation/next", "", b"");
    assert_eq!(r.status, 404);
    c.send(b"GET /2018-06-01/runtime/whatever HTTP/1.1\r\n\r\n");
    let r = c.reply();
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["errorType"], "NotFound");
    c.send(b"BLAH\r\n\r\n");
    let r = c.reply();
    assert_eq!(r.status, 400);
    assert_eq!(r.header("connection"), Some("close"));
    let mut rest = Vec::new();
    assert_eq!(
        c.reader.read_to_end(&mut rest).unwrap(),
        0,
        "closed after 400"
    );
}

#[test]
fn next_without_answering_fails_the_previous_invocation() {
    let mut h = harness();
    let mut c = Client::connect(h.addr);
    h.invoke("a", b"");
    h.invoke("b", b"");
    assert_eq!(
        c.get_next().header("Lambda-Runtime-Aws-Request-Id"),
        Some("a")
    );
    assert_eq!(
        c.get_next().header("Lambda-Runtime-Aws-Request-Id"),
        Some("b")
    );
    assert!(matches!(h.recv(), Msg::Ready(_)));
    match h.recv() {
        Msg::Error(e) => {
            assert_eq!(e.request_id, "a");
            assert_eq!(e.error_type, crate::state::NO_RESPONSE);
        }
        other => panic!("expected InvokeError, got {other:?}"),
    }
    assert_eq!(c.post("invocation/a/response", "", b"late").status, 400);
}

#[test]
fn runtime_killed_during_init_is_said_in_lambdas_words() {
    let mut h = harness();
    h.shared.lock().runtime_pid = Some(4242);
    h.shared.child_exited(4242, 0, 9);
    assert!(matches!(h.recv(), Msg::RuntimeExit(_)));
    match h.recv() {
        Msg::InitError(e) => {
            assert_eq!(e.error_type, "Runtime.ExitError");
            let doc: serde_json::Value = serde_json::from_slice(&e.payload).unwrap();
            assert_eq!(
                doc["errorMessage"],
                "RequestId: none Error: Runtime exited with error: signal: killed"
            );
        }
        other => panic!("expected InitError, got {other:?}"),
    }
}

/// Waits until a connection thread has parked its request for the control loop.
fn wait_parked(shared: &Shared, awaits: Awaits) {
    let t0 = Instant::now();
    while !shared
        .lock()
        .parked
        .as_ref()
        .is_some_and(|p| p.awaits == awaits)
    {
        assert!(t0.elapsed() < Duration::from_secs(10), "nothing parked");
        thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_parked_next_gets_a_payload_larger_than_the_socket_takes_at_once() {
    let mut h = harness();
    let mut c = Client::connect(h.addr);
    let waiter = thread::spawn(move || {
        let r = c.get_next();
        (c, r)
    });
    assert!(matches!(h.recv(), Msg::Ready(_)));
    wait_parked(&h.shared, Awaits::Invocation);
    // 5 MiB: the control loop writes what the socket takes without blocking and the
    // connection thread the rest, in order.
    let payload: Vec<u8> = (0..5 << 20).map(|i| b'a' + (i % 26) as u8).collect();
    h.invoke("req-big", &payload);
    let (mut c, r) = waiter.join().unwrap();
    assert_eq!(r.header("Lambda-Runtime-Aws-Request-Id"), Some("req-big"));
    assert!(r.body == payload, "the body arrived whole and in order");
    assert!(h.shared.lock().parked.is_none());
    // The connection goes on: the response, then a queued invocation.
    assert_eq!(c.post("invocation/req-big/response", "", b"1").status, 202);
    assert!(matches!(h.recv(), Msg::Response(_)));
    h.invoke("req-after", b"2");
    assert_eq!(
        c.get_next().header("Lambda-Runtime-Aws-Request-Id"),
        Some("req-after")
    );
}

#[test]
fn a_parked_function_request_is_answered_by_the_thread_that_sets_the_environment() {
    let (guest_end, _host) = UnixStream::pair().unwrap();
    let shared = Arc::new(Shared::new(HostLink::new(Box::new(guest_end))));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut runtime = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (conn, _) = listener.accept().unwrap();
    let conn = Arc::new(conn);
    let waiter = {
        let (shared, conn) = (shared.clone(), conn.clone());
        thread::spawn(move || {
            shared.wait_function_env(Some(Parked::new(&conn, true, Awaits::Function)))
        })
    };
    wait_parked(&shared, Awaits::Function);
    shared.set_function_env(br#"{"environment":{"A":"1"}}"#.to_vec());
    // set_function_env has returned: the answer is in the socket already, and the
    // waiting thread was only told so (it writes nothing when nothing is left).
    runtime.set_nonblocking(true).unwrap();
    let mut got = vec![0u8; 512];
    let n = runtime
        .read(&mut got)
        .expect("written before set_function_env returned");
    let text = String::from_utf8_lossy(&got[..n]).into_owned();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.ends_with(r#"{"environment":{"A":"1"}}"#), "{text}");
    match waiter.join().unwrap() {
        Waited::Answered { rest, ok } => assert!(ok && rest.is_empty()),
        other => panic!("expected Answered, got {other:?}"),
    }
    // A later request is not parked-for: the environment is there to take.
    assert!(matches!(shared.wait_function_env(None), Waited::Got(_)));
}

#[test]
fn shutdown_takes_back_a_parked_next() {
    let h = harness();
    let mut c = Client::connect(h.addr);
    let waiter = thread::spawn(move || c.get_next());
    wait_parked(&h.shared, Awaits::Invocation);
    h.shared.begin_shutdown();
    let r = waiter.join().unwrap();
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["errorType"], "Runtime.Shutdown");
    assert!(h.shared.lock().parked.is_none());
}
