//! Validation of function settings. Every error names the field, the bad value and
//! what a valid one looks like.

use crate::limits::*;
use crate::pools::key::PoolKey;
use crate::sandbox::BackendLimits;
use std::collections::HashMap;

/// A function setting that is not acceptable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ValidationError {
    /// A network setting other than none or outbound
    #[error(transparent)]
    Network(#[from] crate::sandbox::network_mode::BadNetworkMode),
    /// Outbound network on a backend without it
    #[error("the {0} sandbox backend has no outbound networking yet: use network none, or run flintd with --sandbox namespace")]
    NoNetwork(&'static str),
    /// Bad function name
    #[error("invalid function name {0:?}: use 1-64 characters from A-Z, a-z, 0-9, '-' and '_'")]
    Name(String),
    /// Memory out of range
    #[error("memory size {0} MB is out of range: choose {MEMORY_MIN_MB}-{MEMORY_MAX_MB} MB")]
    Memory(u32),
    /// Ephemeral storage (/tmp) out of range
    #[error("ephemeral storage size {0} MB is out of range: choose {TMP_MB}-{TMP_MAX_MB} MB")]
    EphemeralStorage(u32),
    /// A /tmp size other than the default on a backend that cannot size it
    #[error("the {0} sandbox backend's /tmp is fixed at {TMP_MB} MB: use ephemeral storage {TMP_MB} MB, or run flintd with --sandbox namespace")]
    NoEphemeralSize(&'static str),
    /// Memory beyond what the sandbox backend can run
    #[error("memory size {memory_mb} MB exceeds the {backend} sandbox backend's limit of {max_mb} MB: choose at most {max_mb} MB (this agent runs functions with --sandbox {backend})")]
    BackendMemory {
        memory_mb: u32,
        backend: &'static str,
        max_mb: u32,
    },
    /// A `--pool-warm` pool the sandbox backend cannot start
    #[error("--pool-warm {runtime}:{memory_mb}: {reason}")]
    PoolWarm {
        runtime: String,
        memory_mb: u32,
        reason: Box<ValidationError>,
    },
    /// Timeout out of range
    #[error("timeout {0} s is out of range: choose {TIMEOUT_MIN_S}-{TIMEOUT_MAX_S} seconds")]
    Timeout(u32),
    /// Bad handler
    #[error("invalid handler {0:?}: give a non-empty string of at most {HANDLER_MAX} characters without spaces or control characters (such as NUL), e.g. \"app.handler\"")]
    Handler(String),
    /// Description too long
    #[error("description is {0} characters long: at most {DESCRIPTION_MAX} allowed")]
    Description(usize),
    /// Bad environment variable name
    #[error("invalid environment variable name {0:?}: start with a letter, then letters, digits and '_'")]
    EnvName(String),
    /// Reserved environment variable
    #[error("environment variable {0} is reserved: Lambda sets it in every sandbox, so a function may not; remove it")]
    EnvReserved(String),
    /// NUL byte in an environment value
    #[error("environment variable {0} holds a NUL byte, which a process environment cannot carry: remove it")]
    EnvNul(String),
    /// A variable both plain and secret
    #[error("environment variable {0} is both a plain and a secret variable: set it once")]
    EnvTwice(String),
    /// Environment too large
    #[error("environment variables take {0} bytes: at most {ENV_TOTAL_MAX} bytes (keys + values) allowed")]
    EnvSize(usize),
}

/// Checks a function name.
pub fn name(n: &str) -> Result<(), ValidationError> {
    let ok = !n.is_empty()
        && n.len() <= NAME_MAX
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ValidationError::Name(n.chars().take(80).collect()))
    }
}

/// Checks a memory size in MB.
pub fn memory(mb: u32) -> Result<(), ValidationError> {
    if (MEMORY_MIN_MB..=MEMORY_MAX_MB).contains(&mb) {
        Ok(())
    } else {
        Err(ValidationError::Memory(mb))
    }
}

/// Checks an ephemeral storage (/tmp) size in MB.
pub fn ephemeral_storage(mb: u32) -> Result<(), ValidationError> {
    if (TMP_MB..=TMP_MAX_MB).contains(&mb) {
        Ok(())
    } else {
        Err(ValidationError::EphemeralStorage(mb))
    }
}

