//! The floor for invoke overhead: a raw tonic unary echo over a Unix socket. It serves
//! the same `flint.v1.Invocations/Invoke` method with the same messages as flintd and
//! returns the payload at once, in a separate process (`flint-bench --echo-server SOCK`)
//! so the client pays the same cross-process cost it pays to flintd.

use flint_proto::v1::invocations_server::{Invocations, InvocationsServer};
use flint_proto::v1::{InvokeRequest, InvokeResponse};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::{Request, Response, Status};

/// Largest message either side takes (the 1 MB payload and then some).
const MESSAGE_MAX: usize = 16 * 1024 * 1024;

/// Errors of the echo server.
#[derive(Debug, thiserror::Error)]
pub enum EchoError {
    /// Socket or process I/O failed
    #[error("echo server {0}: {1}")]
    Io(&'static str, #[source] std::io::Error),
    /// The server failed
    #[error("echo server: {0}")]
    Serve(#[from] tonic::transport::Error),
    /// The server did not come up
    #[error("echo server did not answer on {0} within 10 s")]
    NoAnswer(PathBuf),
}

struct Echo;

#[tonic::async_trait]
impl Invocations for Echo {
    async fn invoke(
        &self,
        req: Request<InvokeRequest>,
    ) -> Result<Response<InvokeResponse>, Status> {
        let r = req.into_inner();
        Ok(Response::new(InvokeResponse {
            status_code: 200,
            payload: r.payload,
            ..Default::default()
        }))
    }
}

/// Serves the echo on `socket` until the process is killed.
pub async fn serve(socket: &Path) -> Result<(), EchoError> {
    let _ = std::fs::remove_file(socket);
    let uds = tokio::net::UnixListener::bind(socket).map_err(|e| EchoError::Io("bind", e))?;
    let svc = InvocationsServer::new(Echo)
        .max_decoding_message_size(MESSAGE_MAX)
        .max_encoding_message_size(MESSAGE_MAX);
    tonic::transport::Server::builder()
        .add_service(svc)
        .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(uds))
        .await?;
    Ok(())
}

/// An echo server process, killed on drop.
pub struct EchoServer {
    child: Child,
    pub socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl EchoServer {
    /// Starts `flint-bench --echo-server` and waits until it answers.
    pub async fn start() -> Result<EchoServer, EchoError> {
        let dir = tempfile::tempdir().map_err(|e| EchoError::Io("tempdir", e))?;
        let socket = dir.path().join("echo.sock");
        let exe = std::env::current_exe().map_err(|e| EchoError::Io("current_exe", e))?;
        let child = Command::new(exe)
            .arg("--echo-server")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| EchoError::Io("spawn", e))?;
        let server = EchoServer {
            child,
            socket,
            _dir: dir,
        };
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if server.socket.exists() && server.client().await.is_ok() {
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(EchoError::NoAnswer(server.socket.clone()))
    }

    /// A client for the echo (the same client type flintd's callers use).
    pub async fn client(
        &self,
    ) -> Result<flint_agent::client::Client, flint_agent::client::ClientError> {
        let mut c = flint_agent::client::connect(&self.socket.display().to_string()).await?;
        c.invocations = c
            .invocations
            .max_decoding_message_size(MESSAGE_MAX)
            .max_encoding_message_size(MESSAGE_MAX);
        Ok(c)
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
