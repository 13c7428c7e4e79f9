//! The runtime's environment: the function's own variables, then the reserved Lambda
//! variables set by init, which always win.

use flint_proto::init::Configure;
use std::collections::BTreeMap;

/// Address of the Runtime API as the runtime sees it.
pub const RUNTIME_API: &str = "127.0.0.1:9001";

/// Builds the runtime's environment from `cfg`. Variables the kernel could not pass
/// (empty names, names with '=' or NUL, values with NUL) are dropped.
pub fn compose(cfg: &Configure) -> Vec<(String, String)> {
    let mut env: BTreeMap<String, String> = cfg
        .environment
        .iter()
        .filter(|(k, v)| valid(k, v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in reserved(cfg) {
        env.insert(k.to_string(), v);
    }
    env.into_iter().collect()
}

/// The environment of a runtime started before its function is known (warm pool):
/// the reserved variables that do not depend on the function.
pub fn generic(runtime: &str, memory_mb: u32) -> Vec<(String, String)> {
    let cfg = Configure {
        runtime: runtime.to_string(),
        memory_mb,
        function_version: "$LATEST".into(),
        ..Default::default()
    };
    reserved(&cfg)
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

fn valid(name: &str, value: &str) -> bool {
    !name.is_empty() && !name.contains(['=', '\0']) && !value.contains('\0')
}

fn reserved(cfg: &Configure) -> Vec<(&'static str, String)> {
    let mut vars = vec![
        ("_HANDLER", cfg.handler.clone()),
        ("AWS_LAMBDA_FUNCTION_NAME", cfg.function_name.clone()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", cfg.memory_mb.to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION", cfg.function_version.clone()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", cfg.log_group.clone()),
        ("AWS_LAMBDA_LOG_STREAM_NAME", cfg.log_stream.clone()),
        ("AWS_LAMBDA_RUNTIME_API", RUNTIME_API.into()),
        ("AWS_REGION", "local".into()),
        ("AWS_DEFAULT_REGION", "local".into()),
        ("LAMBDA_TASK_ROOT", "/var/task".into()),
        ("LAMBDA_RUNTIME_DIR", "/var/runtime".into()),
        ("LANG", "en_US.UTF-8".into()),
        ("TZ", ":UTC".into()),
        ("PATH", "/usr/local/bin:/usr/bin:/bin:/opt/bin".into()),
        (
            "LD_LIBRARY_PATH",
            "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib"
                .into(),
        ),
    ];
    if !cfg.runtime.is_empty() {
        vars.push(("AWS_EXECUTION_ENV", format!("AWS_Lambda_{}", cfg.runtime)));
    }
    vars.into_iter()
        .map(|(k, v)| (k, v.replace('\0', "")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
        env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    fn cfg() -> Configure {
        Configure {
            function_name: "fn1".into(),
            function_version: "$LATEST".into(),
            handler: "app.handler".into(),
            memory_mb: 256,
            runtime: "python3.11".into(),
            log_group: "/aws/lambda/fn1".into(),
            log_stream: "2026/11/27/[$LATEST]abc".into(),
            ..Default::default()
        }
    }

    #[test]
    fn reserved_variables_override_the_functions_own() {
        let mut c = cfg();
        c.environment.insert("PATH".into(), "/evil".into());
        c.environment
            .insert("AWS_LAMBDA_RUNTIME_API".into(), "1.2.3.4:1".into());
        c.environment.insert("_HANDLER".into(), "x".into());
        c.environment.insert("MY_VAR".into(), "mine".into());
        let env = compose(&c);
        assert_eq!(
            get(&env, "PATH"),
            Some("/usr/local/bin:/usr/bin:/bin:/opt/bin")
        );
        assert_eq!(get(&env, "AWS_LAMBDA_RUNTIME_API"), Some("127.0.0.1:9001"));
        assert_eq!(get(&env, "_HANDLER"), Some("app.handler"));
        assert_eq!(get(&env, "MY_VAR"), Some("mine"));
        assert_eq!(env.iter().filter(|(k, _)| k == "PATH").count(), 1);
    }

    #[test]
    fn reserved_values_come_from_configure() {
        let env = compose(&cfg());
        assert_eq!(
            get(&env, "AWS_EXECUTION_ENV"),
            Some("AWS_Lambda_python3.11")
        );
        assert_eq!(get(&env, "AWS_LAMBDA_FUNCTION_NAME"), Some("fn1"));
        assert_eq!(get(&env, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"), Some("256"));
        assert_eq!(get(&env, "AWS_LAMBDA_FUNCTION_VERSION"), Some("$LATEST"));
        assert_eq!(
            get(&env, "AWS_LAMBDA_INITIALIZATION_TYPE"),
            Some("on-demand")
        );
        assert_eq!(
            get(&env, "AWS_LAMBDA_LOG_GROUP_NAME"),
            Some("/aws/lambda/fn1")
        );
        assert_eq!(get(&env, "AWS_REGION"), Some("local"));
        assert_eq!(get(&env, "AWS_DEFAULT_REGION"), Some("local"));
        assert_eq!(get(&env, "LAMBDA_TASK_ROOT"), Some("/var/task"));
        assert_eq!(get(&env, "TZ"), Some(":UTC"));
        assert!(get(&env, "LD_LIBRARY_PATH")
            .unwrap()
            .starts_with("/var/lang/lib:"));
    }

    #[test]
    fn unpassable_variables_are_dropped() {
        let mut c = cfg();
        c.environment.insert("A=B".into(), "1".into());
        c.environment.insert(String::new(), "1".into());
        c.environment.insert("NUL".into(), "a\0b".into());
        c.environment.insert("OK".into(), "fine".into());
        let env = compose(&c);
        assert_eq!(get(&env, "OK"), Some("fine"));
        assert!(env.iter().all(|(k, v)| valid(k, v)));
        assert_eq!(get(&env, "NUL"), None);
    }
}