/// Checks a memory size in MB against Lambda's range, then against what the sandbox
/// backend can run.
pub fn memory_on(mb: u32, backend: &BackendLimits) -> Result<(), ValidationError> {
    memory(mb)?;
    if mb > backend.max_memory_mb {
        return Err(ValidationError::BackendMemory {
            memory_mb: mb,
            backend: backend.backend,
            max_mb: backend.max_memory_mb,
        });
    }
    Ok(())
}

/// Checks the `--pool-warm` pools against the backend (a pool of sandboxes the
/// backend cannot start would retry every second, forever).
pub fn pool_warm<'a>(
    keys: impl IntoIterator<Item = &'a PoolKey>,
    backend: &BackendLimits,
) -> Result<(), ValidationError> {
    for k in keys {
        memory_on(k.memory_mb, backend).map_err(|reason| ValidationError::PoolWarm {
            runtime: k.runtime.clone(),
            memory_mb: k.memory_mb,
            reason: Box::new(reason),
        })?;
    }
    Ok(())
}

/// Checks a timeout in seconds.
pub fn timeout(s: u32) -> Result<(), ValidationError> {
    if (TIMEOUT_MIN_S..=TIMEOUT_MAX_S).contains(&s) {
        Ok(())
    } else {
        Err(ValidationError::Timeout(s))
    }
}

/// Checks a handler string.
pub fn handler(h: &str) -> Result<(), ValidationError> {
    let bad_char = |c: char| c.is_whitespace() || c.is_control();
    if h.is_empty() || h.len() > HANDLER_MAX || h.chars().any(bad_char) {
        Err(ValidationError::Handler(h.chars().take(140).collect()))
    } else {
        Ok(())
    }
}

/// Checks a description.
pub fn description(d: &str) -> Result<(), ValidationError> {
    let n = d.chars().count();
    if n > DESCRIPTION_MAX {
        Err(ValidationError::Description(n))
    } else {
        Ok(())
    }
}

/// Parses a function's network setting ("none" or "outbound").
pub fn network(s: &str) -> Result<crate::sandbox::NetworkMode, ValidationError> {
    Ok(s.parse()?)
}

