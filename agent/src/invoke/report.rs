//! Reporting one invocation: Lambda's result document for how it ended, the
//! START/END/REPORT and INIT_REPORT log lines, the log tail (LogType Tail) and the
//! function's log file, and the record every observer (metering, metrics) receives.

use super::session::{InitFailure, InvokeResult};
use super::{InvokeOutput, Timings};
use crate::core::Agent;
use crate::limits::LOG_TAIL;
use crate::logs::{tail, Append};
use crate::observe::{InvocationRecord, RecordedOutcome};
use crate::store::Function;
use flint_proto::lambda::{self, error_doc, exit_message};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// What every report of one invocation needs.
pub(super) struct Reporting<'a> {
    pub function: &'a Function,
    /// `$LATEST` or the version number that ran.
    pub version: &'a str,
    pub request_id: &'a str,
    /// The caller asked for the log tail.
    pub log_tail: bool,
    /// An Event invocation.
    pub asynchronous: bool,
    /// Which run of the request (the attempt of a queued event; else 1).
    pub attempt: u32,
    pub started_unix_ms: u64,
}

/// An invocation that ran to an end.
pub(super) struct Ran {
    pub result: InvokeResult,
    /// The function's timeout.
    pub timeout: Duration,
    /// Invoke sent until the result (Lambda's Duration).
    pub duration: Duration,
    /// The start phases (zero when warm).
    pub timings: Timings,
    pub max_memory_mb: Option<u64>,
    /// The function's output, with the START line.
    pub log: Vec<u8>,
}

/// Lambda's billed duration: rounded up to the next millisecond.
fn billed_ms(d: Duration) -> u64 {
    d.as_nanos().div_ceil(1_000_000) as u64
}

/// The line that opens an invocation's log.
pub(super) fn start_line(request_id: &str, version: &str) -> String {
    format!("START RequestId: {request_id} Version: {version}\n")
}

/// The END and REPORT lines that close an invocation's log.
fn end_lines(
    request_id: &str,
    memory_mb: u32,
    duration: Duration,
    billed_ms: u64,
    init: Option<Duration>,
    max_memory_mb: Option<u64>,
) -> String {
    let mut line = format!(
        "END RequestId: {request_id}\nREPORT RequestId: {request_id}\tDuration: {:.2} ms\tBilled Duration: {billed_ms} ms\tMemory Size: {} MB",
        duration.as_secs_f64() * 1e3,
        memory_mb
    );
    if let Some(m) = max_memory_mb {
        line.push_str(&format!("\tMax Memory Used: {m} MB"));
    }
    if let Some(i) = init {
        line.push_str(&format!("\tInit Duration: {:.2} ms", i.as_secs_f64() * 1e3));
    }
    line.push('\n');
    line
}

/// Lambda's response for how the invocation ended: the payload, whether it is a
/// function error, and what the observers record. Crashes and timeouts also add
/// Lambda's lines to `log`.
fn respond(
    result: InvokeResult,
    request_id: &str,
    timeout: Duration,
    log: &mut Vec<u8>,
) -> (Vec<u8>, bool, RecordedOutcome) {
    match result {
        InvokeResult::Response(p) => (p, false, RecordedOutcome::Success),
        InvokeResult::FunctionError(t, p) => (p, true, RecordedOutcome::FunctionError(t)),
        InvokeResult::Crashed {
            exit_code,
            signal,
            oom,
        }
        | InvokeResult::ExitedIdle {
            exit_code,
            signal,
            oom,
        } => {
            let (t, m, recorded) = if oom {
                (
                    lambda::OUT_OF_MEMORY,
                    lambda::OUT_OF_MEMORY_MESSAGE.to_string(),
                    RecordedOutcome::OutOfMemory,
                )
            } else {
                (
                    lambda::EXIT_ERROR,
                    exit_message(exit_code, signal),
                    RecordedOutcome::Crash,
                )
            };
            let msg = format!("RequestId: {request_id} Error: {m}");
            log.extend_from_slice(format!("{msg}\n{t}\n").as_bytes());
            (error_doc(t, &msg), true, recorded)
        }
        InvokeResult::TimedOut => {
            let msg = format!("Task timed out after {:.2} seconds", timeout.as_secs_f64());
            let now_s = super::unix_ms(SystemTime::now()) / 1000;
            log.extend_from_slice(
                format!(
                    "{} {request_id} {msg}\n",
                    crate::timefmt::rfc3339_millis(now_s, 0)
                )
                .as_bytes(),
            );
            let doc = error_doc(
                lambda::TIMED_OUT,
                &format!("RequestId: {request_id} Error: {msg}"),
            );
            (doc, true, RecordedOutcome::Timeout)
        }
    }
}

