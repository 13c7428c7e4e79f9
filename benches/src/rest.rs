//! A minimal Lambda REST client for the bench: one keep-alive HTTP/1.1 connection,
//! requests signed with SigV4 (the agent's own `sigv4` module computes the signature
//! over the same canonical request any SDK builds), Invoke only.

use flint_agent::lambda_api::sigv4;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

/// REST client failures.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    /// The connection failed
    #[error("REST API at {addr}: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    /// The answer was not HTTP or not a success
    #[error("REST API answered {0}")]
    Answer(String),
}

/// Where the REST API is and the key to sign with.
#[derive(Debug, Clone)]
pub struct RestEndpoint {
    pub addr: String,
    pub region: String,
    pub key_id: String,
    pub secret: String,
}

/// One connection to the REST API.
pub struct RestClient {
    ep: RestEndpoint,
    stream: BufReader<TcpStream>,
}

fn amz_date_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    flint_agent::timefmt::rfc3339_secs(now).replace(['-', ':'], "")
}

impl RestClient {
    /// Connects (TCP_NODELAY, as SDKs do).
    pub fn connect(ep: &RestEndpoint) -> Result<Self, RestError> {
        let io = |source| RestError::Io {
            addr: ep.addr.clone(),
            source,
        };
        let s = TcpStream::connect(&ep.addr).map_err(io)?;
        s.set_nodelay(true).map_err(io)?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .map_err(io)?;
        Ok(Self {
            ep: ep.clone(),
            stream: BufReader::new(s),
        })
    }

    /// Invokes `function` synchronously; returns the status and the payload.
    pub fn invoke(&mut self, function: &str, payload: &[u8]) -> Result<(u16, Vec<u8>), RestError> {
        let path = format!("/2015-03-31/functions/{function}/invocations");
        let date = amz_date_now();
        let headers = vec![
            ("host".to_string(), self.ep.addr.clone()),
            ("x-amz-date".to_string(), date.clone()),
        ];
        let auth = sigv4::Authorization {
            access_key: self.ep.key_id.clone(),
            date: date[..8].to_string(),
            region: self.ep.region.clone(),
            service: "lambda".into(),
            signed_headers: vec!["host".into(), "x-amz-date".into()],
            signature: String::new(),
        };
        let req = sigv4::Request {
            method: "POST",
            path: &path,
            query: "",
            headers: &headers,
            payload_sha256: sigv4::sha256_hex(payload),
        };
        let sig = sigv4::sign(&req, &auth, &date, &self.ep.secret);
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nX-Amz-Date: {date}\r\nAuthorization: {} Credential={}/{}, SignedHeaders=host;x-amz-date, Signature={sig}\r\nContent-Length: {}\r\n\r\n",
            self.ep.addr,
            sigv4::ALGORITHM,
            auth.access_key,
            auth.scope(),
            payload.len()
        );
        let io = |source| RestError::Io {
            addr: self.ep.addr.clone(),
            source,
        };
        let s = self.stream.get_mut();
        s.write_all(head.as_bytes()).map_err(io)?;
        s.write_all(payload).map_err(io)?;
        let mut line = String::new();
        self.stream.read_line(&mut line).map_err(io)?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| RestError::Answer(format!("not HTTP: {line:?}")))?;
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
        if status != 200 {
            return Err(RestError::Answer(format!(
                "{status}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        Ok((status, body))
    }
}
