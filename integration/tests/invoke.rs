//! Deploying and invoking Python functions end to end: results, warm reuse, function
//! errors, init errors, timeouts, memory exhaustion, crashes and fork bombs.

use flint_integration::*;
use flint_proto::v1::*;
use std::time::Duration;

const HELLO: &str = r#"
import os
def handler(event, context):
    return {"hello": event.get("name", "world"),
            "request_id": context.aws_request_id,
            "function_name": context.function_name,
            "memory": context.memory_limit_in_mb,
            "arn": context.invoked_function_arn,
            "remaining_ms": context.get_remaining_time_in_millis(),
            "greeting": os.environ.get("GREETING"),
            "uid": os.getuid(),
            "task_root": os.environ.get("LAMBDA_TASK_ROOT")}
"#;

#[tokio::test]
async fn deploy_and_invoke_returns_the_handlers_result() {
    let agent = TestAgent::start().await;
    let mut c = agent.client().await;
    let mut req = python_function("hello", HELLO);
    req.environment.insert("GREETING".into(), "hi".into());
    req.memory_mb = 256;
    let f = c.functions.create_function(req).await.unwrap().into_inner();
    assert_eq!(f.memory_mb, 256);
    assert_eq!(f.code_sha256.len(), 64);

    let r = invoke(&mut c, "hello", r#"{"name":"flint"}"#).await;
    assert_eq!(r.status_code, 200);
    assert_eq!(
        r.function_error,
        "",
        "{}",
        String::from_utf8_lossy(&r.payload)
    );
    let v = json(&r);
    assert_eq!(v["hello"], "flint");
    assert_eq!(v["request_id"], r.request_id);
    assert_eq!(v["function_name"], "hello");
    assert_eq!(v["memory"], "256", "a string, as awslambdaric passes it");
    assert_eq!(v["greeting"], "hi");
    assert_eq!(v["uid"], 993, "the runtime must not run as root");
    assert_eq!(v["task_root"], "/var/task");
    assert!(v["arn"].as_str().unwrap().ends_with(":function:hello"));
    let remaining = v["remaining_ms"].as_i64().unwrap();
    assert!(remaining > 0 && remaining <= 3000, "remaining {remaining}");
    assert!(
        r.log_result
            .contains(&format!("START RequestId: {}", r.request_id)),
        "{}",
        r.log_result
    );
    assert!(
        r.log_result.contains("REPORT RequestId:"),
        "{}",
        r.log_result
    );
    assert!(
        r.log_result.contains("Init Duration:"),
        "cold start must report init: {}",
        r.log_result
    );
}

#[tokio::test]
async fn warm_instance_keeps_module_state() {
    let agent = TestAgent::start().await;
    let mut c = agent.client().await;
    let code = "count = 0\ndef handler(event, context):\n    global count\n    count += 1\n    print('call', count)\n    return count\n";
    c.functions
        .create_function(python_function("counter", code))
        .await
        .unwrap();
    for expect in 1..=3 {
        let r = invoke(&mut c, "counter", "{}").await;
        assert_eq!(
            json(&r),
            expect,
            "module state must survive between invocations"
        );
        assert!(
            r.log_result.contains(&format!("call {expect}")),
            "{}",
            r.log_result
        );
        if expect > 1 {
            assert!(
                !r.log_result.contains("Init Duration"),
                "warm start reported init: {}",
                r.log_result
            );
        }
    }
    // A code update retires the warm instance: state starts again.
    c.functions
        .update_function_code(UpdateFunctionCodeRequest {
            name: "counter".into(),
            code_zip: zip_files(&[("app.py", &code.replace("count += 1", "count += 10"))]),
        })
        .await
        .unwrap();
    let r = invoke(&mut c, "counter", "{}").await;
    assert_eq!(json(&r), 10);
}

#[tokio::test]
async fn handler_exception_is_a_function_error() {
    let agent = TestAgent::start().await;
    let mut c = agent.client().await;
    let code = "def handler(event, context):\n    raise ValueError('boom: ' + event['x'])\n";
    c.functions
        .create_function(python_function("fails", code))
        .await
        .unwrap();
    let r = invoke(&mut c, "fails", r#"{"x":"bad"}"#).await;
    assert_eq!(r.status_code, 200);
    assert_eq!(r.function_error, "Unhandled");
    let v = json(&r);
    assert_eq!(v["errorType"], "ValueError");
    assert_eq!(v["errorMessage"], "boom: bad");
    let trace = v["stackTrace"].as_array().expect("stackTrace array");
    assert!(
        trace
            .iter()
            .any(|l| l.as_str().unwrap_or("").contains("app.py")),
        "{v}"
    );
    // The instance survives a handled exception.
    let r2 = invoke(&mut c, "fails", r#"{"x":"again"}"#).await;
    assert_eq!(json(&r2)["errorMessage"], "boom: again");
    assert!(
        !r2.log_result.contains("Init Duration"),
        "{}",
        r2.log_result
    );
}

#[tokio::test]
async fn init_errors_use_lambdas_runtime_error_types() {
    let agent = TestAgent::start().await;
    let mut c = agent.client().await;
    let cases = [
        (
            "importerr",
            "import not_a_module_anywhere\ndef handler(e, c):\n    return 1\n",
            "app.handler",
            "Runtime.ImportModuleError",
        ),
        (
            "syntaxerr",
            "def handler(e, c)\n    return 1\n",
            "app.handler",
            "Runtime.UserCodeSyntaxError",
        ),
        (
            "nohandler",
            "def other(e, c):\n    return 1\n",
            "app.handler",
            "Runtime.HandlerNotFound",
        ),
        (
            "nomodule",
            "def handler(e, c):\n    return 1\n",
            "missing.handler",
            "Runtime.ImportModuleError",
        ),
        (
            "badhandler",
            "def handler(e, c):\n    return 1\n",
            "nodot",
            "Runtime.MalformedHandlerName",
        ),
    ];
    for (name, code, handler, want) in cases {
        let mut req = python_function(name, code);
        req.handler = handler.into();
        c.functions.create_function(req).await.unwrap();
        let r = invoke(&mut c, name, "{}").await;
        assert_eq!(r.function_error, "Unhandled", "{name}");
        let v = json(&r);
        assert_eq!(v["errorType"], want, "{name}: {v}");
        assert!(
            !v["errorMessage"].as_str().unwrap_or("").is_empty(),
            "{name}: {v}"
        );
    }
    // A runtime killed during init is said the same way as one killed mid-invocation
    // (flint-init once wrote "signal 9" here).
    c.functions
        .create_function(python_function(
            "initkill",
            "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\ndef handler(e, c):\n    return 1\n",
        ))
        .await
        .unwrap();
    let r = invoke(&mut c, "initkill", "{}").await;
    let v = json(&r);
    assert_eq!(v["errorType"], "Runtime.ExitError", "{v}");
    assert!(
        v["errorMessage"]
            .as_str()
            .unwrap_or("")
            .contains("Runtime exited with error: signal: killed"),
        "{v}"
    );
    let leaked = agent.wait_all_accounted(Duration::from_secs(10)).await;
    assert_eq!(leaked, 0, "failed inits left sandboxes");
    for (name, ..) in cases {
        assert_eq!(agent.instances_of(name).await, 0, "{name} kept an instance");
    }
}

#[tokio::test]
async fn timeout_kills_the_instance_and_says_so() {
    let agent = TestAgent::start().await;
    let mut c = agent.client().await;
    let code = "import time\ndef handler(event, context):\n    time.sleep(30)\n";
    let mut req = python_function("sleepy", code);
    req.timeout_s = 1;
    c.functions.create_function(req).await.unwrap();
    let t0 = std::time::Instant::now();
    let r = invoke(&mut c, "sleepy", "{}").await;
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t0.elapsed()
    );
    assert_eq!(r.function_error, "Unhandled");
    let v = json(&r);
    assert!(
        v["errorMessage"]
            .as_str()
            .unwrap()
            .contains("Task timed out after 1.00 seconds"),
        "{v}"
    );
    assert!(
        r.log_result.contains("Task timed out after 1.00 seconds"),
        "{}",
        r.log_result
    );
    assert_eq!(
        agent.instances_of("sleepy").await,
        0,
        "timed-out instance kept"
    );
    let leaked = agent.wait_all_accounted(Duration::from_secs(10)).await;
    assert_eq!(leaked, 0, "timed-out instance not destroyed");
}

#[tokio::test]
async fn out_of_memory_is_reported_and_the_agent_stays_healthy() {
    let agent = TestAgent::start().await;
    let mut c = agent.client().await;
    let code = "def handler(event, context):\n    hog = []\n    while True:\n        hog.append(bytearray(16 * 1024 * 1024))\n";
    let mut req = python_function("hog", code);
    req.timeout_s = 30;
    c.functions.create_function(req).await.unwrap();
    let r = invoke(&mut c, "hog", "{}").await;
    assert_eq!(r.function_error, "Unhandled");
    let v = json(&r);
    assert_eq!(v["errorType"], "Runtime.OutOfMemory", "{v}");
    // The agent and other functions are unaffected.
    c.functions
        .create_function(python_function(
            "fine",
            "def handler(e, c):\n    return 'ok'\n",
        ))
        .await
        .unwrap();
    assert_eq!(json(&invoke(&mut c, "fine", "{}").await), "ok");
    // The OOM-killed function recovers on its next invocation (a new instance).
    c.functions
        .update_function_code(UpdateFunctionCodeRequest {
            name: "hog".into(),
            code_zip: zip_files(&[("app.py", "def handler(e, c):\n    return 'recovered'\n")]),
        })
        .await
        .unwrap();
    assert_eq!(json(&invoke(&mut c, "hog", "{}").await), "recovered");
}

#[tokio::test]
async fn runtime_crash_and_fork_bomb_are_contained() {
    let agent = TestAgent::start().await;
    let mut c = agent.client().await;
    c.functions
        .create_function(python_function(
            "crash",
            "import os\ndef handler(e, c):\n    os._exit(3)\n",
        ))
        .await
        .unwrap();
    let r = invoke(&mut c, "crash", "{}").await;
    let v = json(&r);
    assert_eq!(v["errorType"], "Runtime.ExitError", "{v}");
    assert!(
        v["errorMessage"]
            .as_str()
            .unwrap()
            .contains("exit status 3"),
        "{v}"
    );

    let bomb = "import os, time\ndef handler(e, c):\n    for _ in range(100000):\n        try:\n            os.fork()\n        except OSError:\n            time.sleep(0.01)\n    time.sleep(60)\n";
    let mut req = python_function("bomb", bomb);
    req.timeout_s = 3;
    c.functions.create_function(req).await.unwrap();
    let r = invoke(&mut c, "bomb", "{}").await;
    assert_eq!(r.function_error, "Unhandled");
    // The agent still serves, and the bomb's sandbox is gone.
    let r = invoke(&mut c, "crash", "{}").await;
    assert_eq!(json(&r)["errorType"], "Runtime.ExitError");
    assert_eq!(
        agent.instances_of("bomb").await,
        0,
        "the bomb's instance was kept"
    );
    let leaked = agent.wait_all_accounted(Duration::from_secs(15)).await;
    assert_eq!(leaked, 0, "sandboxes leaked");
}

#[tokio::test]
async fn event_and_dry_run_invocations() {
    let agent = TestAgent::start().await;
    let mut c = agent.client().await;
    c.functions
        .create_function(python_function(
            "ev",
            "def handler(e, c):\n    print('EVENT', e['n'])\n    return 1\n",
        ))
        .await
        .unwrap();
    let r = c
        .invocations
        .invoke(InvokeRequest {
            function_name: "ev".into(),
            invocation_type: InvocationType::DryRun as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.status_code, 204);
    assert!(
        agent.sandbox_cgroups().is_empty(),
        "a dry run must not start anything"
    );
    let r = c
        .invocations
        .invoke(InvokeRequest {
            function_name: "ev".into(),
            invocation_type: InvocationType::Event as i32,
            payload: br#"{"n": 42}"#.to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.status_code, 202);
    assert!(r.payload.is_empty());
    // The event runs in the background: its output reaches the function's log.
    let log = agent.data_dir.join("logs/ev.log");
    let t0 = std::time::Instant::now();
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("EVENT 42") && text.contains(&format!("END RequestId: {}", r.request_id)) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "event never ran; log: {text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn concurrent_invocations_scale_out() {
    let agent = TestAgent::start().await;
    let c = agent.client().await;
    let code = "import time, os\ndef handler(e, c):\n    time.sleep(0.5)\n    return os.getpid()\n";
    c.functions
        .clone()
        .create_function(python_function("slow", code))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let mut c = c.clone();
        tasks.push(tokio::spawn(
            async move { invoke(&mut c, "slow", "{}").await },
        ));
    }
    let mut ok = 0;
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(
            r.function_error,
            "",
            "{}",
            String::from_utf8_lossy(&r.payload)
        );
        ok += 1;
    }
    assert_eq!(ok, 3);
    assert_eq!(
        agent.instances_of("slow").await,
        3,
        "three concurrent invocations need three instances"
    );
}

/// Regression: output printed right before returning used to race the result and
/// miss the log tail.
#[tokio::test]
async fn output_printed_just_before_returning_is_in_the_tail() {
    let agent = TestAgent::start().await;
    let mut c = agent.client().await;
    let code = "import sys\ndef handler(e, c):\n    print('out', e['i'])\n    sys.stderr.write('err %d\\n' % e['i'])\n    return e['i']\n";
    c.functions
        .create_function(python_function("chatty", code))
        .await
        .unwrap();
    for i in 0..20 {
        let r = invoke(&mut c, "chatty", &format!("{{\"i\": {i}}}")).await;
        assert_eq!(json(&r), i);
        assert!(
            r.log_result.contains(&format!("out {i}\n")),
            "{i}: {}",
            r.log_result
        );
        assert!(
            r.log_result.contains(&format!("err {i}\n")),
            "{i}: {}",
            r.log_result
        );
        let start = r.log_result.find("START").unwrap();
        let out = r.log_result.find(&format!("out {i}")).unwrap();
        let end = r.log_result.find("END RequestId").unwrap();
        assert!(
            start < out && out < end,
            "output outside START..END: {}",
            r.log_result
        );
    }
}