impl Agent {
    /// The result, log and record of an invocation that ran.
    pub(super) async fn report_result(
        self: &Arc<Self>,
        r: &Reporting<'_>,
        ran: Ran,
    ) -> InvokeOutput {
        let Ran {
            result,
            timeout,
            duration,
            mut timings,
            max_memory_mb,
            mut log,
        } = ran;
        timings.duration_ns = duration.as_nanos() as u64;
        timings.billed_ms = billed_ms(duration);
        let (payload, function_error, outcome) = respond(result, r.request_id, timeout, &mut log);
        if !log.is_empty() && !log.ends_with(b"\n") {
            log.push(b'\n');
        }
        let init = timings
            .cold_start
            .then(|| Duration::from_nanos(timings.init_duration_ns));
        log.extend_from_slice(
            end_lines(
                r.request_id,
                r.function.memory_mb,
                duration,
                timings.billed_ms,
                init,
                max_memory_mb,
            )
            .as_bytes(),
        );
        let log_result = self.finish_log(r, log).await;
        self.record(&InvocationRecord {
            request_id: r.request_id.to_string(),
            function: r.function.name.clone(),
            started_unix_ms: r.started_unix_ms,
            duration_ns: timings.duration_ns,
            billed_ms: timings.billed_ms,
            memory_mb: r.function.memory_mb,
            init_duration_ns: timings.init_duration_ns,
            cold_start: timings.cold_start,
            pool_hit: timings.pool_hit,
            asynchronous: r.asynchronous,
            attempt: r.attempt,
            outcome,
            version: r.version.to_string(),
        });
        tracing::info!(
            duration_ms = duration.as_secs_f64() * 1e3,
            cold = timings.cold_start,
            error = function_error,
            "invocation finished"
        );
        InvokeOutput {
            status_code: 200,
            payload,
            function_error: function_error.then(|| "Unhandled".into()),
            log_result,
            request_id: r.request_id.to_string(),
            timings,
            executed_version: r.version.to_string(),
        }
    }

    /// The result, log and record of an invocation whose instance failed to
    /// initialise: a 200 response carrying the function error, as in Lambda.
    pub(super) async fn report_init_failure(
        self: &Arc<Self>,
        r: &Reporting<'_>,
        failure: InitFailure,
    ) -> InvokeOutput {
        let request_id = r.request_id;
        let (error_type, payload, mut log) = failure.into_parts(request_id);
        self.record(&InvocationRecord {
            request_id: request_id.to_string(),
            function: r.function.name.clone(),
            started_unix_ms: r.started_unix_ms,
            duration_ns: 0,
            billed_ms: 0,
            memory_mb: r.function.memory_mb,
            init_duration_ns: 0,
            cold_start: true,
            pool_hit: false,
            asynchronous: r.asynchronous,
            attempt: r.attempt,
            outcome: RecordedOutcome::InitError(error_type.clone()),
            version: r.version.to_string(),
        });
        log.extend_from_slice(
            format!(
                "INIT_REPORT RequestId: {request_id} Status: error\tError Type: {error_type}\n"
            )
            .as_bytes(),
        );
        let log_result = self.finish_log(r, log).await;
        InvokeOutput {
            status_code: 200,
            payload,
            function_error: Some("Unhandled".into()),
            log_result,
            request_id: request_id.to_string(),
            timings: Timings {
                cold_start: true,
                ..Default::default()
            },
            executed_version: r.version.to_string(),
        }
    }

