//! What the invocation path tells the rest of the agent (metering, metrics): one
//! record per finished invocation, and every refusal by a limit.

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordedOutcome {
    /// The function returned a result.
    Success,
    /// The function raised or reported an error (its errorType).
    FunctionError(String),
    /// Init failed (its errorType, e.g. Runtime.ImportModuleError).
    InitError(String),
    /// The deadline passed.
    Timeout,
    /// The cgroup's OOM killer struck.
    OutOfMemory,
    /// The runtime exited or the sandbox died.
    Crash,
}

impl RecordedOutcome {
    /// The outcome's name in metering rows and metric labels.
    pub fn label(&self) -> &'static str {
        match self {
            RecordedOutcome::Success => "success",
            RecordedOutcome::FunctionError(_) => "function_error",
            RecordedOutcome::InitError(_) => "init_error",
            RecordedOutcome::Timeout => "timeout",
            RecordedOutcome::OutOfMemory => "out_of_memory",
            RecordedOutcome::Crash => "crash",
        }
    }

    /// Lambda's error type for the outcome; "" for success.
    pub fn error_type(&self) -> &str {
        match self {
            RecordedOutcome::Success => "",
            RecordedOutcome::FunctionError(t) | RecordedOutcome::InitError(t) => t,
            RecordedOutcome::Timeout => flint_proto::lambda::TIMED_OUT,
            RecordedOutcome::OutOfMemory => flint_proto::lambda::OUT_OF_MEMORY,
            RecordedOutcome::Crash => flint_proto::lambda::EXIT_ERROR,
        }
    }
}

/// One finished invocation.
#[derive(Debug, Clone)]
pub struct InvocationRecord {
    pub request_id: String,
    pub function: String,
    /// When the invocation started, Unix milliseconds.
    pub started_unix_ms: u64,
    /// Invoke sent until result (Lambda's Duration).
    pub duration_ns: u64,
    /// Duration rounded up to 1 ms.
    pub billed_ms: u64,
    /// The function's memory size.
    pub memory_mb: u32,
    /// Init phase of a cold start; 0 on a warm start.
    pub init_duration_ns: u64,
    pub cold_start: bool,
    pub pool_hit: bool,
    /// True for asynchronous (Event) invocations.
    pub asynchronous: bool,
    /// Which run of the request this is: 1, or the attempt of a queued event (each
    /// attempt is metered and billed, as in Lambda).
    pub attempt: u32,
    pub outcome: RecordedOutcome,
    /// `$LATEST` or the published version that ran.
    pub version: String,
}

impl InvocationRecord {
    /// Billed GB-seconds: billed duration x memory (MB / 1024).
    pub fn gb_seconds(&self) -> f64 {
        self.billed_ms as f64 / 1000.0 * f64::from(self.memory_mb) / 1024.0
    }
}

/// Told about invocations; implementations must be quick (they run on the
/// invocation path) and must not fail the invocation.
pub trait InvocationObserver: Send + Sync {
    /// An invocation finished.
    fn invocation(&self, rec: &InvocationRecord);
    /// An invocation was refused by a limit (`limit` names it, e.g. "reserved_concurrency").
    fn throttled(&self, function: &str, limit: &str);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gb_seconds_of_a_record() {
        let r = InvocationRecord {
            request_id: String::new(),
            function: "f".into(),
            started_unix_ms: 0,
            duration_ns: 1_500_000,
            billed_ms: 2,
            memory_mb: 512,
            init_duration_ns: 0,
            cold_start: false,
            pool_hit: false,
            asynchronous: false,
            attempt: 1,
            outcome: RecordedOutcome::Success,
            version: "$LATEST".into(),
        };
        assert!((r.gb_seconds() - 0.001).abs() < 1e-12);
    }
}
