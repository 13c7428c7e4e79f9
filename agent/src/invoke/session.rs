//! The flint.init.v1 conversation with one sandbox's flint-init. A reader task turns
//! frames into events, and one loop ([`Stream::next_event`]) receives them for every
//! step: Hello, Prepare/Prepared (sandbox pool), Configure/Ready, Invoke/Response.
//!
//! - [`Prestarted`]: a sandbox that said Hello (and, in the sandbox pool, Prepared),
//!   bound to no function yet.
//! - [`Session`]: a sandbox bound to one function revision: one instance, one
//!   invocation at a time.
//!
//! A runtime that fails its init phase is a function's failure, not the agent's: it
//! comes back as a value ([`Started::InitFailed`]); [`StartError`] is only for
//! sandboxes that could not be made or spoke the protocol wrongly.

use crate::logs::push_capped;
use crate::roles::calls::GuestCalls;
use crate::sandbox::{Sandbox, SandboxBackend, SandboxError, SandboxSpec};
use flint_proto::frame::{tokio_io, FrameError};
use flint_proto::init::{
    guest_message::Msg as G, host_call_reply::Kind as ReplyKind, host_message::Msg as H, Configure,
    GuestMessage, HostCall, HostCallReply, HostMessage, Invoke, Prepare, Shutdown,
    PROTOCOL_VERSION,
};
use flint_proto::lambda::{self, error_doc, exit_message};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::mpsc;

/// How long flint-init may take to say Hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Most output kept between invocations (the newest bytes win).
const PENDING_LOG_MAX: usize = 64 * 1024;

/// Why a sandbox could not become ready (the function's own init failure is not
/// one of these: see [`InitFailure`]).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The sandbox could not be made
    #[error("could not create a sandbox: {0}")]
    Sandbox(#[from] SandboxError),
    /// flint-init spoke an unexpected protocol
    #[error("flint-init protocol error: {0}")]
    Protocol(String),
    /// A pre-started runtime failed before it was bound to a function
    #[error("the pre-started runtime failed: {0}")]
    Prepare(String),
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

/// How one invocation ended.
#[derive(Debug)]
pub(crate) enum InvokeResult {
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
    /// The runtime had exited before it took the invocation (it ended right after its
    /// previous result, before flintd saw the exit): the function never ran.
    ExitedIdle {
        exit_code: i32,
        signal: i32,
        oom: bool,
    },
    /// The deadline passed; the instance must be destroyed.
    TimedOut,
}

impl InvokeResult {
    /// True when the instance may serve another invocation.
    pub(crate) fn reusable(&self) -> bool {
        matches!(self, Self::Response(_) | Self::FunctionError(..))
    }
}

/// Why the runtime's init phase failed.
#[derive(Debug)]
enum InitCause {
    /// The runtime reported an init error, or exited: Lambda's error type and document.
    Error {
        error_type: String,
        payload: Vec<u8>,
    },
    /// Init did not finish within this long.
    TimedOut(Duration),
}

/// A runtime that failed its init phase (the sandbox is already destroyed).
#[derive(Debug)]
pub(crate) struct InitFailure {
    cause: InitCause,
    /// Output of the init phase.
    log: Vec<u8>,
}

impl InitFailure {
    /// Lambda's error type, error document and the init phase's output, for the
    /// invocation `request_id` that waited for it.
    pub(crate) fn into_parts(self, request_id: &str) -> (String, Vec<u8>, Vec<u8>) {
        match self.cause {
            InitCause::Error {
                error_type,
                payload,
            } => (error_type, payload, self.log),
            InitCause::TimedOut(t) => {
                let msg = format!(
                    "RequestId: {request_id} Error: Init timed out after {:.2} seconds",
                    t.as_secs_f64()
                );
                (
                    lambda::TIMED_OUT.into(),
                    error_doc(lambda::TIMED_OUT, &msg),
                    self.log,
                )
            }
        }
    }
}

/// What binding a sandbox to a function produced.
pub(crate) enum Started {
    /// An instance, ready for its first invocation.
    Ready(Session),
    /// The function's init failed; starting afresh would fail the same way.
    InitFailed(InitFailure),
}

/// The function revision a sandbox is bound to.
pub(crate) struct Binding<'a> {
    pub configure: Configure,
    pub function: &'a str,
    /// `$LATEST` or the published version's number.
    pub version: String,
    pub revision: u64,
    /// Answers flint-init's calls (an execution role's credentials and API proxy).
    pub calls: Option<Arc<dyn GuestCalls>>,
    /// When the instance must stop taking invocations (its environment's role
    /// credentials expire soon after).
    pub retire_at: Option<Instant>,
    /// The code as a host directory to mount read-only at /var/task (namespace
    /// sandbox; Configure's `code_mount` is set), pinned for the instance's life.
    pub code_mount: Option<CodeMount>,
    /// The function's layers as one host directory to mount read-only at /opt
    /// (namespace sandbox; Configure's `opt_mount` is set), pinned for the
    /// instance's life.
    pub opt_mount: Option<CodeMount>,
    /// The function's layers as zips, in order (a backend without mounts; Configure's
    /// `layer_count` is their number), sent before Configure.
    pub layer_frames: Vec<flint_proto::init::Layer>,
    /// A /tmp of the function's size for a pre-started sandbox made with the pool's
    /// (Configure's `tmp_mount` is set; sent after the code and layers mounts).
    pub tmp_mount: Option<std::os::fd::OwnedFd>,
}

