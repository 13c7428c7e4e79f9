//! Invocations: check the request, find or start an instance, run the function with
//! its deadline, turn the outcome into Lambda's result and log lines.

use crate::code::{CodeError, CodePin};
use crate::core::Agent;
use crate::instance::{Instance, Outcome, StartSpec};
use crate::limiter::Throttle;
use crate::limits::{ASYNC_PAYLOAD_MAX, INIT_TIMEOUT_S, LOG_TAIL, SYNC_PAYLOAD_MAX, TMP_MB};
use crate::logs::tail;
use crate::observe::{InvocationRecord, Outcome as Recorded};
use crate::occupancy::Phase;
use crate::runtimes::{Runtime, RuntimeError};
use crate::sandbox::{new_sandbox_id, SandboxSpec};
use crate::start_error::{StartError, StartTimings};
use crate::store::{Function, StoreError};
use crate::warm_pool::PoolKey;
use flint_proto::init::{Configure, Invoke};
use flint_proto::lambda::{self, error_doc, exit_message};
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
    pub timings: Timings,
}

/// Phase timings of one invocation (nanoseconds); start phases are zero when warm.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    pub cold_start: bool,
    pub pool_hit: bool,
    pub start: StartTimings,
    pub init_duration_ns: u64,
    pub duration_ns: u64,
    pub billed_ms: u64,
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
    /// A limit refused the invocation
    #[error(transparent)]
    Throttled(#[from] Throttle),
    /// An Event could not be stored durably, so it was not accepted
    #[error(transparent)]
    Queue(#[from] crate::events::QueueError),
}

/// An instance that failed to initialise: Lambda's error type and document, and the
/// output of its init phase.
struct InitFailure {
    error_type: String,
    payload: Vec<u8>,
    log: Vec<u8>,
}

fn throttle_name(t: &Throttle) -> &'static str {
    match t {
        Throttle::Reserved { .. } => "reserved_concurrency",
        Throttle::Unreserved { .. } => "concurrency_limit",
        Throttle::Rate { .. } => "rate_limit",
        Throttle::Starts { .. } => "start_queue",
        Throttle::HostMemory { .. } => "host_memory",
        Throttle::Draining => "draining",
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

/// Lambda's billed duration: rounded up to the next millisecond.
pub fn billed_ms(d: Duration) -> u64 {
    (d.as_nanos().div_ceil(1_000_000)) as u64
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
        if let Err(e) = crate::payload::check(&input.payload) {
            return Err(InvokeError::PayloadNotJson(e.to_string()));
        }
        if input.client_context.len() > CLIENT_CONTEXT_MAX {
            return Err(InvokeError::ClientContext(input.client_context.len()));
        }
        // The code stays pinned until the invocation ends: an update-code or delete
        // meanwhile cannot collect the bundle this invocation is about to load.
        let (f, code_pin) = self.pinned_function(&input.function_name)?;
        let request_id = new_request_id();
        // Events take no permit here: they wait in the queue (events/).
        let permit = if input.invocation_type != InvocationType::RequestResponse {
            None
        } else {
            match self.limiter.acquire(&f.name) {
                Ok(p) => Some(p),
                Err(t) => {
                    self.record_throttle(&f.name, throttle_name(&t));
                    return Err(t.into());
                }
            }
        };
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
                drop((permit, code_pin));
                self.enqueue_event(&f.name, request_id, &input).await
            }
            InvocationType::RequestResponse => {
                let span =
                    tracing::info_span!("invoke", function = %f.name, request_id = %request_id);
                let out = self.run(&f, &request_id, &input).instrument(span).await;
                drop(code_pin);
                out
            }
        }
    }

    /// One attempt of a queued event (see event_runner.rs): the synchronous path
    /// with the event's own request id, taking a permit like any invocation.
    pub(crate) async fn run_queued(
        &self,
        input: &InvokeInput,
        request_id: &str,
    ) -> Result<InvokeOutput, InvokeError> {
        let (f, code_pin) = self.pinned_function(&input.function_name)?;
        let _permit = self.limiter.acquire(&f.name).inspect_err(|t| {
            self.record_throttle(&f.name, throttle_name(t));
        })?;
        let out = self.run(&f, request_id, input).await;
        drop(code_pin);
        out
    }

    /// The function's current row with its code bundle pinned, in one read (see
    /// [`crate::code::CodeStore::read_pinned`]).
    fn pinned_function(&self, name: &str) -> Result<(Function, CodePin), StoreError> {
        self.code
            .read_pinned(|| self.store.get(name), |f| &f.code_sha256)
    }

    /// What flint-init needs to make a sandbox an instance of `f`.
    fn configure_for(&self, f: &Function, rt: &Runtime) -> Result<Configure, InvokeError> {
        let code_zip = match self.code.get(&f.code_sha256) {
            Ok(z) => z,
            // Deleted (or its code replaced) since this invocation read it: a
            // deleted function is NOT_FOUND, as if the call had come a moment later.
            Err(CodeError::Missing(sha)) => {
                self.store.get(&f.name)?;
                return Err(CodeError::Missing(sha).into());
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Configure {
            function_name: f.name.clone(),
            function_version: "$LATEST".into(),
            handler: f.handler.clone(),
            memory_mb: f.memory_mb,
            timeout_s: f.timeout_s,
            environment: f.environment.clone(),
            code_zip,
            bootstrap: rt.manifest.bootstrap.clone(),
            runtime: rt.manifest.name.clone(),
            function_arn: self.arn(&f.name),
            tmp_mb: TMP_MB,
            log_group: format!("/flint/lambda/{}", f.name),
            log_stream: String::new(),
        })
    }

    /// A new instance of `f`: from the warm pool when it has a sandbox ready, else
    /// from a sandbox made now.
    async fn start_instance(&self, f: &Function) -> Result<Instance, InvokeError> {
        let rt = self.runtime(&f.runtime)?;
        let init_timeout = Duration::from_secs(INIT_TIMEOUT_S);
        let err = |source| InvokeError::Sandbox {
            function: f.name.clone(),
            source,
        };
        let key = PoolKey {
            runtime: rt.manifest.name.clone(),
            memory_mb: f.memory_mb,
        };
        if let Some(conn) = self.warm_pool.take(&key) {
            let configure = self.configure_for(f, &rt)?;
            match Instance::from_pool(conn, configure, &f.name, f.revision, init_timeout).await {
                Ok(i) => return Ok(i),
                // The function's own init failed: starting afresh would fail the same way.
                Err(e @ (StartError::Init { .. } | StartError::Timeout(..))) => return Err(err(e)),
                Err(e) => {
                    tracing::warn!(error = %e, "warm pool sandbox unusable; starting a new one");
                }
            }
        }
        let spec = StartSpec {
            sandbox: SandboxSpec {
                id: new_sandbox_id(),
                rootfs: rt.rootfs.clone(),
                memory_mb: f.memory_mb,
            },
            configure: self.configure_for(f, &rt)?,
            function: &f.name,
            revision: f.revision,
        };
        Instance::start(self.backend.as_ref(), spec, init_timeout)
            .await
            .map_err(err)
    }

    /// A new instance of `f`, started once the start scheduler admits it.
    async fn start_admitted(&self, f: &Function) -> Result<Instance, InvokeError> {
        let _slot = match self.start_gate.enter().await {
            Ok(slot) => slot,
            Err(t) => {
                tracing::info!(error = %t, "cold start refused");
                self.record_throttle(&f.name, throttle_name(&t));
                return Err(t.into());
            }
        };
        self.start_instance(f).await
    }

    /// The synchronous path (also run in the background for events).
    async fn run(
        &self,
        f: &Function,
        request_id: &str,
        input: &InvokeInput,
    ) -> Result<InvokeOutput, InvokeError> {
        let mut log = Vec::new();
        let started_unix_ms = unix_ms(SystemTime::now());
        let mut timings = Timings::default();
        let warm = self.pool.take(&f.name, f.revision);
        let starting = warm
            .is_none()
            .then(|| self.occupancy.enter(&f.name, Phase::Starting, f.memory_mb));
        let (mut inst, init) = match warm {
            Some(i) => (i, None),
            None => match self.start_admitted(f).await {
                Ok(mut i) => {
                    log.append(&mut i.take_output());
                    let d = i.init_duration;
                    timings.cold_start = true;
                    timings.pool_hit = i.pool_hit;
                    timings.start = i.timings;
                    timings.init_duration_ns = d.as_nanos() as u64;
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
                    let failure = InitFailure {
                        error_type,
                        payload,
                        log: init_log,
                    };
                    return Ok(self.finish_failed_init(
                        f,
                        request_id,
                        input,
                        started_unix_ms,
                        failure,
                    ));
                }
                Err(InvokeError::Sandbox {
                    source: StartError::Timeout(t, init_log),
                    ..
                }) => {
                    let msg = format!(
                        "RequestId: {request_id} Error: Init timed out after {:.2} seconds",
                        t.as_secs_f64()
                    );
                    let failure = InitFailure {
                        error_type: lambda::TIMED_OUT.into(),
                        payload: error_doc(lambda::TIMED_OUT, &msg),
                        log: init_log,
                    };
                    return Ok(self.finish_failed_init(
                        f,
                        request_id,
                        input,
                        started_unix_ms,
                        failure,
                    ));
                }
                Err(e) => return Err(e),
            },
        };
        let _busy = self.occupancy.enter(&f.name, Phase::Busy, f.memory_mb);
        drop(starting);
        // Any output the instance produced while idle belongs before this invocation.
        log.append(&mut inst.take_output());
        log.extend_from_slice(
            format!("START RequestId: {request_id} Version: $LATEST\n").as_bytes(),
        );
        let started = Instant::now();
        let timeout = Duration::from_secs(u64::from(f.timeout_s));
        let invoke = Invoke {
            request_id: request_id.to_string(),
            payload: input.payload.clone(),
            deadline_ms: unix_ms(SystemTime::now() + timeout),
            invoked_function_arn: self.arn(&f.name),
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
        timings.duration_ns = duration.as_nanos() as u64;
        timings.billed_ms = billed_ms(duration);
        let mut out = InvokeOutput {
            status_code: 200,
            request_id: request_id.to_string(),
            timings,
            ..Default::default()
        };
        let recorded = match &outcome {
            Outcome::Response(_) => Recorded::Success,
            Outcome::FunctionError(t, _) => Recorded::FunctionError(t.clone()),
            Outcome::Crashed { oom: true, .. } => Recorded::OutOfMemory,
            Outcome::Crashed { .. } => Recorded::Crash,
            Outcome::TimedOut => Recorded::Timeout,
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
                        lambda::OUT_OF_MEMORY,
                        lambda::OUT_OF_MEMORY_MESSAGE.to_string(),
                    )
                } else {
                    (lambda::EXIT_ERROR, exit_message(*exit_code, *signal))
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
                        crate::timefmt::rfc3339_millis(unix_ms(SystemTime::now()) / 1000, 0)
                    )
                    .as_bytes(),
                );
                out.payload = error_doc(
                    lambda::TIMED_OUT,
                    &format!("RequestId: {request_id} Error: {msg}"),
                );
                out.function_error = Some("Unhandled".into());
            }
        }
        let max_memory_mb = inst.max_memory_used_mb();
        if outcome.reusable() {
            self.pool.put(inst);
        } else {
            tokio::spawn(inst.destroy());
        }
        self.report(f, request_id, duration, init, max_memory_mb, &mut log);
        if input.log_tail {
            out.log_result = Some(tail(&log, LOG_TAIL));
        }
        self.logs.append(&f.name, &log);
        self.record(&InvocationRecord {
            request_id: request_id.to_string(),
            function: f.name.clone(),
            started_unix_ms,
            duration_ns: timings.duration_ns,
            billed_ms: timings.billed_ms,
            memory_mb: f.memory_mb,
            init_duration_ns: timings.init_duration_ns,
            cold_start: timings.cold_start,
            pool_hit: timings.pool_hit,
            asynchronous: input.invocation_type == InvocationType::Event,
            outcome: recorded,
        });
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
        max_memory_mb: Option<u64>,
        log: &mut Vec<u8>,
    ) {
        if !log.is_empty() && !log.ends_with(b"\n") {
            log.push(b'\n');
        }
        let billed = billed_ms(d);
        let mut line = format!(
            "END RequestId: {request_id}\nREPORT RequestId: {request_id}\tDuration: {:.2} ms\tBilled Duration: {billed} ms\tMemory Size: {} MB",
            d.as_secs_f64() * 1e3,
            f.memory_mb
        );
        if let Some(m) = max_memory_mb {
            line.push_str(&format!("\tMax Memory Used: {m} MB"));
        }
        if let Some(i) = init {
            line.push_str(&format!("\tInit Duration: {:.2} ms", i.as_secs_f64() * 1e3));
        }
        line.push('\n');
        log.extend_from_slice(line.as_bytes());
    }

    fn failed_init_record(
        &self,
        f: &Function,
        request_id: &str,
        input: &InvokeInput,
        started_unix_ms: u64,
        error_type: &str,
    ) -> InvocationRecord {
        InvocationRecord {
            request_id: request_id.to_string(),
            function: f.name.clone(),
            started_unix_ms,
            duration_ns: 0,
            billed_ms: 0,
            memory_mb: f.memory_mb,
            init_duration_ns: 0,
            cold_start: true,
            pool_hit: false,
            asynchronous: input.invocation_type == InvocationType::Event,
            outcome: Recorded::InitError(error_type.to_string()),
        }
    }

    /// Result, log and record of an invocation whose instance failed to initialise.
    fn finish_failed_init(
        &self,
        f: &Function,
        request_id: &str,
        input: &InvokeInput,
        started_unix_ms: u64,
        failure: InitFailure,
    ) -> InvokeOutput {
        let InitFailure {
            error_type,
            payload,
            mut log,
        } = failure;
        self.record(&self.failed_init_record(f, request_id, input, started_unix_ms, &error_type));
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
            timings: Timings {
                cold_start: true,
                ..Default::default()
            },
        };
        self.logs.append(&f.name, &log);
        out
    }
}
