//! A scripted flint-init: the guest end of a fake sandbox's stream, speaking
//! flint.init.v1 through flint_proto's frame codec in the order flint-init does
//! (guest-init/src/control.rs and state.rs): Hello first; Prepare answered with
//! Prepared; Configure answered with the init output, then Ready or InitError (a runtime
//! that exits during init: RuntimeExit, then InitError); each Invoke answered with its
//! output, then a response, an error or a RuntimeExit; Shutdown or end of stream ends it.

use flint_proto::frame::{tokio_io, FrameError};
use flint_proto::init::{
    guest_message::Msg as G, host_message::Msg as H, GuestMessage, Hello, HostMessage, InitError,
    InvokeError, InvokeResponse, Log, Prepared, Ready, RuntimeExit, PROTOCOL_VERSION,
};
use flint_proto::lambda::{error_doc, exit_message, EXIT_ERROR};
use std::io::Read;
use std::sync::{Arc, Mutex};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixStream;
use tokio::sync::Semaphore;

/// How the runtime gets through its init phase (after Configure, or after Prepare).
#[derive(Debug, Clone)]
pub(crate) enum InitStep {
    /// The runtime asks for its first invocation: Ready (Prepared after Prepare).
    Ready,
    /// The runtime posts /runtime/init/error with this type and message.
    Fail { error_type: String, message: String },
    /// The runtime exits (code, or killed by `signal` when > 0) before asking.
    Exit { code: i32, signal: i32 },
    /// The runtime never asks for an invocation.
    Hang,
}

/// How the runtime answers every invocation.
#[derive(Debug, Clone)]
pub(crate) enum Answer {
    /// A JSON document naming the sandbox, the invocations it served, the code's
    /// `version.txt` and the event it was given.
    Echo,
    /// Waits for a permit of the semaphore (the test releases it), then echoes.
    Held(Arc<Semaphore>),
    /// Posts /invocation/error with this type and message.
    Error { error_type: String, message: String },
    /// Never answers.
    Hang,
    /// The runtime exits (code, or killed by `signal` when > 0).
    Exit { code: i32, signal: i32 },
}

/// What one fake flint-init does.
#[derive(Debug, Clone)]
pub(crate) struct Script {
    /// Whether flint-init says Hello at all.
    pub hello: bool,
    /// The protocol version sent in Hello.
    pub protocol_version: u32,
    /// The answer to Prepare (warm pool).
    pub prepare: InitStep,
    /// The init phase after Configure.
    pub init: InitStep,
    /// Output of the init phase, written before its outcome.
    pub init_output: String,
    /// The answer to every Invoke.
    pub answer: Answer,
    /// Output of every invocation, written before its answer.
    pub invoke_output: String,
    /// Output written after answering (a background thread printing while idle).
    pub idle_output: String,
    /// After answering, the runtime exits (code, signal): it dies while idle.
    pub exit_when_idle: Option<(i32, i32)>,
    /// Ready reports no layers whatever came (a flint-init that drops them).
    pub drop_layers: bool,
}

impl Script {
    /// A well-behaved runtime that echoes every invocation.
    pub fn echo() -> Self {
        Script {
            hello: true,
            protocol_version: PROTOCOL_VERSION,
            prepare: InitStep::Ready,
            init: InitStep::Ready,
            init_output: String::new(),
            answer: Answer::Echo,
            invoke_output: String::new(),
            idle_output: String::new(),
            exit_when_idle: None,
            drop_layers: false,
        }
    }

    /// The same, answering every invocation with `answer`.
    pub fn answering(answer: Answer) -> Self {
        Script {
            answer,
            ..Self::echo()
        }
    }

    /// The same, with `init` as the init phase.
    pub fn init(init: InitStep) -> Self {
        Script {
            init,
            ..Self::echo()
        }
    }
}

