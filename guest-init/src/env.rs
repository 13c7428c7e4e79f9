//! The runtime's environment: defaults (`LANG`, `PATH`, `LD_LIBRARY_PATH`), then the
//! function's own variables, then the reserved Lambda variables set by init, which
//! always win. The reserved names are flint_proto's list, the one flintd validates
//! against, so a variable flintd accepts is never silently overwritten here.

use flint_proto::init::Configure;
use flint_proto::lambda::is_reserved_env;
use std::collections::BTreeMap;

/// Address of the Runtime API as the runtime sees it.
pub const RUNTIME_API: &str = "127.0.0.1:9001";

/// Address of the credentials endpoint and Lambda API proxy (aws_local.rs), served
/// for functions with an execution role.
pub const LOCAL_API: &str = "127.0.0.1:9002";

/// Builds the runtime's environment from `cfg`. Variables the kernel could not pass
/// (empty names, names with '=' or NUL, values with NUL) are dropped, and so are
/// reserved names (flintd refuses them; this is the guest's own guard).
pub fn compose(cfg: &Configure) -> Vec<(String, String)> {
    let mut env: BTreeMap<String, String> = defaults()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if cfg.credentials.is_some() {
        // A default the function's own value replaces (an SDK reads it: boto3 from 1.28).
        env.insert(
            "AWS_ENDPOINT_URL_LAMBDA".into(),
            format!("http://{LOCAL_API}"),
        );
    }
    for (k, v) in &cfg.environment {
        if valid(k, v) && !is_reserved_env(k) {
            env.insert(k.clone(), v.clone());
        }
    }
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
    let fixed = reserved(&cfg).into_iter().filter(|(_, v)| !v.is_empty());
    defaults()
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .chain(fixed)
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// Lambda's defaults that a function's own value replaces.
fn defaults() -> [(&'static str, &'static str); 3] {
    [
        ("LANG", "en_US.UTF-8"),
        ("PATH", "/usr/local/bin:/usr/bin:/bin:/opt/bin"),
        (
            "LD_LIBRARY_PATH",
            "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib",
        ),
    ]
}

fn valid(name: &str, value: &str) -> bool {
    !name.is_empty() && !name.contains(['=', '\0']) && !value.contains('\0')
}

/// The reserved variables init sets; every name is in flint_proto's reserved list.
fn reserved(cfg: &Configure) -> Vec<(&'static str, String)> {
    let region = if cfg.region.is_empty() {
        "local".to_string()
    } else {
        cfg.region.clone()
    };
    let mut vars = vec![
        ("_HANDLER", cfg.handler.clone()),
        ("AWS_LAMBDA_FUNCTION_NAME", cfg.function_name.clone()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", cfg.memory_mb.to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION", cfg.function_version.clone()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", cfg.log_group.clone()),
        ("AWS_LAMBDA_LOG_STREAM_NAME", cfg.log_stream.clone()),
        ("AWS_LAMBDA_RUNTIME_API", RUNTIME_API.into()),
        ("AWS_REGION", region.clone()),
        ("AWS_DEFAULT_REGION", region),
        ("LAMBDA_TASK_ROOT", "/var/task".into()),
        ("LAMBDA_RUNTIME_DIR", "/var/runtime".into()),
        ("TZ", ":UTC".into()),
    ];
    if !cfg.runtime.is_empty() {
        vars.push(("AWS_EXECUTION_ENV", format!("AWS_Lambda_{}", cfg.runtime)));
    }
    if let Some(c) = &cfg.credentials {
        vars.push(("AWS_ACCESS_KEY_ID", c.access_key_id.clone()));
        vars.push(("AWS_SECRET_ACCESS_KEY", c.secret_access_key.clone()));
        vars.push(("AWS_SESSION_TOKEN", c.session_token.clone()));
        vars.push((
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            format!("http://{LOCAL_API}{}", crate::aws_local::CREDENTIALS_PATH),
        ));
        vars.push((
            "AWS_CONTAINER_AUTHORIZATION_TOKEN",
            cfg.credentials_auth_token.clone(),
        ));
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
        c.environment
            .insert("AWS_LAMBDA_RUNTIME_API".into(), "1.2.3.4:1".into());
        c.environment.insert("_HANDLER".into(), "x".into());
        c.environment.insert("TZ".into(), "Europe/Berlin".into());
        c.environment.insert("AWS_SESSION_TOKEN".into(), "t".into());
        c.environment.insert("MY_VAR".into(), "mine".into());
        let env = compose(&c);
        assert_eq!(get(&env, "AWS_LAMBDA_RUNTIME_API"), Some("127.0.0.1:9001"));
        assert_eq!(get(&env, "_HANDLER"), Some("app.handler"));
        assert_eq!(get(&env, "TZ"), Some(":UTC"));
        assert_eq!(get(&env, "AWS_SESSION_TOKEN"), None);
        assert_eq!(get(&env, "MY_VAR"), Some("mine"));
    }

    #[test]
    fn defaults_give_way_to_the_functions_own() {
        let mut c = cfg();
        c.environment
            .insert("PATH".into(), "/opt/mine/bin:/usr/bin".into());
        c.environment.insert("LANG".into(), "C.UTF-8".into());
        let env = compose(&c);
        assert_eq!(get(&env, "PATH"), Some("/opt/mine/bin:/usr/bin"));
        assert_eq!(get(&env, "LANG"), Some("C.UTF-8"));
        assert_eq!(env.iter().filter(|(k, _)| k == "PATH").count(), 1);
        let plain = compose(&cfg());
        assert_eq!(
            get(&plain, "PATH"),
            Some("/usr/local/bin:/usr/bin:/bin:/opt/bin")
        );
        assert_eq!(get(&plain, "LANG"), Some("en_US.UTF-8"));
    }

    #[test]
    fn init_sets_only_names_flintd_refuses() {
        // What init overwrites is exactly what flintd refuses: a function can never set
        // a variable that is then silently replaced.
        for (name, _) in reserved(&cfg()) {
            assert!(
                is_reserved_env(name),
                "{name} is set by init but not reserved"
            );
        }
        for (name, _) in defaults() {
            assert!(!is_reserved_env(name), "{name} is a default, not reserved");
        }
    }

    #[test]
    fn generic_environment_has_defaults_and_fixed_reserved_values() {
        let env = generic("python3.11", 512);
        assert_eq!(
            get(&env, "PATH"),
            Some("/usr/local/bin:/usr/bin:/bin:/opt/bin")
        );
        assert_eq!(get(&env, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"), Some("512"));
        assert_eq!(get(&env, "AWS_LAMBDA_FUNCTION_NAME"), None);
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
    fn role_credentials_are_given_as_lambda_gives_them() {
        let mut c = cfg();
        c.region = "eu-west-3".into();
        c.credentials = Some(Box::new(flint_proto::init::RoleCredentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: "s3cr3t".into(),
            session_token: "FLT1.tok".into(),
            expiration: "2026-12-06T12:00:00Z".into(),
        }));
        c.credentials_auth_token = "auth".into();
        c.environment
            .insert("AWS_CONTAINER_AUTHORIZATION_TOKEN".into(), "forged".into());
        let env = compose(&c);
        assert_eq!(get(&env, "AWS_ACCESS_KEY_ID"), Some("ASIAEXAMPLE"));
        assert_eq!(get(&env, "AWS_SECRET_ACCESS_KEY"), Some("s3cr3t"));
        assert_eq!(get(&env, "AWS_SESSION_TOKEN"), Some("FLT1.tok"));
        assert_eq!(
            get(&env, "AWS_CONTAINER_CREDENTIALS_FULL_URI"),
            Some("http://127.0.0.1:9002/flint/v1/credentials")
        );
        assert_eq!(get(&env, "AWS_CONTAINER_AUTHORIZATION_TOKEN"), Some("auth"));
        assert_eq!(
            get(&env, "AWS_ENDPOINT_URL_LAMBDA"),
            Some("http://127.0.0.1:9002")
        );
        assert_eq!(get(&env, "AWS_REGION"), Some("eu-west-3"));
        for (name, _) in reserved(&c) {
            assert!(
                is_reserved_env(name),
                "{name} is set by init but not reserved"
            );
        }
        // Without a role: none of them.
        let plain = compose(&cfg());
        for k in [
            "AWS_ACCESS_KEY_ID",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_ENDPOINT_URL_LAMBDA",
        ] {
            assert_eq!(get(&plain, k), None, "{k}");
        }
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
