//! The java17 runtime end to end: handlers compiled here with the host's javac against the
//! image's own runtime.jar (Lambda's com.amazonaws.services.lambda.runtime interfaces),
//! bundled as a zip of classes + lib/*.jar, run by a real flintd: a RequestHandler<Map,
//! String>, a Class::method returning a Map, a RequestStreamHandler, a thrown exception's
//! error document, init errors, a timeout, a heap OutOfMemoryError and a cgroup
//! out-of-memory kill, and the warm pool's pre-started JVM taking on its function.

use flint_integration::*;
use flint_proto::v1::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const RUNTIME: &str = "java17";

const HELPER: &str = r#"
package example.lib;
public final class Helper {
    public static String shout(String s) { return s.toUpperCase() + "!"; }
}
"#;

const HELLO: &str = r#"
package example;
import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
public class Hello implements RequestHandler<Map<String, Object>, String> {
    private int count;
    static { System.out.println("static init"); }
    @Override
    public String handleRequest(Map<String, Object> event, Context context) {
        count++;
        context.getLogger().log("hello from " + context.getAwsRequestId());
        return example.lib.Helper.shout("hi " + event.get("name")) + " #" + count;
    }
    public Map<String, Object> info(List<Object> event, Context context) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("echo", event);
        m.put("requestId", context.getAwsRequestId());
        m.put("functionName", context.getFunctionName());
        m.put("memory", context.getMemoryLimitInMB());
        m.put("remaining", context.getRemainingTimeInMillis());
        m.put("arn", context.getInvokedFunctionArn());
        m.put("user", System.getProperty("user.name"));
        m.put("maxHeapMB", Runtime.getRuntime().maxMemory() / 1048576);
        m.put("java", System.getProperty("java.specification.version"));
        m.put("greeting", System.getenv("GREETING"));
        m.put("envName", System.getenv("AWS_LAMBDA_FUNCTION_NAME"));
        m.put("envMemory", System.getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"));
        m.put("prestart", System.getenv("FLINT_PRESTART"));
        m.put("prop", System.getProperty("flint.test"));
        String child;
        try {
            Process p = new ProcessBuilder("/bin/sh", "-c", "printf %s \"$GREETING\"").start();
            child = new String(p.getInputStream().readAllBytes());
            p.waitFor();
        } catch (Exception e) {
            child = "error: " + e;
        }
        m.put("childGreeting", child);
        m.put("ok", true);
        return m;
    }
    public static String fail(String event) {
        throw new IllegalStateException("boom: " + event);
    }
}
"#;

const ORDERS: &str = r#"
package example;
import java.util.List;
public class Orders {
    public static class Order {
        private String item;
        private int quantity;
        public List<Object> tags;
        public void setItem(String item) { this.item = item; }
        public void setQuantity(int quantity) { this.quantity = quantity; }
        public String getItem() { return item; }
        public int getQuantity() { return quantity; }
    }
    public record Receipt(String item, long total, boolean bulk, List<Object> tags) {}
    public Receipt handle(Order order) {
        return new Receipt(order.getItem(), order.getQuantity() * 3L, order.getQuantity() > 10, order.tags);
    }
}
"#;

const UPPER: &str = r#"
package example;
import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestStreamHandler;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
public class Upper implements RequestStreamHandler {
    @Override
    public void handleRequest(InputStream in, OutputStream out, Context context) throws IOException {
        String s = new String(in.readAllBytes(), StandardCharsets.UTF_8);
        out.write(("{\"upper\":" + s.toUpperCase() + ",\"fn\":\"" + context.getFunctionName() + "\"}")
            .getBytes(StandardCharsets.UTF_8));
    }
}
"#;

