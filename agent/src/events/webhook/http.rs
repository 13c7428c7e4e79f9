//! The webhook client: one HTTP/1.1 POST per delivery over a fresh connection (hyper),
//! TLS by rustls (ring) for `https://`. Trusted roots: the PEM file of
//! `--destination-ca-file`, else the system bundle (/etc/ssl/certs/ca-certificates.crt)
//! when there is one.

use super::{PostResult, Poster, Posting};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The system's CA bundle (Debian's ca-certificates), used without a CA file.
pub const SYSTEM_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// How long one POST may take, connection and TLS included.
pub const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// The client cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The CA file is unreadable or holds no certificate
    #[error("--destination-ca-file {path}: {reason}: give a PEM file of CA certificates")]
    CaFile { path: PathBuf, reason: String },
}

/// POSTs records to webhooks.
pub struct HttpPoster {
    tls: TlsConnector,
    timeout: Duration,
}

fn roots(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, WebhookError> {
    let mut store = rustls::RootCertStore::empty();
    let (path, required) = match ca_file {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from(SYSTEM_CA_FILE), false),
    };
    if !required && !path.exists() {
        tracing::info!(
            "no system CA bundle ({SYSTEM_CA_FILE}) and no --destination-ca-file: https:// webhooks will fail verification"
        );
        return Ok(store);
    }
    let err = |reason: String| WebhookError::CaFile {
        path: path.clone(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| err(e.to_string()))?;
    let (added, _ignored) = store.add_parsable_certificates(certs);
    if added == 0 && required {
        return Err(err("no usable CERTIFICATE block".into()));
    }
    Ok(store)
}

impl HttpPoster {
    /// A client trusting `ca_file` (PEM), or the system bundle when None.
    pub fn new(ca_file: Option<&Path>) -> Result<Self, WebhookError> {
        Self::with_timeout(ca_file, POST_TIMEOUT)
    }

    /// [`HttpPoster::new`] with another timeout per POST.
    pub fn with_timeout(ca_file: Option<&Path>, timeout: Duration) -> Result<Self, WebhookError> {
        // ring, as for the REST API's TLS (no cmake in the build).
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| WebhookError::CaFile {
                path: ca_file.map(Path::to_path_buf).unwrap_or_default(),
                reason: e.to_string(),
            })?
            .with_root_certificates(roots(ca_file)?)
            .with_no_client_auth();
        Ok(Self {
            tls: TlsConnector::from(Arc::new(config)),
            timeout,
        })
    }

    async fn post_once(&self, url: &str, body: &[u8]) -> PostResult {
        let uri: hyper::Uri = url.parse().map_err(|e| format!("bad URL: {e}"))?;
        let https = uri.scheme_str() == Some("https");
        let auth = uri.authority().ok_or("URL has no host")?.clone();
        let host = auth.host().trim_start_matches('[').trim_end_matches(']');
        let port = auth.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("connect to {host}:{port}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        if https {
            let name = ServerName::try_from(host.to_string())
                .map_err(|e| format!("server name {host}: {e}"))?;
            let tls = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS with {host}:{port}: {e}"))?;
            send(tls, auth.as_str(), &path, body).await
        } else {
            send(tcp, auth.as_str(), &path, body).await
        }
    }
}

async fn send<S>(io: S, host: &str, path: &str, body: &[u8]) -> PostResult
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = hyper::Request::post(path)
        .header(hyper::header::HOST, host)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::USER_AGENT, "flintd-destination/1")
        .body(Full::new(Bytes::copy_from_slice(body)))
        .map_err(|e| format!("request: {e}"))?;
    let resp = tx
        .send_request(req)
        .await
        .map_err(|e| format!("POST: {e}"))?;
    let status = resp.status().as_u16();
    // Read (and drop) the body so the server sees a complete exchange.
    let _ = resp.into_body().collect().await;
    driver.abort();
    Ok(status)
}

impl Poster for HttpPoster {
    fn post<'a>(&'a self, url: &'a str, body: &'a [u8]) -> Posting<'a> {
        Box::pin(async move {
            match tokio::time::timeout(self.timeout, self.post_once(url, body)).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {:?}", self.timeout)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-shot HTTP server answering `status`; returns its URL and what it read.
    async fn server(status: u16) -> (String, tokio::task::JoinHandle<String>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook?k=v", l.local_addr().unwrap());
        let h = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = s.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got);
                if let Some(i) = text.find("\r\n\r\n") {
                    let len: usize = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if got.len() >= i + 4 + len {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            s.write_all(format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n").as_bytes())
                .await
                .unwrap();
            String::from_utf8_lossy(&got).into_owned()
        });
        (url, h)
    }

    #[tokio::test]
    async fn posts_json_and_reports_the_status() {
        let p = HttpPoster::new(None).unwrap();
        let (url, h) = server(204).await;
        assert_eq!(p.post(&url, br#"{"a":1}"#).await, Ok(204));
        let req = h.await.unwrap();
        assert!(req.starts_with("POST /hook?k=v HTTP/1.1\r\n"), "{req}");
        assert!(
            req.to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{req}"
        );
        assert!(req.ends_with(r#"{"a":1}"#), "{req}");
        let (url, _h) = server(503).await;
        assert_eq!(p.post(&url, b"{}").await, Ok(503));
    }

    #[tokio::test]
    async fn refused_and_silent_servers_are_errors_not_hangs() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let p = HttpPoster::with_timeout(None, Duration::from_millis(300)).unwrap();
        let e = p
            .post(&format!("http://127.0.0.1:{port}/"), b"{}")
            .await
            .unwrap_err();
        assert!(e.contains("connect to 127.0.0.1"), "{e}");
        // Accepts but never answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", silent.local_addr().unwrap());
        let e = p.post(&url, b"{}").await.unwrap_err();
        assert!(e.contains("no answer within"), "{e}");
        // https to a plain server fails in TLS, not silently.
        let (url, _h) = server(200).await;
        let e = p
            .post(&url.replace("http://", "https://"), b"{}")
            .await
            .unwrap_err();
        assert!(e.contains("TLS") || e.contains("no answer"), "{e}");
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused_with_the_flag() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("ca.pem");
        std::fs::write(&f, "nothing here\n").unwrap();
        let e = HttpPoster::new(Some(&f)).err().unwrap().to_string();
        assert!(e.contains("--destination-ca-file"), "{e}");
    }
}
