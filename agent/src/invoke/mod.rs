//! One invocation, as a short orchestrator: admit -> place -> execute -> report.
//!
//! - `admit.rs`: payload, JSON and client-context checks, the function's row (code
//!   pinned), the limiter's permit;
//! - `place.rs`: an idle instance, a pre-started sandbox, or a new sandbox; a failed
//!   init comes back as a value ([`session::Started::InitFailed`]);
//! - `session.rs`: the flint.init.v1 conversation with one instance;
//! - `report.rs`: Lambda's result, the START/END/REPORT lines, the log tail and file,
//!   the invocation record for the observers;
//! - `events.rs`: asynchronous (Event) invocations: stored in the durable queue
//!   (`crate::events`) before the 202, each attempt run back through `run`.

mod admit;
mod events;
mod place;
mod report;
mod send_fd;
pub(crate) mod session;

use crate::code::CodeError;
use crate::core::Agent;
use crate::limiter::Throttle;
use crate::pools::occupancy::Phase;
use crate::runtimes::RuntimeError;
use crate::store::{Function, StoreError};
use admit::{Admitted, CLIENT_CONTEXT_MAX};
use flint_proto::init::Invoke;
#[cfg(test)]
pub(crate) use place::instance_revision as place_revision;
use place::Placed;
use report::{Ran, Reporting};
use session::{InvokeResult, Session, StartError, StartTimings};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::Instrument;

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
    /// The version that ran (`$LATEST` or a number; an alias has drawn it); empty
    /// when nothing ran.
    pub executed_version: String,
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
    /// No sandbox could be started (a function whose init fails is not this: that
    /// is a 200 response with a function error)
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
    /// The function's role credentials or secret environment could not be prepared
    #[error("could not prepare the function's credentials or secrets: {0}")]
    Role(#[from] crate::roles::RoleError),
    /// An Event refused: the data directory's disk is below `--min-free-disk-mb`
    #[error(transparent)]
    LowDisk(#[from] crate::disk::LowDisk),
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

impl Agent {
    /// Runs (or queues, or checks) one invocation.
    pub async fn invoke(self: &Arc<Self>, input: InvokeInput) -> Result<InvokeOutput, InvokeError> {
        self.invoke_as(input, uuid::Uuid::new_v4().to_string())
            .await
    }

    /// [`Agent::invoke`] under a request id the caller chose (an HTTP function URL
    /// puts it in the event and the response too).
    pub async fn invoke_as(
        self: &Arc<Self>,
        input: InvokeInput,
        request_id: String,
    ) -> Result<InvokeOutput, InvokeError> {
        let admitted = self.admit(input, request_id).await?;
        match admitted.input.invocation_type {
            InvocationType::DryRun => {
                self.runtime(&admitted.function.runtime)?;
                Ok(InvokeOutput {
                    status_code: 204,
                    request_id: admitted.request_id,
                    executed_version: admitted.version,
                    ..Default::default()
                })
            }
            InvocationType::Event => events::enqueue(self, admitted).await,
            InvocationType::RequestResponse => {
                let span = tracing::info_span!("invoke", function = %admitted.function.name, version = %admitted.version, request_id = %admitted.request_id);
                self.run(admitted).instrument(span).await
            }
        }
    }

    /// An admitted invocation: place -> execute -> report (run in the background for
    /// events). The permit and the code pin are held until it returns.
    async fn run(self: &Arc<Self>, admitted: Admitted) -> Result<InvokeOutput, InvokeError> {
        let Admitted {
            input,
            function: f,
            version,
            qualifier,
            code_pin: _code_pin,
            permit: _permit,
            request_id,
            attempt,
        } = admitted;
        let reporting = Reporting {
            function: &f,
            version: &version,
            request_id: &request_id,
            log_tail: input.log_tail,
            asynchronous: input.invocation_type == InvocationType::Event,
            attempt,
            started_unix_ms: unix_ms(SystemTime::now()),
        };
        // The context's invoked_function_arn is the ARN the caller used.
        let invoked_arn = match &qualifier {
            Some(q) => format!("{}:{q}", self.arn(&f.name)),
            None => self.arn(&f.name),
        };
        let mut input = input;
        let mut retried = false;
        loop {
            let mut timings = Timings::default();
            let (mut session, mut log, starting, refill) =
                match self.place(&f, &version, &mut timings).await? {
                    Placed::Ready {
                        session,
                        init_log,
                        starting,
                        refill,
                    } => (*session, init_log, starting, refill),
                    Placed::InitFailed(failure) => {
                        return Ok(self.report_init_failure(&reporting, failure).await);
                    }
                };
            let _busy = self.occupancy().enter(&f.name, Phase::Busy, f.memory_mb);
            // A warm instance's runtime may have exited right after its last result,
            // before flintd saw the exit: the invocation then goes to a new instance,
            // once, so a copy is kept.
            let again = (starting.is_none() && !retried).then(|| input.clone());
            drop(starting);
            // Any output the instance produced while idle belongs before this invocation.
            log.append(&mut session.take_output());
            let ran = self
                .execute(
                    &mut session,
                    (&f, &version, invoked_arn.clone()),
                    request_id.clone(),
                    input,
                    timings,
                    log,
                )
                .await;
            // A pool hit's first invocation has ended: its pool refills now.
            drop(refill);
            self.release(session, &ran.result);
            if let (InvokeResult::ExitedIdle { .. }, Some(again)) = (&ran.result, again) {
                tracing::info!(
                    "the warm instance's runtime had exited; a new instance takes the invocation"
                );
                input = again;
                retried = true;
                continue;
            }
            return Ok(self.report_result(&reporting, ran).await);
        }
    }

    /// Sends the invocation to `session` and waits for its end (or its deadline).
    /// `target` is the configuration, its version and the ARN the caller invoked.
    async fn execute(
        &self,
        session: &mut Session,
        target: (&Function, &str, String),
        request_id: String,
        input: InvokeInput,
        timings: Timings,
        mut log: Vec<u8>,
    ) -> Ran {
        let (f, version, invoked_function_arn) = target;
        log.extend_from_slice(report::start_line(&request_id, version).as_bytes());
        let timeout = Duration::from_secs(u64::from(f.timeout_s));
        let invoke = Invoke {
            request_id,
            payload: input.payload,
            deadline_ms: unix_ms(SystemTime::now() + timeout),
            invoked_function_arn,
            trace_id: trace_id(),
            client_context: input.client_context,
            cognito_identity: String::new(),
        };
        let started = Instant::now();
        let result = session.invoke(invoke, started + timeout, &mut log).await;
        Ran {
            result,
            timeout,
            duration: started.elapsed(),
            timings,
            max_memory_mb: session.max_memory_used_mb(),
            log,
        }
    }

    /// Gives a reusable instance back to the idle instances; destroys the others.
    fn release(&self, session: Session, result: &InvokeResult) {
        if result.reusable() {
            self.idle().put(session);
        } else {
            tokio::spawn(session.destroy());
        }
    }
}

/// A new X-Ray trace id in Lambda's format: `Root=1-<unix seconds, hex>-<24 hex>`.
fn trace_id() -> String {
    format!(
        "Root=1-{:08x}-{}",
        unix_ms(SystemTime::now()) / 1000,
        &uuid::Uuid::new_v4().simple().to_string()[..24]
    )
}
