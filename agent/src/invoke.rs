//! Invocations: check the request, find or start an instance, run the function with
//! its deadline, turn the outcome into Lambda's result and log lines.

use crate::code::CodeError;
use crate::core::Agent;
use crate::functions::arn;
use crate::instance::{error_doc, exit_text, Instance, Outcome, StartError, StartSpec};
use crate::limits::{ASYNC_PAYLOAD_MAX, INIT_TIMEOUT_S, LOG_TAIL, SYNC_PAYLOAD_MAX, TMP_MB};
use crate::logs::tail;
use crate::runtimes::RuntimeError;
use crate::sandbox::SandboxSpec;
use crate::store::{Function, StoreError};
use flint_proto::init::{Configure, Invoke};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::Instrument;

/// Largest client context, as in Lambda.
const CLIENT_CONTEXT_MAX: usize = 3583;

/// How the caller wants the function run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvocationType {
    RequestResponse,
    Event,
    DryRun,
}

/// An invocation request.
#[derive(Debug, Clone)]
pub struct InvokeInput {
    pub function_name: String,
    pub invocation_type: InvocationType,
    pub log_tail: bool,
    pub payload: Vec<u8>,
    pub client_context: String,
}

/// An invocation's result.
#[derive(Debug, Clone, Default)]
pub struct InvokeOutput {
    pub status_code: u32,
    pub payload: Vec<u8>,
    /// "Unhandled" when the function failed.
    pub function_error: Option<String>,
    pub log_result: Option<String>,
    pub request_id: String,
}

