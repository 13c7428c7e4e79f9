//! Lambda's vocabulary that flintd and flint-init must agree on. Plain constants: no
//! feature needed, so flint-init (built without `api`) shares them.

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
    fn reserved_names_are_exact() {
        assert!(is_reserved_env("TZ"));
        assert!(is_reserved_env("AWS_LAMBDA_RUNTIME_API"));
        assert!(!is_reserved_env("PATH"));
        assert!(!is_reserved_env("tz"));
        assert!(!is_reserved_env("MY_TZ"));
    }
}