const LIMITS: &str = r#"
package example;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.List;
public class Limits {
    public static String sleep(Object event) throws InterruptedException {
        Thread.sleep(30_000);
        return "woke";
    }
    /** Fills the Java heap: an OutOfMemoryError the handler does not catch. */
    public static int heap(Object event) {
        List<long[]> keep = new ArrayList<>();
        while (true) keep.add(new long[1 << 20]);
    }
    /** Memory outside the heap (and outside -XX:MaxDirectMemorySize): only the cgroup stops it. */
    public static int offHeap(Object event) throws Exception {
        Class<?> unsafeClass = Class.forName("sun.misc.Unsafe");
        Field f = unsafeClass.getDeclaredField("theUnsafe");
        f.setAccessible(true);
        Object unsafe = f.get(null);
        Method allocate = unsafeClass.getMethod("allocateMemory", long.class);
        Method set = unsafeClass.getMethod("setMemory", long.class, long.class, byte.class);
        long chunk = 16L << 20;
        while (true) {
            long at = (Long) allocate.invoke(unsafe, chunk);
            set.invoke(unsafe, at, chunk, (byte) 1);
        }
    }
}
"#;

/// Runs a JDK tool and panics with its output when it fails.
fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("{cmd:?}: {e} (install openjdk-17-jdk-headless: images/host-deps.sh)")
    });
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every file under `dir` as (path relative to `dir`, bytes).
fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Compiles the handlers against the image's runtime.jar: example.lib.Helper goes into
/// lib/helper.jar, the example.* handler classes at the top of the zip.
fn java_bundle() -> Vec<u8> {
    use std::io::Write;
    let api_jar: PathBuf = images_dir().join("java17/rootfs/var/runtime/runtime.jar");
    assert!(
        api_jar.is_file(),
        "{} missing: run images/build-rootfs.sh java17",
        api_jar.display()
    );
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("example/lib")).unwrap();
    std::fs::write(src.join("example/lib/Helper.java"), HELPER).unwrap();
    std::fs::write(src.join("example/Hello.java"), HELLO).unwrap();
    std::fs::write(src.join("example/Upper.java"), UPPER).unwrap();
    std::fs::write(src.join("example/Orders.java"), ORDERS).unwrap();
    std::fs::write(src.join("example/Limits.java"), LIMITS).unwrap();
    let libc = t.path().join("libclasses");
    run(Command::new("javac")
        .args(["--release", "17", "-d"])
        .arg(&libc)
        .arg(src.join("example/lib/Helper.java")));
    let lib = t.path().join("bundle/lib");
    std::fs::create_dir_all(&lib).unwrap();
    run(Command::new("jar")
        .arg("--create")
        .arg("--file")
        .arg(lib.join("helper.jar"))
        .arg("-C")
        .arg(&libc)
        .arg("."));
    let cp = format!("{}:{}", api_jar.display(), lib.join("helper.jar").display());
    run(Command::new("javac")
        .args(["--release", "17", "-cp", &cp, "-d"])
        .arg(t.path().join("bundle"))
        .arg(src.join("example/Hello.java"))
        .arg(src.join("example/Upper.java"))
        .arg(src.join("example/Orders.java"))
        .arg(src.join("example/Limits.java")));
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, body) in files_under(&t.path().join("bundle")) {
        assert!(!name.contains("Helper.class") || name.starts_with("lib/"));
        w.start_file(
            name,
            zip::write::SimpleFileOptions::default().unix_permissions(0o644),
        )
        .unwrap();
        w.write_all(&body).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn java_function(name: &str, handler: &str, code: &[u8]) -> CreateFunctionRequest {
    CreateFunctionRequest {
        name: name.to_string(),
        runtime: RUNTIME.into(),
        handler: handler.into(),
        memory_mb: 256,
        timeout_s: 15,
        code_zip: code.to_vec(),
        ..Default::default()
    }
}

#[tokio::test]
async fn java17_handlers_errors_and_init_errors() {
    let code = java_bundle();
    let agent = TestAgent::start().await;
    let mut c = agent.client().await;
    let f = |name: &str, handler: &str| java_function(name, handler, &code);

    // RequestHandler<Map, String> by class name; state kept across warm invocations.
    c.functions
        .create_function(f("hello", "example.Hello"))
        .await
        .unwrap();
    for n in 1..=2 {
        let r = invoke(&mut c, "hello", r#"{"name":"java"}"#).await;
        let body = String::from_utf8_lossy(&r.payload).into_owned();
        assert_eq!(r.function_error, "", "{body} / log: {}", r.log_result);
        assert_eq!(json(&r), format!("HI JAVA! #{n}"), "{body}");
        assert!(
            r.log_result
                .contains(&format!("hello from {}", r.request_id)),
            "LambdaLogger line: {}",
            r.log_result
        );
        if n == 1 {
            assert!(r.log_result.contains("static init"), "{}", r.log_result);
            assert!(r.log_result.contains("Init Duration:"), "{}", r.log_result);
            let report = r.log_result.lines().find(|l| l.starts_with("REPORT"));
            eprintln!("java17 cold start: {}", report.unwrap_or("no REPORT line"));
        }
    }

    // Class::method with a List event, a Map result, the context and the heap size.
    let mut req = f("info", "example.Hello::info");
    req.environment.insert("GREETING".into(), "hi".into());
    c.functions.create_function(req).await.unwrap();
    let r = invoke(&mut c, "info", r#"[1, "two", {"three": 3.5}, null, true]"#).await;
    assert_eq!(
        r.function_error,
        "",
        "{}",
        String::from_utf8_lossy(&r.payload)
    );
    let v = json(&r);
    assert_eq!(
        v["echo"],
        serde_json::json!([1, "two", {"three": 3.5}, null, true])
    );
    assert_eq!(v["requestId"], r.request_id);
    assert_eq!(v["functionName"], "info");
    assert_eq!(v["memory"], 256);
    let remaining = v["remaining"].as_i64().unwrap();
    assert!(remaining > 0 && remaining <= 15_000, "{v}");
    assert!(
        v["arn"].as_str().unwrap().ends_with(":function:info"),
        "{v}"
    );
    assert_eq!(v["user"], "sbx_user1051", "the JVM must not run as root");
    let heap = v["maxHeapMB"].as_i64().unwrap();
    assert!(
        (150..=220).contains(&heap),
        "-Xmx must be ~85% of the function's 256 MB: {heap} MB"
    );
    assert_eq!(v["java"], "17");
    assert_eq!(v["greeting"], "hi");
    assert_eq!(v["childGreeting"], "hi", "a child process's environment");
    assert_eq!(v["ok"], true);

    // POJOs: an event into a class with setters and a public field, a record back.
    c.functions
        .create_function(f("orders", "example.Orders::handle"))
        .await
        .unwrap();
    let r = invoke(
        &mut c,
        "orders",
        r#"{"item":"pen","quantity":12,"tags":["a",1],"unknown":true}"#,
    )
    .await;
    assert_eq!(
        r.function_error,
        "",
        "{}",
        String::from_utf8_lossy(&r.payload)
    );
    assert_eq!(
        json(&r),
        serde_json::json!({"item": "pen", "total": 36, "bulk": true, "tags": ["a", 1]})
    );

    // RequestStreamHandler: raw bytes in, raw bytes out.
    c.functions
        .create_function(f("upper", "example.Upper"))
        .await
        .unwrap();
    let r = invoke(&mut c, "upper", r#""shout""#).await;
    assert_eq!(
        r.function_error,
        "",
        "{}",
        String::from_utf8_lossy(&r.payload)
    );
    assert_eq!(
        json(&r),
        serde_json::json!({"upper": "SHOUT", "fn": "upper"})
    );

    // A thrown exception: Lambda's Java error document, and the instance stays usable.
    c.functions
        .create_function(f("fail", "example.Hello::fail"))
        .await
        .unwrap();
    for _ in 0..2 {
        let r = invoke(&mut c, "fail", r#""x""#).await;
        assert_eq!(r.function_error, "Unhandled");
        let v = json(&r);
        assert_eq!(v["errorType"], "java.lang.IllegalStateException", "{v}");
        assert_eq!(v["errorMessage"], "boom: x", "{v}");
        let trace = v["stackTrace"].as_array().expect("stackTrace array");
        assert!(
            trace[0]
                .as_str()
                .unwrap()
                .starts_with("example.Hello.fail(Hello.java:"),
            "{v}"
        );
        assert!(
            trace
                .iter()
                .all(|f| !f.as_str().unwrap().contains("flint.runtime")),
            "runtime frames leaked: {v}"
        );
    }
    assert_eq!(
        agent.instances_of("fail").await,
        1,
        "an error must not kill the JVM"
    );

    // An event the handler's type cannot take.
    let r = invoke(&mut c, "hello", r#""not a map""#).await;
    assert_eq!(r.function_error, "Unhandled");
    assert_eq!(json(&r)["errorType"], "Runtime.UnmarshalError");

    // Init errors: a missing class, a missing method, a class that is no handler.
    let cases = [
        (
            "noclass",
            "example.Nope",
            "java.lang.ClassNotFoundException",
            "Class not found: example.Nope",
        ),
        (
            "nomethod",
            "example.Hello::nope",
            "Runtime.HandlerNotFound",
            "",
        ),
        (
            "nothandler",
            "example.lib.Helper",
            "Runtime.HandlerNotFound",
            "",
        ),
    ];
    for (name, handler, want_type, want_msg) in cases {
        c.functions.create_function(f(name, handler)).await.unwrap();
        let r = invoke(&mut c, name, "{}").await;
        assert_eq!(r.function_error, "Unhandled", "{name}");
        let v = json(&r);
        assert_eq!(v["errorType"], want_type, "{name}: {v}");
        let msg = v["errorMessage"].as_str().unwrap();
        assert!(!msg.is_empty(), "{name}: {v}");
        if !want_msg.is_empty() {
            assert_eq!(msg, want_msg, "{name}");
        }
        assert!(v["stackTrace"].is_array(), "{name}: {v}");
    }
    let leaked = agent.wait_all_accounted(Duration::from_secs(10)).await;
    assert_eq!(leaked, 0, "failed inits left sandboxes");
    for (name, ..) in cases {
        assert_eq!(agent.instances_of(name).await, 0, "{name} kept an instance");
    }
}

#[tokio::test]
async fn java17_timeout_heap_exhaustion_and_cgroup_out_of_memory() {
    let code = java_bundle();
    let agent = TestAgent::start().await;
    let mut c = agent.client().await;

    // A timeout: Lambda's message, and the JVM is torn down.
    let mut req = java_function("sleepy", "example.Limits::sleep", &code);
    req.timeout_s = 1;
    c.functions.create_function(req).await.unwrap();
    let t0 = Instant::now();
    let r = invoke(&mut c, "sleepy", "{}").await;
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "took {:?}",
        t0.elapsed()
    );
    assert_eq!(r.function_error, "Unhandled", "{}", r.log_result);
    let v = json(&r);
    assert!(
        v["errorMessage"]
            .as_str()
            .unwrap_or("")
            .contains("Task timed out after 1.00 seconds"),
        "{v}"
    );
    assert_eq!(
        agent.instances_of("sleepy").await,
        0,
        "timed-out instance kept"
    );

    // The Java heap is full: the handler's OutOfMemoryError is the error document, as
    // Lambda's Java runtime reports it, and the JVM then halts (a VirtualMachineError is
    // fatal), so the next invocation gets a new instance. 512 MB: the heap (85%) fills
    // before the JVM's resident memory reaches the cgroup's limit.
    let mut req = java_function("heap", "example.Limits::heap", &code);
    req.memory_mb = 512;
    req.timeout_s = 30;
    c.functions.create_function(req).await.unwrap();
    for attempt in 1..=2 {
        let r = invoke(&mut c, "heap", "{}").await;
        assert_eq!(r.function_error, "Unhandled", "{}", r.log_result);
        let v = json(&r);
        assert_eq!(
            v["errorType"], "java.lang.OutOfMemoryError",
            "attempt {attempt}: {v}\n{}",
            r.log_result
        );
        assert_eq!(v["errorMessage"], "Java heap space", "{v}");
        assert!(v["stackTrace"].is_array(), "{v}");
        // The JVM halted after the first: the second runs on a new instance.
        assert!(r.timings.unwrap().cold_start, "attempt {attempt}");
    }

    // Memory outside the heap: the cgroup's limit kills the JVM, Runtime.OutOfMemory.
    let mut req = java_function("offheap", "example.Limits::offHeap", &code);
    req.memory_mb = 128;
    req.timeout_s = 30;
    c.functions.create_function(req).await.unwrap();
    let r = invoke(&mut c, "offheap", "{}").await;
    assert_eq!(r.function_error, "Unhandled", "{}", r.log_result);
    assert_eq!(
        json(&r)["errorType"],
        "Runtime.OutOfMemory",
        "{}\n{}",
        String::from_utf8_lossy(&r.payload),
        r.log_result
    );
    // The function recovers with a new instance.
    c.functions
        .create_function(java_function("after", "example.Hello", &code))
        .await
        .unwrap();
    assert_eq!(
        json(&invoke_ok(&mut c, "after", r#"{"name":"x"}"#).await),
        "HI X! #1"
    );
    let leaked = agent.wait_all_accounted(Duration::from_secs(10)).await;
    assert_eq!(leaked, 0, "ended instances not destroyed");
}

#[tokio::test]
async fn warm_pool_prestarts_the_jvm_and_hands_it_the_function() {
    let code = java_bundle();
    let agent = TestAgent::start_args(300, &["--pool-warm", "java17:256=1"]).await;
    let mut c = agent.client().await;
    // Two functions on the same pool key, each with its own environment.
    for (name, greeting) in [("pooled-a", "hello a"), ("pooled-b", "hello b")] {
        let mut req = java_function(name, "example.Hello::info", &code);
        req.environment.insert("GREETING".into(), greeting.into());
        c.functions.create_function(req).await.unwrap();
        agent
            .wait_pool_ready(RUNTIME, 256, Duration::from_secs(30))
            .await;
        let r = invoke_ok(&mut c, name, "[]").await;
        let t = r.timings.unwrap();
        assert!(t.cold_start && t.pool_hit, "expected a pool hit: {t:?}");
        assert_eq!(t.sandbox_ns, 0, "a pool hit creates no sandbox");
        let v = json(&r);
        assert_eq!(
            v["greeting"], greeting,
            "System.getenv after hand-over: {v}"
        );
        assert_eq!(v["envName"], name, "{v}");
        assert_eq!(v["functionName"], name, "{v}");
        assert_eq!(v["envMemory"], "256", "{v}");
        assert_eq!(v["memory"], 256, "{v}");
        assert_eq!(v["prestart"], serde_json::Value::Null, "{v}");
        let heap = v["maxHeapMB"].as_i64().unwrap();
        assert!(
            (150..=220).contains(&heap),
            "-Xmx must be ~85% of the pool's (= the function's) 256 MB: {heap} MB"
        );
        assert_eq!(v["user"], "sbx_user1051");
    }
    // JVM options in the function's environment are read at JVM start only: such a
    // function gets a JVM started for it, with its options.
    let mut req = java_function("options", "example.Hello::info", &code);
    req.environment
        .insert("JAVA_TOOL_OPTIONS".into(), "-Dflint.test=yes".into());
    c.functions.create_function(req).await.unwrap();
    agent
        .wait_pool_ready(RUNTIME, 256, Duration::from_secs(30))
        .await;
    let r = invoke_ok(&mut c, "options", "[]").await;
    let t = r.timings.unwrap();
    assert!(t.cold_start && !t.pool_hit, "JAVA_TOOL_OPTIONS: {t:?}");
    assert_eq!(json(&r)["prop"], "yes");
}
