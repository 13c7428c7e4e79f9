//! HTTP function URLs through a real flintd (`--http-listen`), driven by real clients:
//! curl (Debian's binary) for a GET with a query, repeated headers and cookies (the
//! 2.0 event's shape, checked field by field), a binary POST (an isBase64Encoded round
//! trip of every byte value), a JSON result without statusCode, a function error
//! (502), a timeout (504), a throttle (429), a body over 6 MB (413), an unknown URL
//! (404), a disabled trigger (403), routing by Host, keep-alive (two URLs on one
//! connection) and HTTP/2 with prior knowledge; and headless chromium (Debian's
//! package, installed by images/host-deps.sh) rendering an HTML page a Python
//! function serves, whose JavaScript writes into the DOM. The handler is
//! integration/fixtures/http_urls/web.py, written for Lambda's event shape.

use flint_integration::*;
use flint_proto::v1::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const WEB: &str = include_str!("../fixtures/http_urls/web.py");

const SLOW: &str = r#"import time
def handler(event, context):
    time.sleep(10)
    return "late"
"#;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn flint(agent: &TestAgent, args: &[&str]) -> String {
    let o = Command::new(binary("flint"))
        .arg("--endpoint")
        .arg(&agent.socket)
        .args(args)
        .output()
        .expect("run flint");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "flint {args:?} failed: {}\n{out}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// One response curl saw.
#[derive(Debug)]
struct Got {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// New connections curl opened for this transfer.
    connects: u32,
    version: String,
}

impl Got {
    fn header(&self, k: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    }
    fn headers_named(&self, k: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
            .collect()
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// Runs curl on `urls` (each with its own output files) with `args` before them;
/// fails fast (15 s) with the function logs.
fn curl(dir: &Path, logs: &Path, args: &[&str], urls: &[&str]) -> Vec<Got> {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "15"]).args(args);
    for (i, u) in urls.iter().enumerate() {
        cmd.arg("-D")
            .arg(dir.join(format!("h{i}")))
            .arg("-o")
            .arg(dir.join(format!("b{i}")))
            .arg("-w")
            .arg("%{http_code} %{num_connects} %{http_version}\\n")
            .arg(u);
    }
    let o = cmd.output().expect("run curl");
    assert!(
        o.status.success(),
        "curl {args:?} {urls:?}: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        function_logs(logs)
    );
    let stats = String::from_utf8_lossy(&o.stdout).into_owned();
    stats
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let head = std::fs::read_to_string(dir.join(format!("h{i}"))).unwrap_or_default();
            Got {
                status: f[0].parse().expect("status"),
                connects: f[1].parse().expect("connects"),
                version: f[2].to_string(),
                headers: head
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect(),
                body: std::fs::read(dir.join(format!("b{i}"))).unwrap_or_default(),
            }
        })
        .collect()
}

fn function_logs(logs: &Path) -> String {
    let mut out = String::new();
    for e in std::fs::read_dir(logs).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        let tail: String = text
            .chars()
            .rev()
            .take(3000)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        out.push_str(&format!("--- {}:\n{tail}\n", e.path().display()));
    }
    out
}