/// What every fake guest of one backend writes down: (sandbox id, host message kind)
/// in arrival order.
pub(crate) type Journal = Arc<Mutex<Vec<(String, &'static str)>>>;

/// The scripts of one backend: a default, and one per function (chosen when
/// Configure names the function; Hello and Prepare follow the default).
#[derive(Debug, Clone)]
pub(crate) struct Scripts {
    pub default: Script,
    pub by_function: std::collections::HashMap<String, Script>,
}

/// One guest's identity and shared records.
pub(crate) struct GuestCtx {
    pub sandbox_id: String,
    pub journal: Journal,
    pub scripts: Arc<Mutex<Scripts>>,
}

struct Guest {
    ctx: GuestCtx,
    script: Script,
    writer: OwnedWriteHalf,
    /// The code bundle's version.txt, once configured.
    code: Option<String>,
    /// The Layer frames that came before Configure: (index, ARN, version.txt).
    layers: Vec<(u32, String, Option<String>)>,
    served: u64,
    /// The runtime exited or hangs: invocations are no longer answered.
    stuck: bool,
}

/// Runs the guest on `stream` until Shutdown, end of stream or abort (destroy).
pub(crate) async fn run(stream: UnixStream, ctx: GuestCtx) {
    let (mut reader, writer) = stream.into_split();
    let script = ctx
        .scripts
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .default
        .clone();
    let mut g = Guest {
        ctx,
        script,
        writer,
        code: None,
        layers: Vec::new(),
        served: 0,
        stuck: false,
    };
    let hello = G::Hello(Hello {
        protocol_version: g.script.protocol_version,
        init_version: "fake".into(),
        boot_ns: 1_000,
    });
    if !g.script.hello {
        return std::future::pending().await;
    }
    if g.send(hello).await.is_err() {
        return;
    }
    loop {
        let msg = match tokio_io::read_frame::<_, HostMessage>(&mut reader).await {
            Ok(HostMessage { msg: Some(m) }) => m,
            Ok(HostMessage { msg: None }) => continue,
            Err(_) => return,
        };
        let kind = match &msg {
            H::Prepare(_) => "Prepare",
            H::Configure(_) => "Configure",
            H::Invoke(_) => "Invoke",
            H::Shutdown(_) => "Shutdown",
            H::Reply(_) => "Reply",
            H::Resume(_) => "Resume",
            H::Layer(_) => "Layer",
        };
        g.ctx
            .journal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((g.ctx.sandbox_id.clone(), kind));
        let step = match msg {
            H::Prepare(_) => g.prepare().await,
            H::Configure(c) => g.configure(&c.function_name, &c.code_zip).await,
            H::Invoke(inv) => g.invoke(inv.request_id, inv.payload).await,
            H::Shutdown(_) => return,
            // The fake guest makes no calls, so it gets no replies.
            H::Reply(_) => continue,
            // Only restored microVMs get Resume; the fake guest has no state to refresh.
            H::Resume(_) => continue,
            H::Layer(l) => {
                g.layers.push((l.index, l.arn, version_of(&l.zip)));
                continue;
            }
        };
        if step.is_err() {
            return;
        }
    }
}

/// The contents of `version.txt` in a code bundle.
fn version_of(zip: &[u8]) -> Option<String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).ok()?;
    let mut file = archive.by_name("version.txt").ok()?;
    let mut s = String::new();
    file.read_to_string(&mut s).ok()?;
    Some(s)
}

impl Guest {
    async fn send(&mut self, msg: G) -> Result<(), FrameError> {
        tokio_io::write_frame(&mut self.writer, &GuestMessage { msg: Some(msg) }).await
    }

    async fn log(&mut self, request_id: &str, text: &str) -> Result<(), FrameError> {
        if text.is_empty() {
            return Ok(());
        }
        self.send(G::Log(Log {
            request_id: request_id.to_string(),
            data: text.as_bytes().to_vec(),
        }))
        .await
    }

