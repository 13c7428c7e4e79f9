//! A function instance: one sandbox running flint-init, configured for one function
//! revision, spoken to with the flint.init.v1 protocol. One invocation at a time.

use crate::sandbox::{Sandbox, SandboxBackend, SandboxError, SandboxSpec};
use flint_proto::frame::{tokio_io, FrameError};
use flint_proto::init::{
    guest_message::Msg as G, host_message::Msg as H, Configure, GuestMessage, HostMessage, Invoke,
    Shutdown, PROTOCOL_VERSION,
};
use std::time::{Duration, Instant};
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::mpsc;

/// Why an instance could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The sandbox could not be made
    #[error("could not create a sandbox: {0}")]
    Sandbox(#[from] SandboxError),
    /// flint-init spoke an unexpected protocol
    #[error("flint-init protocol error: {0}")]
    Protocol(String),
    /// The runtime failed during its init phase (a function error, not an agent error)
    #[error("runtime init failed: {error_type}")]
    Init {
        error_type: String,
        payload: Vec<u8>,
        log: Vec<u8>,
    },
    /// Init did not finish in time
    #[error("the runtime did not initialise within {0:?}")]
    Timeout(Duration, Vec<u8>),
}

/// How one invocation ended.
#[derive(Debug)]
pub enum Outcome {
    /// The function returned this payload.
    Response(Vec<u8>),
    /// The function reported an error (error type, error document).
    FunctionError(String, Vec<u8>),
    /// The runtime died (or the sandbox with it) mid-invocation.
    Crashed {
        exit_code: i32,
        signal: i32,
        oom: bool,
    },
    /// The deadline passed; the instance must be destroyed.
    TimedOut,
}

impl Outcome {
    /// True when the instance may serve another invocation.
    pub fn reusable(&self) -> bool {
        matches!(self, Outcome::Response(_) | Outcome::FunctionError(..))
    }
}

enum Event {
    Msg(G),
    Closed(String),
}

/// What `start` needs.
pub struct StartSpec<'a> {
    pub sandbox: SandboxSpec,
    pub configure: Configure,
    pub function: &'a str,
    pub revision: u64,
}

/// Where a cold start's time went, in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StartTimings {
    /// Sandbox creation until Hello.
    pub sandbox_ns: u64,
    /// flint-init's own start until Hello (as it measured).
    pub init_boot_ns: u64,
    /// Unpacking the code.
    pub code_load_ns: u64,
    /// Configure until the runtime's first /next.
    pub runtime_init_ns: u64,
}

/// A started instance.
pub struct Instance {
    sandbox: Box<dyn Sandbox>,
    writer: OwnedWriteHalf,
    events: mpsc::Receiver<Event>,
    pub function: String,
    pub revision: u64,
    pub memory_mb: u32,
    /// Time from sandbox creation to the runtime's first /next.
    pub init_duration: Duration,
    /// Output of the init phase, reported with the first invocation.
    pub init_log: Vec<u8>,
    /// Phase timings of this instance's start.
    pub timings: StartTimings,
    pub last_used: Instant,
    dead: bool,
}

const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

impl Instance {
    /// Creates a sandbox, configures it and waits for the runtime to be ready.
    pub async fn start(
        backend: &dyn SandboxBackend,
        spec: StartSpec<'_>,
        init_timeout: Duration,
    ) -> Result<Instance, StartError> {
        let t0 = Instant::now();
        let mut sandbox = backend.create(&spec.sandbox).await?;
        let stream = match sandbox.take_stream() {
            Some(s) => s,
            None => {
                let _ = sandbox.destroy().await;
                return Err(StartError::Protocol("sandbox gave no stream".into()));
            }
        };
        let (reader, writer) = stream.into_split();
        let (tx, events) = mpsc::channel(256);
        tokio::spawn(read_loop(reader, tx));
        let mut inst = Instance {
            sandbox,
            writer,
            events,
            function: spec.function.to_string(),
            revision: spec.revision,
            memory_mb: spec.configure.memory_mb,
            init_duration: Duration::ZERO,
            init_log: Vec::new(),
            timings: StartTimings::default(),
            last_used: Instant::now(),
            dead: false,
        };
        match inst.handshake(t0, spec.configure, init_timeout).await {
            Ok(()) => {
                inst.init_duration = t0.elapsed();
                Ok(inst)
            }
            Err(e) => {
                inst.destroy().await;
                Err(e)
            }
        }
    }

