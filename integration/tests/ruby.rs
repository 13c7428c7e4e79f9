//! The ruby3.2 runtime (Lambda's Ruby conventions on Debian's Ruby 3.1) end to end:
//! `file.method` and `file.Module::Class.method` handlers called as
//! `handler(event:, context:)`, the context object, module state, error documents
//! (`Function<Class>`, `Init<Class>`), timeouts, memory exhaustion and the pool's
//! pre-started Ruby.

use flint_integration::*;
use flint_proto::v1::*;
use std::time::{Duration, Instant};

const RUNTIME: &str = "ruby3.2";

/// A CreateFunctionRequest for a Ruby function made of `files`.
fn ruby_function(name: &str, handler: &str, files: &[(&str, &str)]) -> CreateFunctionRequest {
    CreateFunctionRequest {
        name: name.to_string(),
        runtime: RUNTIME.into(),
        handler: handler.into(),
        memory_mb: 128,
        timeout_s: 3,
        code_zip: zip_files(files),
        ..Default::default()
    }
}

const CONTEXT_PROBE: &str = r#"
puts 'loading'
def handler(event:, context:)
  puts "hello #{event['name']}"
  {
    aws_request_id: context.aws_request_id,
    function_name: context.function_name,
    function_version: context.function_version,
    invoked_function_arn: context.invoked_function_arn,
    memory_limit_in_mb: context.memory_limit_in_mb,
    log_group_name: context.log_group_name,
    remaining: context.get_remaining_time_in_millis,
    greeting: ENV['GREETING'],
    exec_env: ENV['AWS_EXECUTION_ENV'],
    uid: Process.uid,
    cwd: Dir.pwd,
    ruby: RUBY_VERSION
  }
end
"#;