    /// The log tail when asked for; hands the log to the log writer thread (no file
    /// I/O here). A synchronous call returns without waiting for the write (unless
    /// the writer's queue is full); an event's attempt waits until its log is in the
    /// file, so whoever sees the event finished also finds its log.
    async fn finish_log(self: &Arc<Self>, r: &Reporting<'_>, log: Vec<u8>) -> Option<String> {
        let log_result = r.log_tail.then(|| tail(&log, LOG_TAIL));
        let mut append = Append::new(&r.function.name, log);
        let written = r.asynchronous.then(|| {
            let (tx, rx) = tokio::sync::oneshot::channel();
            append.written = Some(tx);
            rx
        });
        if let Err(append) = self.logs().try_append(append) {
            self.blocking(move |agent| agent.logs().append(append))
                .await;
        }
        if let Some(written) = written {
            let _ = written.await;
        }
        log_result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn billed_duration_rounds_up_to_the_millisecond() {
        assert_eq!(billed_ms(Duration::from_nanos(1)), 1);
        assert_eq!(billed_ms(Duration::from_millis(3)), 3);
        assert_eq!(billed_ms(Duration::from_micros(3001)), 4);
        assert_eq!(billed_ms(Duration::ZERO), 0);
    }

    #[test]
    fn start_end_and_report_lines() {
        assert_eq!(
            start_line("r1", "$LATEST"),
            "START RequestId: r1 Version: $LATEST\n"
        );
        assert_eq!(start_line("r1", "3"), "START RequestId: r1 Version: 3\n");
        let warm = end_lines("r1", 256, Duration::from_micros(1500), 2, None, None);
        assert_eq!(
            warm,
            "END RequestId: r1\nREPORT RequestId: r1\tDuration: 1.50 ms\tBilled Duration: 2 ms\tMemory Size: 256 MB\n"
        );
        let cold = end_lines(
            "r1",
            256,
            Duration::from_millis(3),
            3,
            Some(Duration::from_millis(120)),
            Some(40),
        );
        assert!(
            cold.ends_with(
                "\tMemory Size: 256 MB\tMax Memory Used: 40 MB\tInit Duration: 120.00 ms\n"
            ),
            "{cold}"
        );
    }

    #[test]
    fn crashes_and_timeouts_are_worded_as_lambda_words_them() {
        let mut log = Vec::new();
        let oom = InvokeResult::Crashed {
            exit_code: -1,
            signal: 9,
            oom: true,
        };
        let (doc, err, rec) = respond(oom, "r1", Duration::from_secs(3), &mut log);
        assert!(err);
        assert_eq!(rec, RecordedOutcome::OutOfMemory);
        let doc: serde_json::Value = serde_json::from_slice(&doc).unwrap();
        assert_eq!(doc["errorType"], lambda::OUT_OF_MEMORY);
        assert_eq!(
            String::from_utf8(log).unwrap(),
            format!(
                "RequestId: r1 Error: {}\n{}\n",
                lambda::OUT_OF_MEMORY_MESSAGE,
                lambda::OUT_OF_MEMORY
            )
        );
        let mut log = Vec::new();
        let (doc, err, rec) = respond(
            InvokeResult::TimedOut,
            "r2",
            Duration::from_secs(3),
            &mut log,
        );
        assert!(err);
        assert_eq!(rec, RecordedOutcome::Timeout);
        let doc: serde_json::Value = serde_json::from_slice(&doc).unwrap();
        assert_eq!(
            doc["errorMessage"],
            "RequestId: r2 Error: Task timed out after 3.00 seconds"
        );
        assert!(String::from_utf8(log)
            .unwrap()
            .ends_with(" r2 Task timed out after 3.00 seconds\n"));
        let (doc, err, rec) = respond(
            InvokeResult::Response(b"{}".to_vec()),
            "r3",
            Duration::from_secs(3),
            &mut Vec::new(),
        );
        assert_eq!(
            (doc, err, rec),
            (b"{}".to_vec(), false, RecordedOutcome::Success)
        );
    }
}