    async fn handshake(
        &mut self,
        t0: Instant,
        configure: Configure,
        timeout: Duration,
    ) -> Result<(), StartError> {
        match tokio::time::timeout(HELLO_TIMEOUT, self.events.recv()).await {
            Ok(Some(Event::Msg(G::Hello(h)))) if h.protocol_version == PROTOCOL_VERSION => {
                self.timings.sandbox_ns = t0.elapsed().as_nanos() as u64;
                self.timings.init_boot_ns = h.boot_ns;
            }
            Ok(Some(Event::Msg(G::Hello(h)))) => {
                return Err(StartError::Protocol(format!(
                "flint-init speaks protocol {}, the agent {PROTOCOL_VERSION}: rebuild flint-init",
                h.protocol_version
            )))
            }
            Ok(Some(Event::Closed(e))) => {
                return Err(StartError::Protocol(format!(
                    "flint-init closed the stream before Hello: {e}"
                )))
            }
            Ok(Some(Event::Msg(other))) => {
                return Err(StartError::Protocol(format!(
                    "expected Hello, got {other:?}"
                )))
            }
            Ok(None) => return Err(StartError::Protocol("stream closed before Hello".into())),
            Err(_) => {
                return Err(StartError::Protocol(
                    "no Hello from flint-init within 10 s".into(),
                ))
            }
        }
        self.send(H::Configure(configure))
            .await
            .map_err(|e| StartError::Protocol(format!("sending Configure: {e}")))?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let ev = match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(ev) => ev,
                Err(_) => {
                    return Err(StartError::Timeout(
                        timeout,
                        std::mem::take(&mut self.init_log),
                    ))
                }
            };
            match ev {
                Some(Event::Msg(G::Ready(r))) => {
                    self.timings.code_load_ns = r.unpack_ns;
                    self.timings.runtime_init_ns = r.init_ns;
                    return Ok(());
                }
                Some(Event::Msg(G::Log(l))) => self.init_log.extend_from_slice(&l.data),
                Some(Event::Msg(G::InitError(e))) => {
                    return Err(StartError::Init {
                        error_type: e.error_type,
                        payload: e.payload,
                        log: std::mem::take(&mut self.init_log),
                    })
                }
                Some(Event::Msg(G::RuntimeExit(x))) => {
                    // Usually preceded by InitError; if not, make one.
                    let (error_type, msg) = if self.sandbox.oom_killed() {
                        (
                            "Runtime.OutOfMemory",
                            "Runtime exited with error: signal: killed".to_string(),
                        )
                    } else {
                        ("Runtime.ExitError", exit_text(x.exit_code, x.signal))
                    };
                    return Err(StartError::Init {
                        error_type: error_type.into(),
                        payload: error_doc(error_type, &msg),
                        log: std::mem::take(&mut self.init_log),
                    });
                }
                Some(Event::Msg(other)) => {
                    tracing::warn!(function = %self.function, "unexpected message during init: {other:?}");
                }
                Some(Event::Closed(e)) => {
                    return Err(StartError::Protocol(format!(
                        "flint-init closed the stream during init: {e}"
                    )))
                }
                None => return Err(StartError::Protocol("stream closed during init".into())),
            }
        }
    }

    async fn send(&mut self, msg: H) -> Result<(), FrameError> {
        tokio_io::write_frame(&mut self.writer, &HostMessage { msg: Some(msg) }).await
    }

    /// True when the instance can take an invocation.
    pub fn is_alive(&mut self) -> bool {
        if self.dead {
            return false;
        }
        // Drain what arrived while idle: background output, or death.
        loop {
            match self.events.try_recv() {
                Ok(Event::Msg(G::Log(l))) => self.init_log.extend_from_slice(&l.data),
                Ok(Event::Msg(G::RuntimeExit(_))) | Ok(Event::Closed(_)) => {
                    self.dead = true;
                    return false;
                }
                Ok(Event::Msg(_)) => {}
                Err(mpsc::error::TryRecvError::Empty) => return true,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    self.dead = true;
                    return false;
                }
            }
        }
    }

    /// Runs one invocation; `log` receives the function's output.
    pub async fn invoke(
        &mut self,
        invoke: Invoke,
        deadline: Instant,
        log: &mut Vec<u8>,
    ) -> Outcome {
        let request_id = invoke.request_id.clone();
        if let Err(e) = self.send(H::Invoke(invoke)).await {
            tracing::warn!(function = %self.function, request_id, error = %e, "sending Invoke failed");
            self.dead = true;
            return self.crash(-1, 0);
        }
        let deadline = tokio::time::Instant::from_std(deadline);
        loop {
            let ev = match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(ev) => ev,
                Err(_) => {
                    self.dead = true;
                    return Outcome::TimedOut;
                }
            };
            match ev {
                Some(Event::Msg(G::Log(l))) => log.extend_from_slice(&l.data),
                Some(Event::Msg(G::Response(r))) if r.request_id == request_id => {
                    self.last_used = Instant::now();
                    return Outcome::Response(r.payload);
                }
                Some(Event::Msg(G::Error(e))) if e.request_id == request_id => {
                    self.last_used = Instant::now();
                    return Outcome::FunctionError(e.error_type, e.payload);
                }
                Some(Event::Msg(G::RuntimeExit(x))) => {
                    self.dead = true;
                    // Let the last output arrive before reporting.
                    while let Ok(Event::Msg(G::Log(l))) = self.events.try_recv() {
                        log.extend_from_slice(&l.data);
                    }
                    return self.crash(x.exit_code, x.signal);
                }
                Some(Event::Closed(_)) | None => {
                    self.dead = true;
                    return self.crash(-1, 9);
                }
                Some(Event::Msg(other)) => {
                    tracing::debug!(function = %self.function, request_id, "ignoring {other:?}");
                }
            }
        }
    }

    fn crash(&self, exit_code: i32, signal: i32) -> Outcome {
        Outcome::Crashed {
            exit_code,
            signal,
            oom: self.sandbox.oom_killed(),
        }
    }

    /// The sandbox id.
    pub fn sandbox_id(&self) -> &str {
        self.sandbox.id()
    }

    /// Stops the runtime and removes the sandbox.
    pub async fn destroy(mut self) {
        if !self.dead {
            let _ = tokio::time::timeout(
                Duration::from_millis(100),
                self.send(H::Shutdown(Shutdown {})),
            )
            .await;
        }
        if let Err(e) = self.sandbox.destroy().await {
            tracing::warn!(sandbox = %self.sandbox.id(), error = %e, "destroying sandbox");
        }
    }
}