async fn wait_listening(addr: &str) {
    let t0 = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "nothing listening on {addr}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn function_urls_serve_curl_and_headless_chromium() {
    let addr = format!("127.0.0.1:{}", free_port());
    let metrics = format!("127.0.0.1:{}", free_port());
    let agent =
        TestAgent::start_args(300, &["--http-listen", &addr, "--metrics-listen", &metrics]).await;
    wait_listening(&addr).await;
    let logs = agent.data_dir.join("logs");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut c = agent.client().await;
    c.functions
        .create_function(python_function("web", WEB))
        .await
        .unwrap();
    let mut slow = python_function("slow", SLOW);
    slow.timeout_s = 1;
    c.functions.create_function(slow).await.unwrap();
    c.functions
        .create_function(python_function("throttled", WEB))
        .await
        .unwrap();
    // Reserved concurrency 0: every invocation is throttled, as in Lambda.
    c.functions
        .put_function_concurrency(PutFunctionConcurrencyRequest {
            name: "throttled".into(),
            reserved_concurrency: 0,
        })
        .await
        .unwrap();

    let out = flint(
        &agent,
        &["triggers", "create", "web", "--function", "web", "--http"],
    );
    let base = format!("http://{addr}/web");
    assert!(out.contains(&format!("url:        {base}/")), "{out}");
    for (t, f) in [("slow", "slow"), ("throttled", "throttled"), ("off", "web")] {
        flint(
            &agent,
            &[
                "triggers",
                "create",
                t,
                "--function",
                f,
                "--http",
                "--auth",
                "none",
            ],
        );
    }
    flint(&agent, &["triggers", "disable", "off"]);
    let ls = flint(&agent, &["triggers", "ls"]);
    assert!(
        ls.contains(&format!("{base}/")) && ls.contains("http"),
        "{ls}"
    );

    // GET with a query, repeated headers and cookies: the event, field by field.
    let got = curl(
        dir,
        &logs,
        &[
            "-b",
            "c1=v1; c2=v2",
            "-H",
            "X-Multi: a",
            "-H",
            "X-Multi: b",
            "-H",
            "X-Forwarded-For: 10.9.8.7",
        ],
        &[&format!("{base}/echo?x=1&x=2&y=a%20b&empty=")],
    )
    .remove(0);
    assert_eq!(got.status, 200, "{:?}\n{}", got, function_logs(&logs));
    let rid = got
        .header("x-amzn-requestid")
        .expect("x-amzn-RequestId")
        .to_string();
    assert_eq!(
        got.header("x-lambda-request-id"),
        Some(rid.as_str()),
        "the function's context.aws_request_id is the URL's request id"
    );
    assert_eq!(
        got.headers_named("set-cookie"),
        ["session=abc; Path=/", "theme=dark"]
    );
    let e = got.json();
    assert_eq!(e["version"], "2.0");
    assert_eq!(e["routeKey"], "$default");
    assert_eq!(e["rawPath"], "/echo");
    assert_eq!(e["rawQueryString"], "x=1&x=2&y=a%20b&empty=");
    assert_eq!(
        e["queryStringParameters"],
        serde_json::json!({"x": "1,2", "y": "a b", "empty": ""})
    );
    assert_eq!(e["cookies"], serde_json::json!(["c1=v1", "c2=v2"]));
    assert_eq!(e["headers"]["x-multi"], "a,b");
    assert_eq!(e["headers"]["host"], addr.as_str());
    assert_eq!(e["headers"]["x-forwarded-for"], "10.9.8.7, 127.0.0.1");
    assert_eq!(e["headers"]["x-forwarded-proto"], "http");
    assert_eq!(
        e["headers"]["x-forwarded-port"],
        addr.rsplit(':').next().unwrap()
    );
    assert!(e["headers"].get("cookie").is_none(), "{e}");
    assert_eq!(e["isBase64Encoded"], false);
    assert!(e.get("body").is_none(), "{e}");
    let rc = &e["requestContext"];
    assert_eq!(rc["requestId"], rid.as_str());
    assert_eq!(rc["apiId"], "web");
    assert_eq!(rc["accountId"], "anonymous");
    assert_eq!(rc["domainName"], addr.as_str());
    assert_eq!(rc["stage"], "$default");
    assert_eq!(rc["routeKey"], "$default");
    assert_eq!(rc["http"]["method"], "GET");
    assert_eq!(rc["http"]["path"], "/echo");
    assert_eq!(rc["http"]["protocol"], "HTTP/1.1");
    assert_eq!(rc["http"]["sourceIp"], "127.0.0.1");
    assert!(
        rc["http"]["userAgent"]
            .as_str()
            .unwrap()
            .starts_with("curl/"),
        "{rc}"
    );
    let epoch_ms = rc["timeEpoch"].as_i64().unwrap();
    let now_ms = chrono::Utc::now().timestamp_millis();
    assert!((now_ms - epoch_ms).abs() < 60_000, "{rc}");
    assert!(rc["time"].as_str().unwrap().ends_with(" +0000"), "{rc}");

    // A binary POST: base64 in the event, every byte back.
    let bytes: Vec<u8> = (0..256 * 1024).map(|i| (i * 7 % 256) as u8).collect();
    let file = dir.join("blob");
    std::fs::write(&file, &bytes).unwrap();
    let got = curl(
        dir,
        &logs,
        &[
            "-H",
            "content-type: application/octet-stream",
            "--data-binary",
            &format!("@{}", file.display()),
        ],
        &[&format!("{base}/bytes")],
    )
    .remove(0);
    assert_eq!(got.status, 201, "{}", String::from_utf8_lossy(&got.body));
    assert_eq!(got.header("x-was-base64"), Some("true"));
    assert_eq!(got.header("x-length"), Some("262144"));
    assert_eq!(got.header("content-type"), Some("application/octet-stream"));
    assert!(
        got.body == bytes,
        "the body came back changed ({} bytes)",
        got.body.len()
    );

    // JSON without statusCode: a 200 application/json response with that JSON.
    let got = curl(dir, &logs, &[], &[&format!("{base}/plain")]).remove(0);
    assert_eq!(got.status, 200);
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert_eq!(got.json(), serde_json::json!({"hello": "world", "n": 1}));

    // A function error, a timeout, a throttle, too large, unknown, disabled.
    let got = curl(dir, &logs, &[], &[&format!("{base}/boom")]).remove(0);
    assert_eq!(got.status, 502, "{}", String::from_utf8_lossy(&got.body));
    assert_eq!(
        got.json(),
        serde_json::json!({"Message": "Internal Server Error"})
    );
    assert!(got.header("x-amzn-requestid").is_some());
    let t0 = Instant::now();
    let got = curl(dir, &logs, &[], &[&format!("http://{addr}/slow/")]).remove(0);
    assert_eq!(got.status, 504, "{}", String::from_utf8_lossy(&got.body));
    assert!(got.json()["Message"].is_string());
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "the 1 s timeout took {:?}",
        t0.elapsed()
    );
    let got = curl(dir, &logs, &[], &[&format!("http://{addr}/throttled/")]).remove(0);
    assert_eq!(got.status, 429, "{}", String::from_utf8_lossy(&got.body));
    assert!(got.json()["Message"]
        .as_str()
        .unwrap()
        .starts_with("Rate Exceeded."));
    let big = dir.join("big");
    std::fs::write(&big, vec![b'a'; 6 * 1024 * 1024 + 1]).unwrap();
    let got = curl(
        dir,
        &logs,
        &[
            "-H",
            "content-type: text/plain",
            "--data-binary",
            &format!("@{}", big.display()),
        ],
        &[&format!("{base}/echo")],
    )
    .remove(0);
    assert_eq!(got.status, 413, "{}", String::from_utf8_lossy(&got.body));
    let got = curl(dir, &logs, &[], &[&format!("http://{addr}/nope/x")]).remove(0);
    assert_eq!(got.status, 404);
    assert!(got.json()["Message"]
        .as_str()
        .unwrap()
        .contains("No function URL at /nope/x"));
    let got = curl(dir, &logs, &[], &[&format!("http://{addr}/off/echo")]).remove(0);
    assert_eq!(got.status, 403, "{}", String::from_utf8_lossy(&got.body));

    // Routing by Host: the whole path is the function's.
    let got = curl(
        dir,
        &logs,
        &["-H", "Host: web.localhost"],
        &[&format!("http://{addr}/echo")],
    )
    .remove(0);
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["requestContext"]["domainPrefix"], "web");
    assert_eq!(got.json()["rawPath"], "/echo");

    // Keep-alive: the second URL reuses the first one's connection.
    let two = curl(
        dir,
        &logs,
        &[],
        &[&format!("{base}/plain"), &format!("{base}/echo")],
    );
    assert_eq!(two.iter().map(|g| g.status).collect::<Vec<_>>(), [200, 200]);
    assert_eq!(
        two.iter().map(|g| g.connects).collect::<Vec<_>>(),
        [1, 0],
        "keep-alive: {two:?}"
    );

    // HTTP/2 with prior knowledge (h2c). One request per curl: Debian's curl 7.88.1
    // fails a second transfer on a reused prior-knowledge connection before sending
    // it ("Error in the HTTP2 framing layer"; flintd's log shows no second stream).
    let got = curl(
        dir,
        &logs,
        &["--http2-prior-knowledge"],
        &[&format!("{base}/echo")],
    )
    .remove(0);
    assert_eq!((got.status, got.version.as_str()), (200, "2"), "{got:?}");
    let e = got.json();
    assert_eq!(e["requestContext"]["http"]["protocol"], "HTTP/2.0");
    assert_eq!(
        e["headers"]["host"],
        addr.as_str(),
        "HTTP/2's :authority is the host"
    );
    assert_eq!(got.headers_named("set-cookie").len(), 2);
    let got = curl(
        dir,
        &logs,
        &["--http2-prior-knowledge"],
        &[&format!("{base}/plain")],
    )
    .remove(0);
    assert_eq!((got.status, got.version.as_str()), (200, "2"), "{got:?}");
    assert_eq!(got.json(), serde_json::json!({"hello": "world", "n": 1}));

    // A real browser runs the page's script.
    let profile = tempfile::tempdir().unwrap();
    let o = Command::new("timeout")
        .args([
            "60",
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--dump-dom", &format!("{base}/page")])
        .output()
        .expect("run chromium (images/host-deps.sh installs it)");
    let dom = String::from_utf8_lossy(&o.stdout);
    assert!(
        dom.contains("rendered by javascript: 42 true"),
        "chromium ({}) did not render the script's text; DOM:\n{dom}\nstderr:\n{}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr),
        function_logs(&logs)
    );

    // What the triggers did: counters and the last error.
    let m = curl(dir, &logs, &[], &[&format!("http://{metrics}/metrics")]).remove(0);
    let text = String::from_utf8_lossy(&m.body);
    assert!(
        text.contains(
            "flint_trigger_http_errors_total{trigger=\"web\",class=\"function_error\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("flint_trigger_http_errors_total{trigger=\"slow\",class=\"timeout\"} 1"),
        "{text}"
    );
    assert!(
        text.contains(
            "flint_trigger_http_errors_total{trigger=\"throttled\",class=\"throttle\"} 1"
        ),
        "{text}"
    );
    let slow = flint(&agent, &["--json", "triggers", "get", "slow"]);
    let slow: serde_json::Value = serde_json::from_str(&slow).unwrap();
    let t0 = Instant::now();
    let mut last = slow["last_error"].as_str().unwrap_or_default().to_string();
    while !last.contains("504 timeout") && t0.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let v: serde_json::Value =
            serde_json::from_str(&flint(&agent, &["--json", "triggers", "get", "slow"])).unwrap();
        last = v["last_error"].as_str().unwrap_or_default().to_string();
    }
    assert!(last.contains("504 timeout"), "last error: {last:?}");
    assert_eq!(slow["url"], format!("http://{addr}/slow/"));
}

/// Over TLS (`--http-tls-cert`/`--http-tls-key`): the URL is https, curl negotiates
/// HTTP/2 by ALPN and, with `--http1.1`, HTTP/1.1.
#[tokio::test]
async fn function_urls_over_tls_speak_h2_by_alpn() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let addr = format!("127.0.0.1:{}", free_port());
    let (cert_s, key_s) = (cert.display().to_string(), key.display().to_string());
    let agent = TestAgent::start_args(
        300,
        &[
            "--http-listen",
            &addr,
            "--http-tls-cert",
            &cert_s,
            "--http-tls-key",
            &key_s,
        ],
    )
    .await;
    wait_listening(&addr).await;
    let logs = agent.data_dir.join("logs");
    let mut c = agent.client().await;
    c.functions
        .create_function(python_function("web", WEB))
        .await
        .unwrap();
    let out = flint(
        &agent,
        &["triggers", "create", "web", "--function", "web", "--http"],
    );
    let base = format!("https://{addr}/web");
    assert!(out.contains(&format!("url:        {base}/")), "{out}");
    let got = curl(
        dir,
        &logs,
        &["--cacert", &cert_s],
        &[&format!("{base}/echo")],
    )
    .remove(0);
    assert_eq!((got.status, got.version.as_str()), (200, "2"), "{got:?}");
    assert_eq!(got.json()["requestContext"]["http"]["protocol"], "HTTP/2.0");
    assert_eq!(got.json()["headers"]["x-forwarded-proto"], "https");
    let got = curl(
        dir,
        &logs,
        &["--cacert", &cert_s, "--http1.1"],
        &[&format!("{base}/plain")],
    )
    .remove(0);
    assert_eq!((got.status, got.version.as_str()), (200, "1.1"), "{got:?}");
    assert_eq!(got.json(), serde_json::json!({"hello": "world", "n": 1}));
}
