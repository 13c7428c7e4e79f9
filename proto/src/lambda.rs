//! Lambda's vocabulary that flintd and flint-init must agree on: error types, the
//! "Runtime exited with error" message, error documents and the reserved environment
//! variables. No feature needed, so flint-init (built without `api`) shares them.

/// The only version Flint runs: a function's current code and configuration.
pub const LATEST: &str = "$LATEST";

/// The runtime exited (or the sandbox died) during init or an invocation.
pub const EXIT_ERROR: &str = "Runtime.ExitError";
/// The cgroup's OOM killer ended the runtime.
pub const OUT_OF_MEMORY: &str = "Runtime.OutOfMemory";
/// Init or the invocation ran past its deadline.
pub const TIMED_OUT: &str = "Sandbox.Timedout";
/// The function's response exceeded the payload limit.
pub const RESPONSE_TOO_LARGE: &str = "Function.ResponseSizeTooLarge";
/// The runtime asked for the next invocation without answering the one it held.
pub const NO_RESPONSE: &str = "Runtime.NoResponse";
/// The sandbox itself could not be prepared.
pub const SANDBOX_SETUP_ERROR: &str = "Runtime.SandboxSetupError";
/// The code bundle could not be unpacked.
pub const INVALID_ZIP: &str = "Runtime.InvalidZipFileException";
/// The bootstrap could not be executed.
pub const INVALID_ENTRYPOINT: &str = "Runtime.InvalidEntrypoint";
/// What the OOM killer's SIGKILL looks like in Lambda's words.
pub const OUT_OF_MEMORY_MESSAGE: &str = "Runtime exited with error: signal: killed";

/// Lambda's wording for a runtime that exited with `exit_code` or was killed by
/// `signal` (when > 0): "Runtime exited with error: signal: killed", "Runtime exited
/// with error: exit status 3".
pub fn exit_message(exit_code: i32, signal: i32) -> String {
    if signal > 0 {
        format!("Runtime exited with error: signal: {}", signal_name(signal))
    } else {
        format!("Runtime exited with error: exit status {exit_code}")
    }
}

/// A Linux signal (x86-64 and aarch64 numbering) described as Lambda's runtime
/// describes it (the wording of Go's signal strings, which Lambda's own messages carry:
/// "signal: killed", "signal: segmentation fault"); the number for anything else.
fn signal_name(signal: i32) -> String {
    const NAMES: [&str; 31] = [
        "hangup",
        "interrupt",
        "quit",
        "illegal instruction",
        "trace/breakpoint trap",
        "aborted",
        "bus error",
        "floating point exception",
        "killed",
        "user defined signal 1",
        "segmentation fault",
        "user defined signal 2",
        "broken pipe",
        "alarm clock",
        "terminated",
        "stack fault",
        "child exited",
        "continued",
        "stopped (signal)",
        "stopped",
        "stopped (tty input)",
        "stopped (tty output)",
        "urgent I/O condition",
        "CPU time limit exceeded",
        "file size limit exceeded",
        "virtual timer expired",
        "profiling timer expired",
        "window changed",
        "I/O possible",
        "power failure",
        "bad system call",
    ];
    usize::try_from(signal - 1)
        .ok()
        .and_then(|i| NAMES.get(i))
        .map_or_else(|| signal.to_string(), |n| n.to_string())
}

/// A Lambda error document: `{"errorMessage": .., "errorType": ..}`.
pub fn error_doc(error_type: &str, message: &str) -> Vec<u8> {
    serde_json::json!({ "errorType": error_type, "errorMessage": message })
        .to_string()
        .into_bytes()
}

/// Environment variables Lambda sets in every sandbox and a function may not set:
/// flintd refuses them in a function's configuration and flint-init sets them (or
/// drops them, for the credentials and the trace id Flint does not provide).
///
/// `LANG`, `PATH` and `LD_LIBRARY_PATH` are not here: as in Lambda, flint-init gives
/// them defaults that a function's own value replaces.
pub const RESERVED_ENV: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
    "TZ",
];

/// True when a function may not set `name` (see [`RESERVED_ENV`]).
pub fn is_reserved_env(name: &str) -> bool {
    RESERVED_ENV.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_messages_match_lambda() {
        assert_eq!(
            exit_message(0, 9),
            "Runtime exited with error: signal: killed"
        );
        assert_eq!(exit_message(0, 9), OUT_OF_MEMORY_MESSAGE);
        assert_eq!(
            exit_message(3, 0),
            "Runtime exited with error: exit status 3"
        );
        assert_eq!(
            exit_message(0, 11),
            "Runtime exited with error: signal: segmentation fault"
        );
        assert_eq!(
            exit_message(0, 6),
            "Runtime exited with error: signal: aborted"
        );
        assert_eq!(
            exit_message(0, 15),
            "Runtime exited with error: signal: terminated"
        );
        assert_eq!(
            exit_message(0, 19),
            "Runtime exited with error: signal: stopped (signal)"
        );
        assert_eq!(
            exit_message(0, 31),
            "Runtime exited with error: signal: bad system call"
        );
        assert_eq!(exit_message(0, 40), "Runtime exited with error: signal: 40");
    }

    #[test]
    fn error_documents_are_lambdas_shape() {
        let doc: serde_json::Value =
            serde_json::from_slice(&error_doc(TIMED_OUT, "Task \"timed\" out")).unwrap();
        assert_eq!(doc["errorType"], "Sandbox.Timedout");
        assert_eq!(doc["errorMessage"], "Task \"timed\" out");
        assert_eq!(doc.as_object().unwrap().len(), 2);
    }

    #[test]
    fn reserved_names_are_exact() {
        assert!(is_reserved_env("TZ"));
        assert!(is_reserved_env("AWS_LAMBDA_RUNTIME_API"));
        assert!(!is_reserved_env("PATH"));
        assert!(!is_reserved_env("tz"));
        assert!(!is_reserved_env("MY_TZ"));
    }
}