async fn read_loop(mut reader: tokio::net::unix::OwnedReadHalf, tx: mpsc::Sender<Event>) {
    loop {
        match tokio_io::read_frame::<_, GuestMessage>(&mut reader).await {
            Ok(GuestMessage { msg: Some(m) }) => {
                if tx.send(Event::Msg(m)).await.is_err() {
                    return;
                }
            }
            Ok(GuestMessage { msg: None }) => {}
            Err(e) => {
                let _ = tx.send(Event::Closed(e.to_string())).await;
                return;
            }
        }
    }
}

/// Lambda's wording for a runtime that exited.
pub fn exit_text(exit_code: i32, signal: i32) -> String {
    if signal > 0 {
        let name = nix::sys::signal::Signal::try_from(signal)
            .map(|s| s.as_str().trim_start_matches("SIG").to_lowercase())
            .unwrap_or_else(|_| signal.to_string());
        let name = if name == "kill" {
            "killed".to_string()
        } else {
            name
        };
        format!("Runtime exited with error: signal: {name}")
    } else {
        format!("Runtime exited with error: exit status {exit_code}")
    }
}

/// A Lambda error document.
pub fn error_doc(error_type: &str, message: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"errorType": error_type, "errorMessage": message}))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_texts_match_lambda() {
        assert_eq!(exit_text(0, 9), "Runtime exited with error: signal: killed");
        assert_eq!(exit_text(3, 0), "Runtime exited with error: exit status 3");
        assert_eq!(exit_text(0, 11), "Runtime exited with error: signal: segv");
    }
}