#[tokio::test]
async fn handler_gets_lambdas_context_and_keeps_state() {
    let agent = TestAgent::start().await;
    let mut c = agent.client().await;
    let mut req = ruby_function("ctx", "function.handler", &[("function.rb", CONTEXT_PROBE)]);
    req.memory_mb = 256;
    req.environment.insert("GREETING".into(), "hi".into());
    c.functions.create_function(req).await.unwrap();
    let r = invoke_ok(&mut c, "ctx", r#"{"name":"ruby"}"#).await;
    let v = json(&r);
    assert_eq!(v["aws_request_id"], r.request_id);
    assert_eq!(v["function_name"], "ctx");
    assert_eq!(v["function_version"], "$LATEST");
    assert!(
        v["invoked_function_arn"]
            .as_str()
            .unwrap()
            .ends_with(":function:ctx"),
        "{v}"
    );
    assert_eq!(v["memory_limit_in_mb"], "256", "a string, as on Lambda");
    assert_eq!(v["log_group_name"], "/flint/lambda/ctx");
    let remaining = v["remaining"].as_i64().unwrap();
    assert!(remaining > 0 && remaining <= 3000, "remaining {remaining}");
    assert_eq!(v["greeting"], "hi");
    assert_eq!(v["exec_env"], "AWS_Lambda_ruby3.2");
    assert_eq!(v["uid"], 993, "the runtime must not run as root");
    assert_eq!(v["cwd"], "/var/task");
    assert!(v["ruby"].as_str().unwrap().starts_with("3.1."), "{v}");
    assert!(r.log_result.contains("loading"), "{}", r.log_result);
    assert!(r.log_result.contains("hello ruby"), "{}", r.log_result);

    // A class-level method of a namespaced class, in a folder, keeping state warm.
    let code = r#"
module Shop
  class Orders
    @count = 0
    def self.process(event:, context:)
      @count += 1
    end
  end
end
"#;
    c.functions
        .create_function(ruby_function(
            "orders",
            "lib/orders.Shop::Orders.process",
            &[("lib/orders.rb", code)],
        ))
        .await
        .unwrap();
    for n in 1..=3 {
        let r = invoke_ok(&mut c, "orders", "{}").await;
        assert_eq!(json(&r), n, "module state must survive warm invocations");
        if n > 1 {
            assert!(!r.log_result.contains("Init Duration"), "{}", r.log_result);
        }
    }
}

#[tokio::test]
async fn raised_error_is_lambdas_ruby_error_document() {
    let agent = TestAgent::start().await;
    let mut c = agent.client().await;
    let code = r#"
class PaymentError < StandardError; end
def handler(event:, context:)
  return 'fine' if event['ok']
  raise PaymentError, "declined: #{event['x']}"
end
"#;
    c.functions
        .create_function(ruby_function(
            "fails",
            "function.handler",
            &[("function.rb", code)],
        ))
        .await
        .unwrap();
    let r = invoke(&mut c, "fails", r#"{"x":"bad"}"#).await;
    assert_eq!(r.status_code, 200);
    assert_eq!(r.function_error, "Unhandled");
    let v = json(&r);
    assert_eq!(v["errorType"], "Function<PaymentError>", "{v}");
    assert_eq!(v["errorMessage"], "declined: bad", "{v}");
    let trace = v["stackTrace"].as_array().expect("stackTrace array");
    assert!(
        trace[0]
            .as_str()
            .unwrap()
            .starts_with("/var/task/function.rb:5:in"),
        "{v}"
    );
    assert!(
        r.log_result.contains("Error raised from handler method"),
        "{}",
        r.log_result
    );
    let r2 = invoke_ok(&mut c, "fails", r#"{"ok":true}"#).await;
    assert_eq!(json(&r2), "fine");
    assert!(
        !r2.log_result.contains("Init Duration"),
        "{}",
        r2.log_result
    );
}

#[tokio::test]
async fn init_and_handler_errors_use_lambdas_ruby_error_types() {
    let agent = TestAgent::start().await;
    let mut c = agent.client().await;
    let ok = "def handler(event:, context:)\n  1\nend\n";
    // (name, handler, code, errorType): load errors fail the init; a missing method is,
    // as on Lambda, an error of the invocation.
    let cases = [
        ("nofile", "missing.handler", ok, "Init<LoadError>"),
        (
            "nogem",
            "function.handler",
            "require 'no_such_gem_anywhere'\ndef handler(event:, context:) = 1\n",
            "Init<LoadError>",
        ),
        (
            "syntax",
            "function.handler",
            "def handler(event:, context:)\n  1\nend\nend\n",
            "Init<SyntaxError>",
        ),
        (
            "raises",
            "function.handler",
            "raise ArgumentError, 'bad config'\n",
            "Init<ArgumentError>",
        ),
        ("badname", "nodot", ok, "Init<ArgumentError>"),
        (
            "nomethod",
            "function.handler",
            "def other(event:, context:) = 1\n",
            "Function<NoMethodError>",
        ),
    ];
    for (name, handler, code, want) in cases {
        c.functions
            .create_function(ruby_function(name, handler, &[("function.rb", code)]))
            .await
            .unwrap();
        let r = invoke(&mut c, name, "{}").await;
        assert_eq!(r.function_error, "Unhandled", "{name}");
        let v = json(&r);
        assert_eq!(v["errorType"], want, "{name}: {v}");
        assert!(
            !v["errorMessage"].as_str().unwrap_or("").is_empty(),
            "{name}: {v}"
        );
        assert!(v["stackTrace"].is_array(), "{name}: {v}");
    }
    let leaked = agent.wait_all_accounted(Duration::from_secs(10)).await;
    assert_eq!(leaked, 0, "failed inits left sandboxes");
    for (name, _, _, want) in cases {
        let kept = agent.instances_of(name).await;
        if want.starts_with("Init<") {
            assert_eq!(kept, 0, "{name} kept an instance");
        } else {
            assert_eq!(kept, 1, "{name}: an invocation error keeps the instance");
        }
    }
}

#[tokio::test]
async fn timeout_and_out_of_memory_end_the_instance() {
    let agent = TestAgent::start().await;
    let mut c = agent.client().await;
    let mut req = ruby_function(
        "sleepy",
        "function.handler",
        &[(
            "function.rb",
            "def handler(event:, context:)\n  sleep 30\nend\n",
        )],
    );
    req.timeout_s = 1;
    c.functions.create_function(req).await.unwrap();
    let t0 = Instant::now();
    let r = invoke(&mut c, "sleepy", "{}").await;
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t0.elapsed()
    );
    assert_eq!(r.function_error, "Unhandled");
    assert!(
        json(&r)["errorMessage"]
            .as_str()
            .unwrap()
            .contains("Task timed out after 1.00 seconds"),
        "{}",
        String::from_utf8_lossy(&r.payload)
    );
    assert_eq!(
        agent.instances_of("sleepy").await,
        0,
        "timed-out instance kept"
    );

    let hog = "$hog = []\ndef handler(event:, context:)\n  loop { $hog << ('x' * (16 * 1024 * 1024)) }\nend\n";
    let mut req = ruby_function("hog", "function.handler", &[("function.rb", hog)]);
    req.timeout_s = 30;
    c.functions.create_function(req).await.unwrap();
    let r = invoke(&mut c, "hog", "{}").await;
    assert_eq!(r.function_error, "Unhandled");
    assert_eq!(
        json(&r)["errorType"],
        "Runtime.OutOfMemory",
        "{}",
        r.log_result
    );
    c.functions
        .update_function_code(UpdateFunctionCodeRequest {
            name: "hog".into(),
            code_zip: zip_files(&[(
                "function.rb",
                "def handler(event:, context:)\n  'recovered'\nend\n",
            )]),
        })
        .await
        .unwrap();
    assert_eq!(json(&invoke_ok(&mut c, "hog", "{}").await), "recovered");
    let leaked = agent.wait_all_accounted(Duration::from_secs(10)).await;
    assert_eq!(leaked, 0, "ended instances not destroyed");
}

#[tokio::test]
async fn warm_pool_prestarts_ruby_and_hands_it_the_function() {
    let agent = TestAgent::start_args(300, &["--pool-warm", "ruby3.2:256=1"]).await;
    agent
        .wait_pool_ready(RUNTIME, 256, Duration::from_secs(20))
        .await;
    let mut c = agent.client().await;
    let code = "def handler(event:, context:)\n  { name: context.function_name, color: ENV['COLOR'], prestart: ENV['FLINT_PRESTART'], mem: context.memory_limit_in_mb }\nend\n";
    let mut req = ruby_function("pooled", "function.handler", &[("function.rb", code)]);
    req.memory_mb = 256;
    req.environment.insert("COLOR".into(), "teal".into());
    c.functions.create_function(req).await.unwrap();
    let r = invoke_ok(&mut c, "pooled", "{}").await;
    let t = r.timings.unwrap();
    assert!(t.cold_start && t.pool_hit, "expected a pool hit: {t:?}");
    assert_eq!(t.sandbox_ns, 0, "a pool hit creates no sandbox");
    assert_eq!(
        json(&r),
        serde_json::json!({"name": "pooled", "color": "teal", "prestart": null, "mem": "256"})
    );
}