/// The unpacked bundle an instance mounts, and its pin.
pub(crate) struct CodeMount {
    pub dir: std::path::PathBuf,
    pub pin: crate::unpacked::UnpackPin,
}

/// What the reader task (or a call's task) delivers.
enum Event {
    Msg(G),
    Closed(String),
    /// A reply to one of flint-init's calls, to send.
    Reply(HostCallReply),
}

/// What waiting for one message during start produced.
enum Waited {
    Got(G),
    Failed(InitFailure),
}

/// One sandbox and its stream (private: both public types wrap it).
struct Stream {
    sandbox: Box<dyn Sandbox>,
    writer: OwnedWriteHalf,
    events: mpsc::Receiver<Event>,
    /// Output that arrived outside an invocation (init phase, or while idle).
    pending_log: Vec<u8>,
    timings: StartTimings,
    /// When the sandbox was created.
    created: Instant,
    dead: bool,
    /// flint-init's calls and the instance's retirement (boxed: the stream stays small).
    guest: Box<GuestLink>,
}

/// How a stream answers flint-init's calls (an execution role's).
struct GuestLink {
    /// Where call replies are queued (the reader's channel).
    replies: mpsc::Sender<Event>,
    calls: Option<Arc<dyn GuestCalls>>,
    /// See [`Binding::retire_at`].
    retire_at: Option<Instant>,
    /// Keeps the instance's unpacked code directory while the instance lives.
    code_pin: Option<crate::unpacked::UnpackPin>,
    /// Keeps the instance's /opt tree (its layers) on the host while it lives.
    opt_pin: Option<crate::unpacked::UnpackPin>,
}

impl Stream {
    /// Creates a sandbox and waits for flint-init's Hello.
    async fn open(backend: &dyn SandboxBackend, spec: &SandboxSpec) -> Result<Self, StartError> {
        let created = Instant::now();
        let mut sandbox = backend.create(spec).await?;
        let Some(stream) = sandbox.take_stream() else {
            let _ = sandbox.destroy().await;
            return Err(StartError::Protocol("sandbox gave no stream".into()));
        };
        let (reader, writer) = stream.into_split();
        let (tx, events) = mpsc::channel(256);
        let replies = tx.clone();
        tokio::spawn(read_loop(reader, tx));
        let mut s = Stream {
            sandbox,
            writer,
            events,
            pending_log: Vec::new(),
            timings: StartTimings::default(),
            created,
            dead: false,
            guest: Box::new(GuestLink {
                replies,
                calls: None,
                retire_at: None,
                code_pin: None,
                opt_pin: None,
            }),
        };
        if let Err(e) = s.hello().await {
            s.destroy().await;
            return Err(e);
        }
        Ok(s)
    }