/// Checks environment variables: names, reserved keys and total size.
pub fn environment(env: &HashMap<String, String>) -> Result<(), ValidationError> {
    let mut total = 0;
    for (k, v) in env {
        // Reserved first: `_HANDLER` is a bad name too, but "reserved" says why.
        if flint_proto::lambda::is_reserved_env(k) {
            return Err(ValidationError::EnvReserved(k.clone()));
        }
        let mut chars = k.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
        if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ValidationError::EnvName(k.chars().take(80).collect()));
        }
        if v.contains('\0') {
            return Err(ValidationError::EnvNul(k.clone()));
        }
        total += k.len() + v.len();
    }
    if total > ENV_TOTAL_MAX {
        return Err(ValidationError::EnvSize(total));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(name("hello-world_1").is_ok());
        assert!(name(&"a".repeat(64)).is_ok());
        for bad in [
            "",
            "has space",
            "slash/",
            "dot.name",
            &"a".repeat(65),
            "ünï",
        ] {
            assert!(name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn memory_and_timeout_bounds() {
        assert!(memory(128).is_ok() && memory(10240).is_ok());
        assert_eq!(memory(127), Err(ValidationError::Memory(127)));
        assert!(memory(10241).is_err());
        assert!(timeout(1).is_ok() && timeout(900).is_ok());
        assert!(timeout(0).is_err() && timeout(901).is_err());
    }

    #[test]
    fn ephemeral_storage_bounds() {
        assert!(ephemeral_storage(512).is_ok() && ephemeral_storage(10240).is_ok());
        assert_eq!(
            ephemeral_storage(511),
            Err(ValidationError::EphemeralStorage(511))
        );
        let e = ephemeral_storage(10241).unwrap_err().to_string();
        assert!(e.contains("10241 MB") && e.contains("512-10240 MB"), "{e}");
    }

    #[test]
    fn environment_rules() {
        let mut env = HashMap::new();
        env.insert("GREETING".to_string(), "hi".to_string());
        assert!(environment(&env).is_ok());
        env.insert("1BAD".to_string(), String::new());
        assert!(matches!(
            environment(&env),
            Err(ValidationError::EnvName(_))
        ));
        env.remove("1BAD");
        env.insert("AWS_REGION".to_string(), "x".to_string());
        assert_eq!(
            environment(&env),
            Err(ValidationError::EnvReserved("AWS_REGION".into()))
        );
        env.remove("AWS_REGION");
        // Set by flint-init in every sandbox: refused rather than silently overwritten.
        env.insert("TZ".to_string(), "Europe/Berlin".to_string());
        let err = environment(&env).unwrap_err();
        assert_eq!(err, ValidationError::EnvReserved("TZ".into()));
        assert!(err.to_string().contains("TZ is reserved"), "{err}");
        env.remove("TZ");
        env.insert("_HANDLER".to_string(), "x".to_string());
        assert_eq!(
            environment(&env),
            Err(ValidationError::EnvReserved("_HANDLER".into()))
        );
        env.remove("_HANDLER");
        // Defaults a function may replace, as in Lambda.
        for name in ["PATH", "LANG", "LD_LIBRARY_PATH"] {
            env.insert(name.to_string(), "x".to_string());
        }
        assert!(environment(&env).is_ok());
        for name in ["PATH", "LANG", "LD_LIBRARY_PATH"] {
            env.remove(name);
        }
        env.insert("BIG".to_string(), "x".repeat(5000));
        assert!(matches!(
            environment(&env),
            Err(ValidationError::EnvSize(_))
        ));
    }

    #[test]
    fn handler_rules() {
        assert!(handler("app.handler").is_ok());
        assert!(handler("").is_err());
        assert!(handler("a b").is_err());
        assert!(handler("app.hand\0ler").is_err());
        assert!(handler("app.\x07handler").is_err());
    }

    #[test]
    fn nul_in_environment_is_refused() {
        let env = HashMap::from([("GREETING".to_string(), "h\0i".to_string())]);
        assert_eq!(
            environment(&env),
            Err(ValidationError::EnvNul("GREETING".into()))
        );
        let env = HashMap::from([("GREE\0TING".to_string(), "hi".to_string())]);
        assert!(matches!(
            environment(&env),
            Err(ValidationError::EnvName(_))
        ));
    }

    #[test]
    fn memory_beyond_the_backend_is_refused_naming_its_limit() {
        let vm = BackendLimits {
            backend: "microvm",
            max_memory_mb: 3328,
        };
        assert!(memory_on(3328, &vm).is_ok());
        assert_eq!(
            memory_on(4096, &vm),
            Err(ValidationError::BackendMemory {
                memory_mb: 4096,
                backend: "microvm",
                max_mb: 3328
            })
        );
        let msg = memory_on(4096, &vm).unwrap_err().to_string();
        assert!(
            msg.contains("4096 MB exceeds the microvm sandbox backend's limit of 3328 MB"),
            "{msg}"
        );
        // Lambda's own range is checked first, and still applies.
        assert_eq!(memory_on(64, &vm), Err(ValidationError::Memory(64)));
        let ns = BackendLimits::lambda("namespace");
        assert!(memory_on(10240, &ns).is_ok());
        assert_eq!(memory_on(10241, &ns), Err(ValidationError::Memory(10241)));
    }

    #[test]
    fn a_warm_pool_beyond_the_backend_is_refused() {
        let vm = BackendLimits {
            backend: "microvm",
            max_memory_mb: 3328,
        };
        let key = |mb| PoolKey {
            runtime: "python3.11".into(),
            memory_mb: mb,
            network: crate::sandbox::NetworkMode::None,
        };
        let fine = [key(128), key(3328)];
        assert!(pool_warm(&fine, &vm).is_ok());
        let too_big = [key(128), key(4096)];
        let e = pool_warm(&too_big, &vm).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--pool-warm python3.11:4096: memory size 4096 MB exceeds the microvm sandbox \
             backend's limit of 3328 MB: choose at most 3328 MB (this agent runs functions \
             with --sandbox microvm)"
        );
        assert!(pool_warm(&too_big, &BackendLimits::lambda("namespace")).is_ok());
    }

    #[test]
    fn the_microvm_limit_is_flint_vmms() {
        assert_eq!(
            crate::sandbox::microvm::MAX_MEMORY_MB as u64,
            flint_vmm::config::MAX_MEM_MIB
        );
        assert_eq!(crate::sandbox::microvm::MAX_MEMORY_MB, 3328);
    }

    #[test]
    fn message_tells_what_to_fix() {
        let msg = memory(64).unwrap_err().to_string();
        assert!(msg.contains("128-10240"), "{msg}");
    }
}
