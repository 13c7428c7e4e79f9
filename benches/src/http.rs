//! HTTP pieces of the function URL scenario: a minimal blocking HTTP/1.1 client (one
//! keep-alive connection, GET only, Content-Length bodies) and the baseline, a plain
//! hyper server that answers every request with the same recorded bytes.

use http_body_util::Full;
use hyper::body::Bytes;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

/// HTTP client and baseline failures.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The connection failed
    #[error("HTTP at {addr}: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    /// The answer was not HTTP
    #[error("HTTP at {0}: not an HTTP answer: {1:?}")]
    Answer(String, String),
}

/// One keep-alive connection.
pub struct HttpClient {
    addr: String,
    stream: BufReader<TcpStream>,
}

impl HttpClient {
    /// Connects (TCP_NODELAY, as browsers and curl do).
    pub fn connect(addr: &str) -> Result<Self, HttpError> {
        let io = |source| HttpError::Io {
            addr: addr.to_string(),
            source,
        };
        let s = TcpStream::connect(addr).map_err(io)?;
        s.set_nodelay(true).map_err(io)?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .map_err(io)?;
        Ok(Self {
            addr: addr.to_string(),
            stream: BufReader::new(s),
        })
    }

    /// GET `path`; returns the status and the body.
    pub fn get(&mut self, path: &str) -> Result<(u16, Vec<u8>), HttpError> {
        let addr = self.addr.clone();
        let io = |source| HttpError::Io {
            addr: addr.clone(),
            source,
        };
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: flint-bench\r\nAccept: */*\r\n\r\n"
        );
        self.stream
            .get_mut()
            .write_all(head.as_bytes())
            .map_err(io)?;
        let mut line = String::new();
        self.stream.read_line(&mut line).map_err(io)?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| HttpError::Answer(addr.clone(), line.clone()))?;
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            self.stream.read_line(&mut h).map_err(io)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body).map_err(io)?;
        Ok((status, body))
    }
}

/// The baseline server: answers every request with `body` as application/json.
pub struct Baseline {
    pub addr: String,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Baseline {
    /// Starts on a free loopback port, in the current runtime.
    pub async fn start(body: Vec<u8>) -> Result<Self, HttpError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|source| HttpError::Io {
                addr: "127.0.0.1:0".into(),
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| HttpError::Io {
                addr: "127.0.0.1:0".into(),
                source,
            })?
            .to_string();
        let body = Bytes::from(body);
        let (stop, mut rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    r = listener.accept() => {
                        let Ok((s, _)) = r else { continue };
                        let _ = s.set_nodelay(true);
                        let body = body.clone();
                        tokio::spawn(async move {
                            let svc = hyper::service::service_fn(move |_req| {
                                let body = body.clone();
                                async move {
                                    hyper::Response::builder()
                                        .header("content-type", "application/json")
                                        .body(Full::new(body))
                                }
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                                .await;
                        });
                    }
                    _ = rx.changed() => return,
                }
            }
        });
        Ok(Self { addr, stop })
    }
}

impl Drop for Baseline {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Runs `clients` threads, each sending `per_client` GETs of `path` to `addr` on
/// its own connection; returns each request's latency (ms) and the wall time (s).
pub fn load(
    addr: &str,
    path: &str,
    clients: usize,
    per_client: usize,
) -> Result<(Vec<f64>, f64), HttpError> {
    let path: Arc<str> = path.into();
    let t0 = std::time::Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let (addr, path) = (addr.to_string(), path.clone());
            std::thread::spawn(move || -> Result<Vec<f64>, HttpError> {
                let mut c = HttpClient::connect(&addr)?;
                let mut out = Vec::with_capacity(per_client);
                for _ in 0..per_client {
                    let t = std::time::Instant::now();
                    let (status, _) = c.get(&path)?;
                    if status != 200 {
                        return Err(HttpError::Answer(addr.clone(), format!("status {status}")));
                    }
                    out.push(t.elapsed().as_secs_f64() * 1e3);
                }
                Ok(out)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(clients * per_client);
    for h in handles {
        let r = h
            .join()
            .map_err(|_| HttpError::Answer(addr.to_string(), "client thread panicked".into()))?;
        all.extend(r?);
    }
    Ok((all, t0.elapsed().as_secs_f64()))
}