    /// The next event before `deadline`; `None` once the deadline has passed.
    async fn next_event(&mut self, deadline: tokio::time::Instant) -> Option<Event> {
        match tokio::time::timeout_at(deadline, self.events.recv()).await {
            Ok(Some(ev)) => Some(ev),
            Ok(None) => Some(Event::Closed("stream closed".into())),
            Err(_) => None,
        }
    }

    async fn hello(&mut self) -> Result<(), StartError> {
        let deadline = tokio::time::Instant::now() + HELLO_TIMEOUT;
        match self.next_event(deadline).await {
            Some(Event::Msg(G::Hello(h))) if h.protocol_version == PROTOCOL_VERSION => {
                self.timings.sandbox_ns = self.created.elapsed().as_nanos() as u64;
                self.timings.init_boot_ns = h.boot_ns;
                Ok(())
            }
            Some(Event::Msg(G::Hello(h))) => Err(StartError::Protocol(format!(
                "flint-init speaks protocol {}, the agent {PROTOCOL_VERSION}: rebuild flint-init",
                h.protocol_version
            ))),
            Some(Event::Closed(e)) => Err(StartError::Protocol(format!(
                "flint-init closed the stream before Hello: {e}"
            ))),
            Some(Event::Msg(other)) => Err(StartError::Protocol(format!(
                "expected Hello, got {other:?}"
            ))),
            Some(Event::Reply(_)) => Err(StartError::Protocol("a reply before Hello".into())),
            None => Err(StartError::Protocol(format!(
                "no Hello from flint-init within {} s",
                HELLO_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Sends one message.
    async fn send(&mut self, msg: H) -> Result<(), FrameError> {
        tokio_io::write_frame(&mut self.writer, &HostMessage { msg: Some(msg) }).await
    }

    /// Sends the function's layers, one frame each in order, then Configure.
    async fn send_layers_and_configure(
        &mut self,
        layers: Vec<flint_proto::init::Layer>,
        configure: Configure,
    ) -> Result<(), FrameError> {
        for layer in layers {
            self.send(H::Layer(layer)).await?;
        }
        self.send(H::Configure(configure)).await
    }

    /// Sends Configure with read-only mounts of `dirs` attached, in order (the code
    /// for /var/task, then the layers for /opt when the function has any), and then
    /// `tmp` (a /tmp for a pre-started sandbox) when there is one.
    async fn send_with_code(
        &mut self,
        configure: Configure,
        dirs: &[&std::path::Path],
        tmp: Option<&std::os::fd::OwnedFd>,
    ) -> Result<(), FrameError> {
        let mut trees = Vec::with_capacity(dirs.len());
        for dir in dirs {
            trees.push(crate::sandbox::namespace::code_mount::read_only_tree(dir)?);
        }
        let mut fds: Vec<_> = trees.iter().map(|t| t.as_fd()).collect();
        fds.extend(tmp.map(|t| t.as_fd()));
        let msg = HostMessage {
            msg: Some(H::Configure(configure)),
        };
        super::send_fd::send_with_fds(&mut self.writer, &msg, &fds).await
    }

    /// Answers a call of flint-init on a task of its own; the reply comes back as
    /// [`Event::Reply`] to the loop that is waiting.
    fn on_call(&self, call: HostCall) {
        let replies = self.guest.replies.clone();
        match &self.guest.calls {
            Some(calls) => {
                let reply = calls.answer(call);
                tokio::spawn(async move {
                    let _ = replies.send(Event::Reply(reply.await)).await;
                });
            }
            None => {
                let reply = HostCallReply {
                    id: call.id,
                    kind: Some(ReplyKind::Error(
                        "this function has no execution role: give it one (flint update --role)"
                            .into(),
                    )),
                };
                let _ = replies.try_send(Event::Reply(reply));
            }
        }
    }

    /// Sends a call's reply; a failure shows as the stream's end on the read side.
    async fn reply(&mut self, r: HostCallReply) {
        let _ = self.send(H::Reply(r)).await;
    }

    /// Waits for the message `want` accepts, collecting output; an init error, an
    /// exit or the deadline is the runtime's init failure.
    async fn wait_for(
        &mut self,
        timeout: Duration,
        want: impl Fn(&G) -> bool,
    ) -> Result<Waited, StartError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let failed = |s: &mut Self, cause| {
                Ok(Waited::Failed(InitFailure {
                    cause,
                    log: std::mem::take(&mut s.pending_log),
                }))
            };
            match self.next_event(deadline).await {
                None => return failed(self, InitCause::TimedOut(timeout)),
                Some(Event::Msg(m)) if want(&m) => return Ok(Waited::Got(m)),
                Some(Event::Msg(G::Log(l))) => self.keep_output(&l.data),
                Some(Event::Msg(G::Call(c))) => self.on_call(c),
                Some(Event::Reply(r)) => self.reply(r).await,
                Some(Event::Msg(G::InitError(e))) => {
                    let cause = InitCause::Error {
                        error_type: e.error_type,
                        payload: e.payload,
                    };
                    return failed(self, cause);
                }
                Some(Event::Msg(G::RuntimeExit(x))) => {
                    // flint-init reports the exit; the host alone words the error.
                    let (error_type, msg) = if self.sandbox.oom_killed() {
                        (
                            lambda::OUT_OF_MEMORY,
                            lambda::OUT_OF_MEMORY_MESSAGE.to_string(),
                        )
                    } else {
                        (lambda::EXIT_ERROR, exit_message(x.exit_code, x.signal))
                    };
                    let cause = InitCause::Error {
                        error_type: error_type.into(),
                        payload: error_doc(error_type, &msg),
                    };
                    return failed(self, cause);
                }
                Some(Event::Msg(other)) => {
                    tracing::warn!(sandbox = %self.sandbox.id(), "unexpected message during start: {other:?}");
                }
                Some(Event::Closed(e)) => {
                    return Err(StartError::Protocol(format!(
                        "flint-init closed the stream during start: {e}"
                    )))
                }
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
    fn is_alive(&mut self) -> bool {
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
                Ok(Event::Msg(_)) | Ok(Event::Reply(_)) => {}
                Err(mpsc::error::TryRecvError::Empty) => return true,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    self.dead = true;
                    return false;
                }
            }
        }
    }

    /// Stops the runtime and removes the sandbox.
    async fn destroy(mut self) {
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

/// A sandbox that said Hello and is bound to no function yet (the sandbox pool's).
pub(crate) struct Prestarted {
    stream: Stream,
}

impl Prestarted {
    /// Creates a sandbox and waits for flint-init's Hello.
    pub(crate) async fn open(
        backend: &dyn SandboxBackend,
        spec: &SandboxSpec,
    ) -> Result<Self, StartError> {
        Ok(Self {
            stream: Stream::open(backend, spec).await?,
        })
    }

    /// Sends Prepare and waits for Prepared (the runtime started without a function).
    pub(crate) async fn prepare(
        &mut self,
        prepare: Prepare,
        timeout: Duration,
    ) -> Result<(), StartError> {
        self.stream
            .send(H::Prepare(prepare))
            .await
            .map_err(|e| StartError::Protocol(format!("sending Prepare: {e}")))?;
        match self
            .stream
            .wait_for(timeout, |m| matches!(m, G::Prepared(_)))
            .await?
        {
            Waited::Got(_) => Ok(()),
            Waited::Failed(InitFailure {
                cause: InitCause::Error { error_type, .. },
                ..
            }) => Err(StartError::Prepare(error_type)),
            Waited::Failed(InitFailure {
                cause: InitCause::TimedOut(t),
                ..
            }) => Err(StartError::Prepare(format!("no Prepared within {t:?}"))),
        }
    }

    /// True when the sandbox can still be used.
    pub(crate) fn is_alive(&mut self) -> bool {
        self.stream.is_alive()
    }

    /// Stops the runtime and removes the sandbox.
    pub(crate) async fn destroy(self) {
        self.stream.destroy().await;
    }
}

/// A function instance: a sandbox bound to one function revision.
pub(crate) struct Session {
    stream: Stream,
    function: String,
    /// `$LATEST` or a published version's number: the only version it serves.
    version: String,
    revision: u64,
    memory_mb: u32,
    /// Time from sandbox creation (or from taking a pool sandbox) to the runtime's
    /// first /next.
    init_duration: Duration,
    /// Whether the instance came from a pre-started sandbox.
    pool_hit: bool,
    last_used: Instant,
    /// Whether the sandbox is frozen now (by [`freeze`](Self::freeze)).
    frozen: bool,
}

impl Session {
    /// Creates a sandbox, configures it and waits for the runtime to be ready.
    pub(crate) async fn start(
        backend: &dyn SandboxBackend,
        sandbox: &SandboxSpec,
        binding: Binding<'_>,
        init_timeout: Duration,
    ) -> Result<Started, StartError> {
        let stream = Stream::open(backend, sandbox).await?;
        Self::bind_stream(stream, binding, init_timeout, false).await
    }

    /// Binds a pre-started sandbox to a function.
    pub(crate) async fn bind(
        pre: Prestarted,
        binding: Binding<'_>,
        init_timeout: Duration,
    ) -> Result<Started, StartError> {
        Self::bind_stream(pre.stream, binding, init_timeout, true).await
    }

    async fn bind_stream(
        mut stream: Stream,
        binding: Binding<'_>,
        init_timeout: Duration,
        pool_hit: bool,
    ) -> Result<Started, StartError> {
        let t0 = if pool_hit {
            Instant::now()
        } else {
            stream.created
        };
        let memory_mb = binding.configure.memory_mb;
        stream.guest.calls = binding.calls;
        stream.guest.retire_at = binding.retire_at;
        if pool_hit {
            // Output of the pool sandbox's own start belongs to no function.
            stream.pending_log.clear();
            stream.timings.sandbox_ns = 0;
            stream.timings.init_boot_ns = 0;
        }
        let layer_count = binding.configure.layer_count;
        let mut configure = binding.configure;
        configure.tmp_mount = binding.tmp_mount.is_some();
        let sent = match (binding.code_mount, binding.opt_mount) {
            (None, _) if configure.tmp_mount => Err(FrameError::Io(std::io::Error::other(
                "a /tmp mount goes with a code mount, and there is none",
            ))),
            (None, _) => {
                stream
                    .send_layers_and_configure(binding.layer_frames, configure)
                    .await
            }
            (Some(code), opt) => {
                let mut dirs = vec![code.dir.as_path()];
                if let Some(opt) = &opt {
                    dirs.push(opt.dir.as_path());
                }
                let sent = stream
                    .send_with_code(configure, &dirs, binding.tmp_mount.as_ref())
                    .await;
                stream.guest.code_pin = Some(code.pin);
                stream.guest.opt_pin = opt.map(|o| o.pin);
                sent
            }
        };
        let waited = match sent {
            Ok(()) => {
                stream
                    .wait_for(init_timeout, |m| matches!(m, G::Ready(_)))
                    .await
            }
            Err(e) => Err(StartError::Protocol(format!("sending Configure: {e}"))),
        };
        match waited {
            Ok(Waited::Got(G::Ready(r))) if r.layers != layer_count => {
                stream.destroy().await;
                Err(StartError::Protocol(format!(
                    "flint-init installed {} of the function's {layer_count} layers: rebuild flint-init",
                    r.layers
                )))
            }
            Ok(Waited::Got(ready)) => {
                if let G::Ready(r) = ready {
                    stream.timings.code_load_ns = r.unpack_ns;
                    stream.timings.runtime_init_ns = r.init_ns;
                }
                tracing::debug!(
                    function = binding.function,
                    pool_hit,
                    init_ms = t0.elapsed().as_secs_f64() * 1e3,
                    code_load_ms = stream.timings.code_load_ns as f64 / 1e6,
                    runtime_init_ms = stream.timings.runtime_init_ns as f64 / 1e6,
                    "instance ready"
                );
                // Init ran unthrottled, as on Lambda; invocations get memory's CPU share.
                if let Err(e) = stream.sandbox.limit_cpu() {
                    tracing::warn!(sandbox = %stream.sandbox.id(), function = binding.function, error = %e, "CPU quota not applied");
                }
                Ok(Started::Ready(Session {
                    init_duration: t0.elapsed(),
                    stream,
                    function: binding.function.to_string(),
                    version: binding.version,
                    revision: binding.revision,
                    memory_mb,
                    pool_hit,
                    last_used: Instant::now(),
                    frozen: false,
                }))
            }
            Ok(Waited::Failed(failure)) => {
                stream.destroy().await;
                Ok(Started::InitFailed(failure))
            }
            Err(e) => {
                stream.destroy().await;
                Err(e)
            }
        }
    }

    /// Freezes the idle instance's sandbox: nothing it left running uses CPU until
    /// [`thaw`](Self::thaw). A failure is logged; the instance stays usable.
    pub(crate) fn freeze(&mut self) {
        match self.stream.sandbox.freeze() {
            Ok(()) => self.frozen = true,
            Err(e) => {
                tracing::warn!(sandbox = %self.stream.sandbox.id(), function = %self.function, error = %e, "instance not frozen")
            }
        }
    }

    /// Whether the instance is frozen now.
    pub(crate) fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// Thaws the instance before an invocation (nothing to do unless it was frozen);
    /// false (logged) when it cannot be.
    pub(crate) fn thaw(&mut self) -> bool {
        if !self.frozen {
            return true;
        }
        match self.stream.sandbox.thaw() {
            Ok(()) => {
                self.frozen = false;
                true
            }
            Err(e) => {
                tracing::warn!(sandbox = %self.stream.sandbox.id(), function = %self.function, error = %e, "instance not thawed");
                false
            }
        }
    }

    /// The function this instance runs.
    pub(crate) fn function(&self) -> &str {
        &self.function
    }

    /// The function version this instance serves.
    pub(crate) fn version(&self) -> &str {
        &self.version
    }

    /// The function revision this instance was configured for.
    pub(crate) fn revision(&self) -> u64 {
        self.revision
    }

    /// The function's memory size.
    pub(crate) fn memory_mb(&self) -> u32 {
        self.memory_mb
    }

    /// Time from sandbox creation (or from taking a pool sandbox) to ready.
    pub(crate) fn init_duration(&self) -> Duration {
        self.init_duration
    }

    /// Phase timings of this instance's start.
    pub(crate) fn start_timings(&self) -> StartTimings {
        self.stream.timings
    }

    /// Whether the instance came from a pre-started sandbox.
    pub(crate) fn pool_hit(&self) -> bool {
        self.pool_hit
    }

    /// When the instance last finished an invocation (or was made idle).
    pub(crate) fn last_used(&self) -> Instant {
        self.last_used
    }

    /// Marks the instance used now (it is going idle).
    pub(crate) fn touch(&mut self) {
        self.last_used = Instant::now();
    }

    /// True when the instance can take an invocation.
    pub(crate) fn is_alive(&mut self) -> bool {
        if self
            .stream
            .guest
            .retire_at
            .is_some_and(|t| Instant::now() >= t)
        {
            return false;
        }
        self.stream.is_alive()
    }

    /// Output of the init phase and while idle (bounded), for the next invocation's log.
    pub(crate) fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.stream.pending_log)
    }

    /// Runs one invocation; `log` receives the function's output.
    pub(crate) async fn invoke(
        &mut self,
        invoke: Invoke,
        deadline: Instant,
        log: &mut Vec<u8>,
    ) -> InvokeResult {
        let request_id = invoke.request_id.clone();
        if let Err(e) = self.stream.send(H::Invoke(invoke)).await {
            tracing::warn!(function = %self.function, request_id, error = %e, "sending Invoke failed");
            self.stream.dead = true;
            return self.crash(-1, 0);
        }
        let deadline = tokio::time::Instant::from_std(deadline);
        loop {
            let Some(ev) = self.stream.next_event(deadline).await else {
                self.stream.dead = true;
                return InvokeResult::TimedOut;
            };
            match ev {
                Event::Msg(G::Log(l)) => push_capped(log, &l.data),
                Event::Msg(G::Call(c)) => self.stream.on_call(c),
                Event::Reply(r) => self.stream.reply(r).await,
                Event::Msg(G::Response(r)) if r.request_id == request_id => {
                    self.last_used = Instant::now();
                    return InvokeResult::Response(r.payload);
                }
                Event::Msg(G::Error(e)) if e.request_id == request_id => {
                    self.last_used = Instant::now();
                    return InvokeResult::FunctionError(e.error_type, e.payload);
                }
                Event::Msg(G::RuntimeExit(x)) => {
                    self.stream.dead = true;
                    // Let the last output arrive before reporting.
                    while let Ok(Event::Msg(G::Log(l))) = self.stream.events.try_recv() {
                        push_capped(log, &l.data);
                    }
                    if x.request_id.is_empty() {
                        return InvokeResult::ExitedIdle {
                            exit_code: x.exit_code,
                            signal: x.signal,
                            oom: self.stream.sandbox.oom_killed(),
                        };
                    }
                    return self.crash(x.exit_code, x.signal);
                }
                Event::Closed(_) => {
                    self.stream.dead = true;
                    return self.crash(-1, 9);
                }
                Event::Msg(other) => {
                    tracing::debug!(function = %self.function, request_id, "ignoring {other:?}");
                }
            }
        }
    }

    fn crash(&self, exit_code: i32, signal: i32) -> InvokeResult {
        InvokeResult::Crashed {
            exit_code,
            signal,
            oom: self.stream.sandbox.oom_killed(),
        }
    }

    /// Peak memory of the instance's sandbox so far, in MB.
    pub(crate) fn max_memory_used_mb(&self) -> Option<u64> {
        self.stream
            .sandbox
            .memory_peak()
            .map(|b| b.div_ceil(1024 * 1024))
    }

    /// Stops the runtime and removes the sandbox.
    pub(crate) async fn destroy(self) {
        self.stream.destroy().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_init_timeout_is_reported_as_lambda_reports_it() {
        let failure = InitFailure {
            cause: InitCause::TimedOut(Duration::from_secs(10)),
            log: b"importing\n".to_vec(),
        };
        let (error_type, doc, log) = failure.into_parts("r1");
        assert_eq!(error_type, lambda::TIMED_OUT);
        let doc: serde_json::Value = serde_json::from_slice(&doc).unwrap();
        assert_eq!(doc["errorType"], lambda::TIMED_OUT);
        assert_eq!(
            doc["errorMessage"],
            "RequestId: r1 Error: Init timed out after 10.00 seconds"
        );
        assert_eq!(log, b"importing\n");
    }

    #[test]
    fn an_init_error_keeps_the_runtimes_document() {
        let failure = InitFailure {
            cause: InitCause::Error {
                error_type: "Runtime.ImportModuleError".into(),
                payload: b"{\"errorType\":\"Runtime.ImportModuleError\"}".to_vec(),
            },
            log: Vec::new(),
        };
        let (error_type, doc, _) = failure.into_parts("r1");
        assert_eq!(error_type, "Runtime.ImportModuleError");
        assert_eq!(doc, b"{\"errorType\":\"Runtime.ImportModuleError\"}");
    }

    #[test]
    fn only_instances_that_answered_are_reused() {
        assert!(InvokeResult::Response(Vec::new()).reusable());
        assert!(InvokeResult::FunctionError("E".into(), Vec::new()).reusable());
        assert!(!InvokeResult::TimedOut.reusable());
        let crash = InvokeResult::Crashed {
            exit_code: 1,
            signal: 0,
            oom: false,
        };
        assert!(!crash.reusable());
        let gone = InvokeResult::ExitedIdle {
            exit_code: 1,
            signal: 0,
            oom: false,
        };
        assert!(!gone.reusable());
    }
}