/// Why an invocation could not be run at all (function failures are not errors).
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// Unknown function
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Payload too large
    #[error("payload is {size} bytes: the limit for {kind} invocations is {limit} bytes; send less data or store it elsewhere and pass a reference")]
    PayloadTooLarge {
        size: usize,
        limit: usize,
        kind: &'static str,
    },
    /// Payload is not JSON
    #[error("payload is not valid JSON ({0}): send a JSON document, e.g. {{}}")]
    PayloadNotJson(String),
    /// Client context too large
    #[error("client context is {0} bytes: at most {CLIENT_CONTEXT_MAX} allowed")]
    ClientContext(usize),
    /// The function's runtime image is gone
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The function's code is gone
    #[error(transparent)]
    Code(#[from] CodeError),
    /// No sandbox could be started
    #[error("could not start an instance of {function}: {source}")]
    Sandbox {
        function: String,
        source: StartError,
    },
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Agent {
    /// Runs (or queues, or checks) one invocation.
    pub async fn invoke(self: &Arc<Self>, input: InvokeInput) -> Result<InvokeOutput, InvokeError> {
        let (limit, kind) = match input.invocation_type {
            InvocationType::Event => (ASYNC_PAYLOAD_MAX, "asynchronous (Event)"),
            _ => (SYNC_PAYLOAD_MAX, "synchronous (RequestResponse)"),
        };
        if input.payload.len() > limit {
            return Err(InvokeError::PayloadTooLarge {
                size: input.payload.len(),
                limit,
                kind,
            });
        }
        let mut input = input;
        if input.payload.iter().all(u8::is_ascii_whitespace) {
            input.payload = b"{}".to_vec();
        }
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&input.payload) {
            return Err(InvokeError::PayloadNotJson(e.to_string()));
        }
        if input.client_context.len() > CLIENT_CONTEXT_MAX {
            return Err(InvokeError::ClientContext(input.client_context.len()));
        }
        let f = self.store.get(&input.function_name)?;
        let request_id = new_request_id();
        match input.invocation_type {
            InvocationType::DryRun => {
                self.runtime(&f.runtime)?;
                Ok(InvokeOutput {
                    status_code: 204,
                    request_id,
                    ..Default::default()
                })
            }
            InvocationType::Event => {
                let me = self.clone();
                let id = request_id.clone();
                let span = tracing::info_span!("invoke", function = %f.name, request_id = %id, kind = "event");
                tokio::spawn(
                    async move {
                        match me.run(&f, &id, &input).await {
                            Ok(out) if out.function_error.is_some() => {
                                tracing::info!("event invocation failed in the function")
                            }
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = %e, "event invocation could not run"),
                        }
                    }
                    .instrument(span),
                );
                Ok(InvokeOutput {
                    status_code: 202,
                    request_id,
                    ..Default::default()
                })
            }
            InvocationType::RequestResponse => {
                let span =
                    tracing::info_span!("invoke", function = %f.name, request_id = %request_id);
                self.run(&f, &request_id, &input).instrument(span).await
            }
        }
    }

    async fn start_instance(&self, f: &Function) -> Result<Instance, InvokeError> {
        let rt = self.runtime(&f.runtime)?;
        let code_zip = self.code.get(&f.code_sha256)?;
        let configure = Configure {
            function_name: f.name.clone(),
            function_version: "$LATEST".into(),
            handler: f.handler.clone(),
            memory_mb: f.memory_mb,
            timeout_s: f.timeout_s,
            environment: f.environment.clone(),
            code_zip,
            bootstrap: rt.manifest.bootstrap.clone(),
            runtime: rt.manifest.name.clone(),
            function_arn: arn(&f.name),
            tmp_mb: TMP_MB,
            log_group: format!("/flint/lambda/{}", f.name),
            log_stream: String::new(),
        };
        let spec = StartSpec {
            sandbox: SandboxSpec {
                id: format!("sbx-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
                rootfs: rt.rootfs.clone(),
                memory_mb: f.memory_mb,
            },
            configure,
            function: &f.name,
            revision: f.revision,
        };
        Instance::start(
            self.backend.as_ref(),
            spec,
            Duration::from_secs(INIT_TIMEOUT_S),
        )
        .await
        .map_err(|source| InvokeError::Sandbox {
            function: f.name.clone(),
            source,
        })
    }

    /// The synchronous path (also run in the background for events).
    async fn run(
        &self,
        f: &Function,
        request_id: &str,
        input: &InvokeInput,
    ) -> Result<InvokeOutput, InvokeError> {
        let mut log = Vec::new();
        let (mut inst, init) = match self.pool.take(&f.name, f.revision) {
            Some(i) => (i, None),
            None => match self.start_instance(f).await {
                Ok(mut i) => {
                    log.append(&mut i.init_log);
                    let d = i.init_duration;
                    (i, Some(d))
                }
                Err(InvokeError::Sandbox {
                    source:
                        StartError::Init {
                            error_type,
                            payload,
                            log: init_log,
                        },
                    ..
                }) => {
                    log.extend_from_slice(&init_log);
                    return Ok(self.finish_failed_init(
                        f,
                        request_id,
                        input,
                        &error_type,
                        payload,
                        log,
                    ));
                }
                Err(InvokeError::Sandbox {
                    source: StartError::Timeout(t, init_log),
                    ..
                }) => {
                    log.extend_from_slice(&init_log);
                    let msg = format!(
                        "RequestId: {request_id} Error: Init timed out after {:.2} seconds",
                        t.as_secs_f64()
                    );
                    let doc = error_doc("Sandbox.Timedout", &msg);
                    return Ok(self.finish_failed_init(
                        f,
                        request_id,
                        input,
                        "Sandbox.Timedout",
                        doc,
                        log,
                    ));
                }
                Err(e) => return Err(e),
            },
        };
        // Any output the instance produced while idle belongs before this invocation.
        log.append(&mut inst.init_log);
        log.extend_from_slice(
            format!("START RequestId: {request_id} Version: $LATEST\n").as_bytes(),
        );
        let started = Instant::now();
        let timeout = Duration::from_secs(u64::from(f.timeout_s));
        let invoke = Invoke {
            request_id: request_id.to_string(),
            payload: input.payload.clone(),
            deadline_ms: unix_ms(SystemTime::now() + timeout),
            invoked_function_arn: arn(&f.name),
            trace_id: format!(
                "Root=1-{:08x}-{}",
                unix_ms(SystemTime::now()) / 1000,
                &uuid::Uuid::new_v4().simple().to_string()[..24]
            ),
            client_context: input.client_context.clone(),
            cognito_identity: String::new(),
        };
        let outcome = inst.invoke(invoke, started + timeout, &mut log).await;
        let duration = started.elapsed();
        let mut out = InvokeOutput {
            status_code: 200,
            request_id: request_id.to_string(),
            ..Default::default()
        };
        match &outcome {
            Outcome::Response(p) => out.payload = p.clone(),
            Outcome::FunctionError(_, p) => {
                out.payload = p.clone();
                out.function_error = Some("Unhandled".into());
            }
            Outcome::Crashed {
                exit_code,
                signal,
                oom,
            } => {
                let (t, m) = if *oom {
                    (
                        "Runtime.OutOfMemory",
                        "Runtime exited with error: signal: killed".to_string(),
                    )
                } else {
                    ("Runtime.ExitError", exit_text(*exit_code, *signal))
                };
                let msg = format!("RequestId: {request_id} Error: {m}");
                log.extend_from_slice(format!("{msg}\n{t}\n").as_bytes());
                out.payload = error_doc(t, &msg);
                out.function_error = Some("Unhandled".into());
            }
            Outcome::TimedOut => {
                let msg = format!("Task timed out after {:.2} seconds", timeout.as_secs_f64());
                log.extend_from_slice(
                    format!(
                        "{} {request_id} {msg}\n",
                        crate::functions::rfc3339(unix_ms(SystemTime::now()) / 1000, 0)
                    )
                    .as_bytes(),
                );
                out.payload = error_doc(
                    "Sandbox.Timedout",
                    &format!("RequestId: {request_id} Error: {msg}"),
                );
                out.function_error = Some("Unhandled".into());
            }
        }
        if outcome.reusable() {
            self.pool.put(inst);
        } else {
            tokio::spawn(inst.destroy());
        }
        self.report(f, request_id, duration, init, &mut log);
        if input.log_tail {
            out.log_result = Some(tail(&log, LOG_TAIL));
        }
        self.logs.append(&f.name, &log);
        tracing::info!(
            duration_ms = duration.as_secs_f64() * 1e3,
            cold = init.is_some(),
            error = out.function_error.is_some(),
            "invocation finished"
        );
        Ok(out)
    }

    fn report(
        &self,
        f: &Function,
        request_id: &str,
        d: Duration,
        init: Option<Duration>,
        log: &mut Vec<u8>,
    ) {
        if !log.is_empty() && !log.ends_with(b"\n") {
            log.push(b'\n');
        }
        let billed = d.as_micros().div_ceil(1000);
        let mut line = format!(
            "END RequestId: {request_id}\nREPORT RequestId: {request_id}\tDuration: {:.2} ms\tBilled Duration: {billed} ms\tMemory Size: {} MB",
            d.as_secs_f64() * 1e3,
            f.memory_mb
        );
        if let Some(i) = init {
            line.push_str(&format!("\tInit Duration: {:.2} ms", i.as_secs_f64() * 1e3));
        }
        line.push('\n');
        log.extend_from_slice(line.as_bytes());
    }

    fn finish_failed_init(
        &self,
        f: &Function,
        request_id: &str,
        input: &InvokeInput,
        error_type: &str,
        payload: Vec<u8>,
        mut log: Vec<u8>,
    ) -> InvokeOutput {
        log.extend_from_slice(
            format!(
                "INIT_REPORT RequestId: {request_id} Status: error\tError Type: {error_type}\n"
            )
            .as_bytes(),
        );
        let out = InvokeOutput {
            status_code: 200,
            payload,
            function_error: Some("Unhandled".into()),
            log_result: input.log_tail.then(|| tail(&log, LOG_TAIL)),
            request_id: request_id.to_string(),
        };
        self.logs.append(&f.name, &log);
        out
    }
}
