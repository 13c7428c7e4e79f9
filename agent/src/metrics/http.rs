//! A minimal HTTP/1.1 responder for Prometheus scrapes: `GET /metrics` (and `HEAD`)
//! answer the text exposition; anything else gets 404 or 405. One request per
//! connection (`Connection: close`); request heads over 8 KiB or slower than 5 s are
//! refused.

use super::Metrics;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const HEAD_MAX: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(5);
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves scrapes on `listener` until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => { tokio::spawn(handle(s, metrics.clone())); }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = stopped(&mut stop) => return,
        }
    }
}

async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Reads up to the end of the request head.
async fn read_head(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() > HEAD_MAX {
            return None;
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(buf)
}

async fn handle(mut s: TcpStream, metrics: Arc<Metrics>) {
    let head = tokio::time::timeout(READ_TIMEOUT, read_head(&mut s))
        .await
        .ok()
        .flatten();
    let resp = match head {
        Some(h) => respond(&h, &metrics),
        None => response(
            400,
            "Bad Request",
            "text/plain",
            b"bad request\n",
            true,
            &[],
        ),
    };
    let _ = s.write_all(&resp).await;
    let _ = s.shutdown().await;
}

fn response(
    code: u16,
    reason: &str,
    content_type: &str,
    body: &[u8],
    with_body: bool,
    extra: &[(&str, &str)],
) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in extra {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    let mut r = r.into_bytes();
    if with_body {
        r.extend_from_slice(body);
    }
    r
}

/// The whole response to a request head.
pub fn respond(head: &[u8], metrics: &Metrics) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let line = text.lines().next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return response(
            400,
            "Bad Request",
            "text/plain",
            b"bad request line\n",
            true,
            &[],
        );
    };
    if !version.starts_with("HTTP/1.") {
        return response(
            400,
            "Bad Request",
            "text/plain",
            b"HTTP/1.x only\n",
            true,
            &[],
        );
    }
    let path = target.split('?').next().unwrap_or("");
    if path != "/metrics" {
        return response(
            404,
            "Not Found",
            "text/plain",
            b"not found: the metrics are at /metrics\n",
            method != "HEAD",
            &[],
        );
    }
    match method {
        "GET" | "HEAD" => {
            let body = metrics.render();
            response(
                200,
                "OK",
                CONTENT_TYPE,
                body.as_bytes(),
                method == "GET",
                &[],
            )
        }
        _ => response(
            405,
            "Method Not Allowed",
            "text/plain",
            b"use GET\n",
            true,
            &[("Allow", "GET, HEAD")],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::InvocationObserver;

    fn text(b: Vec<u8>) -> String {
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn get_metrics_returns_the_exposition() {
        let m = Metrics::new();
        m.throttled("f", "rate_limit");
        let r = text(respond(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &m));
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains("Content-Type: text/plain; version=0.0.4"));
        let (head, body) = r.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        assert!(body.contains("flint_throttles_total{function=\"f\",limit=\"rate_limit\"} 1"));
        let h = text(respond(b"HEAD /metrics?x=1 HTTP/1.0\r\n\r\n", &m));
        assert!(
            h.starts_with("HTTP/1.1 200 OK") && h.ends_with("\r\n\r\n"),
            "{h}"
        );
    }

    #[test]
    fn other_paths_methods_and_garbage_are_refused() {
        let m = Metrics::new();
        assert!(text(respond(b"GET / HTTP/1.1\r\n\r\n", &m)).starts_with("HTTP/1.1 404"));
        let p = text(respond(b"POST /metrics HTTP/1.1\r\n\r\n", &m));
        assert!(
            p.starts_with("HTTP/1.1 405") && p.contains("Allow: GET, HEAD"),
            "{p}"
        );
        assert!(text(respond(b"\x00\xff garbage\r\n\r\n", &m)).starts_with("HTTP/1.1 400"));
        assert!(text(respond(b"GET /metrics SPDY/3\r\n\r\n", &m)).starts_with("HTTP/1.1 400"));
    }

    #[tokio::test]
    async fn serves_scrapes_over_tcp_until_stopped() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let m = Metrics::new();
        m.gauge("flint_test_gauge", "A test gauge.", || 42.0);
        let (tx, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(serve(l, m, rx));
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let mut got = String::new();
        s.read_to_string(&mut got).await.unwrap();
        assert!(got.contains("\nflint_test_gauge 42\n"), "{got}");
        tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("server stops when told")
            .unwrap();
    }
}
