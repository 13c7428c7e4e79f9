//! The host end of one sandbox's flint.init.v1 stream: the sandbox, a reader task that
//! turns frames into events, and the steps of the protocol up to Ready. Shared by
//! function instances (`instance.rs`) and warm-pool sandboxes (`warm_pool.rs`).

use crate::sandbox::{Sandbox, SandboxBackend, SandboxSpec};
use crate::start_error::{StartError, StartTimings};
use flint_proto::frame::{tokio_io, FrameError};
use flint_proto::init::{
    guest_message::Msg as G, host_message::Msg as H, Configure, GuestMessage, HostMessage, Prepare,
    Shutdown, PROTOCOL_VERSION,
};
use flint_proto::lambda::{self, error_doc, exit_message};
use std::time::{Duration, Instant};
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::mpsc;

/// How long flint-init may take to say Hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Most output kept between invocations (the newest bytes win).
const PENDING_LOG_MAX: usize = 64 * 1024;

/// What the reader task delivers.
pub(crate) enum Event {
    Msg(G),
    Closed(String),
}

/// One sandbox and its stream.
pub(crate) struct Conn {
    pub sandbox: Box<dyn Sandbox>,
    writer: OwnedWriteHalf,
    pub events: mpsc::Receiver<Event>,
    /// Output that arrived outside an invocation (init phase, or while idle).
    pub pending_log: Vec<u8>,
    pub timings: StartTimings,
    /// When the sandbox was created.
    pub created: Instant,
    pub dead: bool,
}

impl Conn {
    /// Creates a sandbox and waits for flint-init's Hello.
    pub async fn open(
        backend: &dyn SandboxBackend,
        spec: &SandboxSpec,
    ) -> Result<Conn, StartError> {
        let created = Instant::now();
        let mut sandbox = backend.create(spec).await?;
        let Some(stream) = sandbox.take_stream() else {
            let _ = sandbox.destroy().await;
            return Err(StartError::Protocol("sandbox gave no stream".into()));
        };
        let (reader, writer) = stream.into_split();
        let (tx, events) = mpsc::channel(256);
        tokio::spawn(read_loop(reader, tx));
        let mut conn = Conn {
            sandbox,
            writer,
            events,
            pending_log: Vec::new(),
            timings: StartTimings::default(),
            created,
            dead: false,
        };
        if let Err(e) = conn.hello().await {
            conn.destroy().await;
            return Err(e);
        }
        Ok(conn)
    }

    async fn hello(&mut self) -> Result<(), StartError> {
        match tokio::time::timeout(HELLO_TIMEOUT, self.events.recv()).await {
            Ok(Some(Event::Msg(G::Hello(h)))) if h.protocol_version == PROTOCOL_VERSION => {
                self.timings.sandbox_ns = self.created.elapsed().as_nanos() as u64;
                self.timings.init_boot_ns = h.boot_ns;
                Ok(())
            }
            Ok(Some(Event::Msg(G::Hello(h)))) => Err(StartError::Protocol(format!(
                "flint-init speaks protocol {}, the agent {PROTOCOL_VERSION}: rebuild flint-init",
                h.protocol_version
            ))),
            Ok(Some(Event::Closed(e))) => Err(StartError::Protocol(format!(
                "flint-init closed the stream before Hello: {e}"
            ))),
            Ok(Some(Event::Msg(other))) => Err(StartError::Protocol(format!(
                "expected Hello, got {other:?}"
            ))),
            Ok(None) => Err(StartError::Protocol("stream closed before Hello".into())),
            Err(_) => Err(StartError::Protocol(format!(
                "no Hello from flint-init within {HELLO_TIMEOUT:?}"
            ))),
        }
    }

    /// Sends one message.
    pub async fn send(&mut self, msg: H) -> Result<(), FrameError> {
        tokio_io::write_frame(&mut self.writer, &HostMessage { msg: Some(msg) }).await
    }

    /// Warm pool: sends Prepare and waits for Prepared.
    pub async fn prepare(&mut self, prepare: Prepare, timeout: Duration) -> Result<(), StartError> {
        self.send(H::Prepare(prepare))
            .await
            .map_err(|e| StartError::Protocol(format!("sending Prepare: {e}")))?;
        self.wait_for(timeout, |m| matches!(m, G::Prepared(_)))
            .await
            .map(|_| ())
    }

    /// Sends Configure and waits for Ready; records the init phase timings.
    pub async fn configure(
        &mut self,
        configure: Configure,
        timeout: Duration,
    ) -> Result<(), StartError> {
        self.send(H::Configure(configure))
            .await
            .map_err(|e| StartError::Protocol(format!("sending Configure: {e}")))?;
        match self.wait_for(timeout, |m| matches!(m, G::Ready(_))).await? {
            G::Ready(r) => {
                self.timings.code_load_ns = r.unpack_ns;
                self.timings.runtime_init_ns = r.init_ns;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Waits for the message `want` accepts, collecting output; init failures,
    /// exits and timeouts become errors.
    async fn wait_for(
        &mut self,
        timeout: Duration,
        want: impl Fn(&G) -> bool,
    ) -> Result<G, StartError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let Ok(ev) = tokio::time::timeout_at(deadline, self.events.recv()).await else {
                return Err(StartError::Timeout(
                    timeout,
                    std::mem::take(&mut self.pending_log),
                ));
            };
            match ev {
                Some(Event::Msg(m)) if want(&m) => return Ok(m),
                Some(Event::Msg(G::Log(l))) => self.keep_output(&l.data),
                Some(Event::Msg(G::InitError(e))) => {
                    return Err(StartError::Init {
                        error_type: e.error_type,
                        payload: e.payload,
                        log: std::mem::take(&mut self.pending_log),
                    })
                }
                Some(Event::Msg(G::RuntimeExit(x))) => {
                    // Usually preceded by InitError; if not, make one.
                    let (error_type, msg) = if self.sandbox.oom_killed() {
                        (
                            lambda::OUT_OF_MEMORY,
                            lambda::OUT_OF_MEMORY_MESSAGE.to_string(),
                        )
                    } else {
                        (lambda::EXIT_ERROR, exit_message(x.exit_code, x.signal))
                    };
                    return Err(StartError::Init {
                        error_type: error_type.into(),
                        payload: error_doc(error_type, &msg),
                        log: std::mem::take(&mut self.pending_log),
                    });
                }
                Some(Event::Msg(other)) => {
                    tracing::warn!(sandbox = %self.sandbox.id(), "unexpected message during start: {other:?}");
                }
                Some(Event::Closed(e)) => {
                    return Err(StartError::Protocol(format!(
                        "flint-init closed the stream during start: {e}"
                    )))
                }
                None => return Err(StartError::Protocol("stream closed during start".into())),
            }
        }
    }

    /// Keeps output that arrived outside an invocation, bounded: a function printing
    /// from a background thread while idle must not grow the agent without end.
    fn keep_output(&mut self, data: &[u8]) {
        self.pending_log.extend_from_slice(data);
        if self.pending_log.len() > PENDING_LOG_MAX {
            let cut = self.pending_log.len() - PENDING_LOG_MAX;
            self.pending_log.drain(..cut);
        }
    }

    /// True when the sandbox can still be used; drains output that arrived meanwhile.
    pub fn is_alive(&mut self) -> bool {
        if self.dead {
            return false;
        }
        loop {
            match self.events.try_recv() {
                Ok(Event::Msg(G::Log(l))) => self.keep_output(&l.data),
                Ok(Event::Msg(G::RuntimeExit(_)))
                | Ok(Event::Msg(G::InitError(_)))
                | Ok(Event::Closed(_)) => {
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