    /// An init phase ending as `step` says; `ready` is the message of success.
    async fn finish_init(&mut self, step: InitStep, ready: G) -> Result<(), FrameError> {
        match step {
            InitStep::Ready => self.send(ready).await,
            InitStep::Fail {
                error_type,
                message,
            } => {
                self.stuck = true;
                let payload = error_doc(&error_type, &message);
                self.send(G::InitError(InitError {
                    error_type,
                    payload,
                }))
                .await
            }
            InitStep::Exit { code, signal } => {
                // As flint-init's reaper: the exit, then an init error made from it.
                self.stuck = true;
                self.send(G::RuntimeExit(RuntimeExit {
                    request_id: String::new(),
                    exit_code: code,
                    signal,
                }))
                .await?;
                let msg = format!("RequestId: none Error: {}", exit_message(code, signal));
                self.send(G::InitError(InitError {
                    error_type: EXIT_ERROR.into(),
                    payload: error_doc(EXIT_ERROR, &msg),
                }))
                .await
            }
            InitStep::Hang => {
                self.stuck = true;
                Ok(())
            }
        }
    }

    async fn prepare(&mut self) -> Result<(), FrameError> {
        let step = self.script.prepare.clone();
        self.finish_init(step, G::Prepared(Prepared { prepare_ns: 2_000 }))
            .await
    }

    async fn configure(&mut self, function: &str, code_zip: &[u8]) -> Result<(), FrameError> {
        if let Some(s) = self
            .ctx
            .scripts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_function
            .get(function)
        {
            self.script = s.clone();
        }
        self.code = version_of(code_zip);
        let output = self.script.init_output.clone();
        self.log("", &output).await?;
        let step = self.script.init.clone();
        let layers = if self.script.drop_layers {
            0
        } else {
            self.layers.len() as u32
        };
        self.finish_init(
            step,
            G::Ready(Ready {
                init_ns: 3_000,
                unpack_ns: 1_000,
                layers,
            }),
        )
        .await
    }

    async fn invoke(&mut self, request_id: String, payload: Vec<u8>) -> Result<(), FrameError> {
        if self.stuck {
            return Ok(());
        }
        let output = self.script.invoke_output.clone();
        self.log(&request_id, &output).await?;
        self.answer(request_id, payload).await?;
        let idle = self.script.idle_output.clone();
        self.log("", &idle).await?;
        if let (Some((code, signal)), false) = (self.script.exit_when_idle, self.stuck) {
            self.stuck = true;
            self.send(G::RuntimeExit(RuntimeExit {
                request_id: String::new(),
                exit_code: code,
                signal,
            }))
            .await?;
        }
        Ok(())
    }

    async fn answer(&mut self, request_id: String, payload: Vec<u8>) -> Result<(), FrameError> {
        match self.script.answer.clone() {
            Answer::Echo => self.echo(request_id, &payload).await,
            Answer::Held(gate) => {
                if let Ok(permit) = gate.acquire().await {
                    permit.forget();
                }
                self.echo(request_id, &payload).await
            }
            Answer::Error {
                error_type,
                message,
            } => {
                self.served += 1;
                let payload = error_doc(&error_type, &message);
                self.send(G::Error(InvokeError {
                    request_id,
                    error_type,
                    payload,
                }))
                .await
            }
            Answer::Hang => {
                self.stuck = true;
                Ok(())
            }
            Answer::Exit { code, signal } => {
                self.stuck = true;
                self.send(G::RuntimeExit(RuntimeExit {
                    request_id,
                    exit_code: code,
                    signal,
                }))
                .await
            }
        }
    }

    async fn echo(&mut self, request_id: String, payload: &[u8]) -> Result<(), FrameError> {
        self.served += 1;
        let event: serde_json::Value =
            serde_json::from_slice(payload).unwrap_or(serde_json::Value::Null);
        let doc = serde_json::json!({
            "sandbox": self.ctx.sandbox_id,
            "served": self.served,
            "code": self.code,
            "layers": self
                .layers
                .iter()
                .map(|(i, arn, v)| serde_json::json!({"index": i, "arn": arn, "version": v}))
                .collect::<Vec<_>>(),
            "event": event,
        });
        self.send(G::Response(InvokeResponse {
            request_id,
            payload: doc.to_string().into_bytes(),
        }))
        .await
    }
}
