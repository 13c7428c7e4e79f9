//! The runtime's requests that wait for the host (`GET /invocation/next`, and a
//! pre-started runtime's `GET /flint/v1/function`) are answered by the thread that
//! receives the host's message. Before its connection thread sleeps, it leaves its
//! socket in the state ([`Parked`]); the control loop then writes the answer itself,
//! without blocking (MSG_DONTWAIT), so the runtime wakes one thread hop sooner, and
//! wakes the connection thread afterwards. That thread writes what did not fit
//! ([`Answer::Sent`]) and reads the runtime's next request.

use crate::http::{self, Response};
use flint_proto::init::Invoke;
use nix::sys::socket::{send, MsgFlags};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::Arc;

/// What a parked request waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Awaits {
    /// `GET /invocation/next`
    Invocation,
    /// `GET /flint/v1/function`
    Function,
}

/// A connection whose request waits for the host.
#[derive(Debug)]
pub struct Parked {
    /// Which connection (its socket's descriptor: unique among open ones).
    pub conn: i32,
    /// The connection (its reads stay with the connection thread).
    pub socket: Arc<TcpStream>,
    /// Whether the answer keeps the connection open.
    pub keep_alive: bool,
    /// What it waits for.
    pub awaits: Awaits,
}

/// How far a parked request's answer has come.
#[derive(Debug, Default)]
pub enum Answer {
    /// Not answered (or nothing parked).
    #[default]
    None,
    /// Another thread is writing connection `conn`'s answer now.
    Writing(i32),
    /// Connection `conn`'s answer is written up to `rest`, which its thread writes
    /// (blocking); `ok` is false when the connection failed.
    Sent { conn: i32, rest: Vec<u8>, ok: bool },
}

impl Parked {
    /// Parks the request read from `socket`.
    pub fn new(socket: &Arc<TcpStream>, keep_alive: bool, awaits: Awaits) -> Self {
        Parked {
            conn: socket.as_raw_fd(),
            socket: socket.clone(),
            keep_alive,
            awaits,
        }
    }
}

/// The runtime's answer to `GET /invocation/next`.
pub fn next_response(inv: Invoke) -> Response {
    let mut headers = vec![
        ("Content-Type".to_string(), "application/json".to_string()),
        ("Lambda-Runtime-Aws-Request-Id".into(), inv.request_id),
        (
            "Lambda-Runtime-Deadline-Ms".into(),
            inv.deadline_ms.to_string(),
        ),
        (
            "Lambda-Runtime-Invoked-Function-Arn".into(),
            inv.invoked_function_arn,
        ),
        ("Lambda-Runtime-Trace-Id".into(), inv.trace_id),
    ];
    if !inv.client_context.is_empty() {
        headers.push(("Lambda-Runtime-Client-Context".into(), inv.client_context));
    }
    if !inv.cognito_identity.is_empty() {
        headers.push((
            "Lambda-Runtime-Cognito-Identity".into(),
            inv.cognito_identity,
        ));
    }
    Response {
        status: 200,
        headers,
        body: inv.payload,
    }
}

/// Writes as much of `resp` to `parked`'s socket as it takes without blocking; what is
/// left is the connection thread's to write.
pub fn answer(parked: &Parked, resp: &Response) -> Answer {
    let mut bytes = http::response_bytes(resp, parked.keep_alive);
    let fd = parked.socket.as_raw_fd();
    let mut at = 0;
    while at < bytes.len() {
        match send(
            fd,
            &bytes[at..],
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
        ) {
            Ok(n) => at += n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) => break,
            Err(_) => {
                return Answer::Sent {
                    conn: parked.conn,
                    rest: Vec::new(),
                    ok: false,
                }
            }
        }
    }
    // The unsent tail stays in the one buffer (a payload of up to 6 MB is not copied
    // again).
    bytes.drain(..at);
    Answer::Sent {
        conn: parked.conn,
        rest: bytes,
        ok: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    fn pair() -> (Arc<TcpStream>, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server, _) = l.accept().unwrap();
        (Arc::new(server), client)
    }

    #[test]
    fn a_small_answer_is_written_whole_and_a_large_one_leaves_the_rest() {
        let (server, mut client) = pair();
        let parked = Parked::new(&server, true, Awaits::Function);
        let Answer::Sent { rest, ok, .. } = answer(&parked, &Response::json(200, "{}")) else {
            panic!("not sent");
        };
        assert!(ok && rest.is_empty());
        let mut got = vec![0u8; 256];
        let n = client.read(&mut got).unwrap();
        let text = String::from_utf8_lossy(&got[..n]);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.ends_with("Connection: keep-alive\r\n\r\n{}"), "{text}");
        // Nobody reads: 64 MiB cannot all go into the socket's buffers now.
        let big = Response::json(200, vec![b'x'; 64 << 20]);
        let Answer::Sent { rest, ok, .. } = answer(&parked, &big) else {
            panic!("not sent");
        };
        assert!(
            ok && !rest.is_empty() && rest.len() < 64 << 20,
            "{}",
            rest.len()
        );
        assert!(rest.ends_with(b"xxx"));
    }

    #[test]
    fn a_closed_connection_is_not_ok() {
        let (server, client) = pair();
        drop(client);
        let parked = Parked::new(&server, false, Awaits::Invocation);
        let resp = Response::json(200, vec![b'y'; 1 << 20]);
        // The peer's reset may need a first write to be seen.
        let first = answer(&parked, &resp);
        let second = answer(&parked, &resp);
        assert!(
            matches!(first, Answer::Sent { ok: false, .. })
                || matches!(second, Answer::Sent { ok: false, .. }),
            "{first:?} {second:?}"
        );
    }
}
