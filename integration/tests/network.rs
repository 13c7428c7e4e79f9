//! Outbound networking end to end (issue 12, item 1), entirely inside network
//! namespaces this test makes: "host" (flintd runs there, so its nftables table,
//! forwarding switch and sandbox links never touch the real host) and "internet"
//! (an HTTP server at 203.0.113.10:8000 and another in a denied block at
//! 198.51.100.10:8000, a DNS server at 203.0.113.53 answering for internet.test),
//! joined by a veth pair. The real host's forwarding switch, nftables tables and
//! links are compared before and after.

use flint_agent::client::Client;
use flint_integration::*;
use flint_proto::v1::*;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Tries a TCP connection (and, for HTTP, a GET) from inside the function.
const PROBE: &str = r#"
import json, socket, urllib.request
def handler(e, c):
    out = {}
    for name, host, port, http in e['targets']:
        try:
            if http:
                with urllib.request.urlopen('http://%s:%d/hello.txt' % (host, port), timeout=e.get('t', 2)) as r:
                    out[name] = 'ok:' + r.read().decode().strip()
            else:
                s = socket.create_connection((host, port), timeout=e.get('t', 2))
                s.close()
                out[name] = 'ok'
        except Exception as x:
            out[name] = 'fail:' + type(x).__name__ + ':' + str(x)
    # Taking another address (SIOCSIFADDR on eth0): the namespace is not the sandbox's.
    try:
        import fcntl, struct
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        ifr = struct.pack('16sH2s4s8s', b'eth0', socket.AF_INET, bytes(2), socket.inet_aton('100.96.0.99'), bytes(8))
        fcntl.ioctl(u, 0x8916, ifr)
        out['readdress'] = 'ok'
    except Exception as x:
        out['readdress'] = 'fail:' + type(x).__name__
    try:
        out['resolv'] = open('/etc/resolv.conf').read()
    except Exception as x:
        out['resolv'] = 'fail:' + str(x)
    return out
"#;

/// Listens on 0.0.0.0:7000 in the background (kept by the instance), checks that its
/// own address on the sandbox link accepts, and returns that address.
const LISTENER: &str = r#"
import socket, threading
srv = []
def handler(e, c):
    if not srv:
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(('0.0.0.0', 7000)); s.listen(16); srv.append(s)
        threading.Thread(target=lambda: [s.accept()[0].close() for _ in iter(int, 1)], daemon=True).start()
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.connect(('203.0.113.10', 9))
    ip = u.getsockname()[0]
    socket.create_connection((ip, 7000), timeout=2).close()
    return ip
"#;

/// A named network namespace made for this test, deleted when dropped.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Netns {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("flt-{tag}-{}-{n}", std::process::id());
        sh(&["ip", "netns", "add", &name]);
        let ns = Netns(name);
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }
    fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.0)
    }
    fn exec(&self, cmd: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", &self.0];
        v.extend_from_slice(cmd);
        sh(&v)
    }
    fn spawn(&self, cmd: &[&str]) -> Child {
        Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"))
    }
    /// The sandbox links (flv*) in this namespace.
    fn sandbox_links(&self) -> Vec<String> {
        self.exec(&["ip", "-o", "link", "show"])
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .filter(|n| n.starts_with("flv"))
            .collect()
    }
    fn nft_tables(&self) -> String {
        self.exec(&["nft", "list", "tables"])
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// Runs a command and returns its stdout; panics with its stderr on failure.
fn sh(cmd: &[&str]) -> String {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Processes killed when dropped.
struct Servers(Vec<Child>);

impl Drop for Servers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The real host's state this test must not change.
fn host_state() -> (String, String, String) {
    let fwd = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default();
    let tables = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let links: Vec<String> = sh(&["ip", "-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(": ").nth(1).map(str::to_string))
        .filter(|n| n.starts_with("flv"))
        .collect();
    (fwd, tables, links.join(","))
}

/// "host" and "internet" namespaces with their servers.
struct World {
    host: Netns,
    _inet: Netns,
    _servers: Servers,
    _www: tempfile::TempDir,
}

fn world() -> World {
    for tool in ["ip", "nft", "dnsmasq"] {
        assert!(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success()),
            "{tool} is missing: run images/host-deps.sh"
        );
    }
    let host = Netns::new("host");
    let inet = Netns::new("inet");
    let tail = &host.0[host.0.len().saturating_sub(9)..];
    let (h_if, i_if) = (format!("flh{tail}"), format!("fli{tail}"));
    sh(&[
        "ip", "link", "add", &h_if, "netns", &host.0, "type", "veth", "peer", "name", &i_if,
        "netns", &inet.0,
    ]);
    host.exec(&["ip", "addr", "add", "10.250.0.1/24", "dev", &h_if]);
    host.exec(&["ip", "link", "set", &h_if, "up"]);
    host.exec(&["ip", "route", "add", "default", "via", "10.250.0.2"]);
    inet.exec(&["ip", "addr", "add", "10.250.0.2/24", "dev", &i_if]);
    inet.exec(&["ip", "link", "set", &i_if, "up"]);
    for a in ["203.0.113.10/32", "203.0.113.53/32", "198.51.100.10/32"] {
        inet.exec(&["ip", "addr", "add", a, "dev", "lo"]);
    }
    let www = tempfile::tempdir().unwrap();
    std::fs::write(www.path().join("hello.txt"), "hello from the internet\n").unwrap();
    let dir = www.path().to_str().unwrap();
    let servers = Servers(vec![
        inet.spawn(&[
            "/usr/bin/python3",
            "-m",
            "http.server",
            "--bind",
            "203.0.113.10",
            "--directory",
            dir,
            "8000",
        ]),
        inet.spawn(&[
            "/usr/bin/python3",
            "-m",
            "http.server",
            "--bind",
            "198.51.100.10",
            "--directory",
            dir,
            "8000",
        ]),
        inet.spawn(&[
            "dnsmasq",
            "--no-daemon",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--listen-address=203.0.113.53",
            "--bind-interfaces",
            "--port=53",
            "--address=/internet.test/203.0.113.10",
            "--pid-file=",
        ]),
        // A service of "the host" on every address: sandboxes must not reach it.
        host.spawn(&[
            "/usr/bin/python3",
            "-m",
            "http.server",
            "--bind",
            "0.0.0.0",
            "--directory",
            dir,
            "8001",
        ]),
    ]);
    // The servers answer before any function runs (fail fast otherwise).
    let t0 = Instant::now();
    loop {
        let ok = Command::new("ip")
            .args(["netns", "exec", &host.0, "/usr/bin/python3", "-c"])
            .arg("import socket\nfor a in [('203.0.113.10',8000),('198.51.100.10',8000),('10.250.0.1',8001)]: socket.create_connection(a, timeout=1).close()")
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "test servers did not start within 10 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    World {
        host,
        _inet: inet,
        _servers: servers,
        _www: www,
    }
}

fn outbound(name: &str, code: &str) -> CreateFunctionRequest {
    CreateFunctionRequest {
        network: "outbound".into(),
        timeout_s: 10,
        ..python_function(name, code)
    }
}

async fn probe(c: &mut Client, f: &str, targets: serde_json::Value) -> serde_json::Value {
    let payload = serde_json::json!({ "targets": targets, "t": 1 }).to_string();
    json(&invoke_ok(c, f, &payload).await)
}

fn starts(v: &serde_json::Value, key: &str, prefix: &str) -> bool {
    v[key].as_str().is_some_and(|s| s.starts_with(prefix))
}

#[tokio::test(flavor = "multi_thread")]
async fn outbound_functions_reach_allowed_destinations_and_nothing_else() {
    let before = host_state();
    let w = world();
    let mut agent = TestAgent::start_in(
        Some(&w.host.path()),
        300,
        &[
            "--network-enable-forwarding",
            "--egress-deny",
            "198.51.100.0/24",
            "--network-dns",
            "203.0.113.53",
            "--pool-max",
            "0",
        ],
    )
    .await;
    let mut c = agent.client().await;
    c.functions
        .create_function(outbound("out", PROBE))
        .await
        .expect("create out");
    c.functions
        .create_function(python_function("closed", PROBE))
        .await
        .expect("create closed");
    c.functions
        .create_function(outbound("listener", LISTENER))
        .await
        .expect("create listener");
    let got = c
        .functions
        .get_function(GetFunctionRequest {
            name: "closed".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.network, "none", "the default is loopback only");

    let targets = serde_json::json!([
        ["by_ip", "203.0.113.10", 8000, true],
        ["by_name", "internet.test", 8000, true],
        ["closed_port", "203.0.113.10", 9, false],
        ["denied", "198.51.100.10", 8000, true],
        ["host_lan", "10.250.0.1", 8001, false],
        ["host_gateway", "100.96.0.0", 8001, false],
        ["metadata", "169.254.169.254", 80, false],
    ]);
    let r = probe(&mut c, "out", targets.clone()).await;
    assert_eq!(r["by_ip"], "ok:hello from the internet", "{r:#}");
    assert_eq!(r["by_name"], "ok:hello from the internet", "{r:#}");
    assert_eq!(r["readdress"], "fail:PermissionError", "{r:#}");
    // Without an allow list a closed port is refused by the server's host (the
    // allow-list test tells a policy drop from this by its timeout).
    assert!(
        starts(&r, "closed_port", "fail:ConnectionRefusedError"),
        "{r:#}"
    );
    assert!(
        r["resolv"]
            .as_str()
            .unwrap()
            .contains("nameserver 203.0.113.53"),
        "{r:#}"
    );
    for k in ["denied", "host_lan", "host_gateway", "metadata"] {
        assert!(starts(&r, k, "fail:"), "{k} must be unreachable: {r:#}");
    }
    let r = probe(&mut c, "closed", targets).await;
    for k in ["by_ip", "by_name", "denied", "host_lan", "metadata"] {
        assert!(starts(&r, k, "fail:"), "network none reaches {k}: {r:#}");
    }

    // Another sandbox, listening on its link address: unreachable from "out".
    let ip = json(&invoke_ok(&mut c, "listener", "{}").await);
    let ip = ip.as_str().expect("listener address").to_string();
    assert!(ip.starts_with("100.96."), "{ip}");
    let r = probe(
        &mut c,
        "out",
        serde_json::json!([["neighbour", ip, 7000, false]]),
    )
    .await;
    assert!(
        starts(&r, "neighbour", "fail:"),
        "another sandbox is reachable: {r:#}"
    );

    // 50 sandboxes (FLINT_NETWORK_CHURN to change it) come and go: nothing stays behind.
    let churn: u32 = std::env::var("FLINT_NETWORK_CHURN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let t0 = Instant::now();
    for i in 0..churn {
        c.functions
            .update_function_configuration(UpdateFunctionConfigurationRequest {
                name: "out".into(),
                description: Some(format!("round {i}")),
                ..Default::default()
            })
            .await
            .expect("update");
        let r = probe(
            &mut c,
            "out",
            serde_json::json!([["by_ip", "203.0.113.10", 8000, true]]),
        )
        .await;
        assert_eq!(r["by_ip"], "ok:hello from the internet", "round {i}: {r:#}");
    }
    eprintln!("{churn} networked cold starts in {:?}", t0.elapsed());
    for f in ["out", "closed", "listener"] {
        c.functions
            .delete_function(DeleteFunctionRequest {
                name: f.into(),
                force: false,
            })
            .await
            .expect("delete");
    }
    let t0 = Instant::now();
    while !w.host.sandbox_links().is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "sandbox links left after every function was deleted: {:?}",
            w.host.sandbox_links()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        w.host.nft_tables().contains("inet flint"),
        "{}",
        w.host.nft_tables()
    );
    let st = agent.stop();
    assert!(st.success(), "flintd exited with {st}");
    assert!(
        !w.host.nft_tables().contains("inet flint"),
        "table left at stop: {}",
        w.host.nft_tables()
    );
    assert_eq!(
        host_state(),
        before,
        "the real host's forwarding, nftables tables or links changed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_allow_list_limits_egress_and_a_killed_flintds_links_and_table_are_swept() {
    let w = world();
    // An allow list: port 8000 of one address only (so not DNS, not other ports).
    let args = [
        "--network-enable-forwarding",
        "--pool-max",
        "0",
        "--egress-allow",
        "203.0.113.10/32:8000",
    ];
    let mut agent = TestAgent::start_in(Some(&w.host.path()), 300, &args).await;
    let mut c = agent.client().await;
    c.functions
        .create_function(outbound("out", PROBE))
        .await
        .expect("create");
    let r = probe(
        &mut c,
        "out",
        serde_json::json!([["by_ip", "203.0.113.10", 8000, true]]),
    )
    .await;
    assert_eq!(r["by_ip"], "ok:hello from the internet", "{r:#}");
    let r = probe(
        &mut c,
        "out",
        serde_json::json!([
            ["other_port", "203.0.113.10", 9, false],
            ["other_host", "198.51.100.10", 8000, true],
        ]),
    )
    .await;
    // Dropped by the policy (a timeout), not refused by the server's host.
    assert!(starts(&r, "other_port", "fail:TimeoutError"), "{r:#}");
    assert!(starts(&r, "other_host", "fail:"), "{r:#}");
    assert_eq!(w.host.sandbox_links().len(), 1);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent.pid() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    agent.restart_after_kill().await;
    // The launcher died with flintd; its link and the table are swept at start-up.
    let t0 = Instant::now();
    while !w.host.sandbox_links().is_empty() || w.host.nft_tables().contains("inet flint") {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "left after a restart: {:?} / {}",
            w.host.sandbox_links(),
            w.host.nft_tables()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut c = agent.client().await;
    let r = probe(
        &mut c,
        "out",
        serde_json::json!([["by_ip", "203.0.113.10", 8000, true]]),
    )
    .await;
    assert_eq!(
        r["by_ip"], "ok:hello from the internet",
        "after restart: {r:#}"
    );
}

/// The middle value.
fn p50(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Cold-start cost of networking: 20 cold starts of the same function with network
/// none and 20 with outbound, interleaved in one run (warm pool off, so each is a new
/// sandbox; each once the retired instance is destroyed), p50 of the client-side
/// latency, of the sandbox phase and of the runtime's init. Printed for
/// docs/NETWORK.md; the bound only catches a gross regression.
#[tokio::test(flavor = "multi_thread")]
async fn cold_start_cost_of_networking() {
    let w = world();
    let args = ["--network-enable-forwarding", "--pool-max", "0"];
    let agent = TestAgent::start_in(Some(&w.host.path()), 300, &args).await;
    let mut c = agent.client().await;
    let code = "def handler(e, c):\n    return 1\n";
    c.functions
        .create_function(python_function("none", code))
        .await
        .expect("create none");
    c.functions
        .create_function(outbound("outbound", code))
        .await
        .expect("create outbound");
    let (mut wall, mut sandbox, mut init) = (
        [Vec::new(), Vec::new()],
        [Vec::new(), Vec::new()],
        [Vec::new(), Vec::new()],
    );
    for round in 0..21 {
        for (i, f) in ["none", "outbound"].iter().enumerate() {
            c.functions
                .update_function_configuration(UpdateFunctionConfigurationRequest {
                    name: f.to_string(),
                    description: Some(format!("round {round}")),
                    ..Default::default()
                })
                .await
                .expect("update");
            // The retired instance is gone (its link too) and the kernel has had a
            // moment for the namespace's clean-up: only the start is measured.
            let t0 = Instant::now();
            while agent.sandbox_count() > 1 || w.host.sandbox_links().len() > i ^ 1 {
                assert!(
                    t0.elapsed() < Duration::from_secs(10),
                    "retired instance not destroyed"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            let t0 = Instant::now();
            let r = invoke_ok(&mut c, f, "{}").await;
            let t = r.timings.expect("timings");
            assert!(t.cold_start && !t.pool_hit, "{f}: not a cold start");
            if round > 0 {
                wall[i].push(t0.elapsed());
                sandbox[i].push(Duration::from_nanos(t.sandbox_ns));
                init[i].push(Duration::from_nanos(t.runtime_init_ns));
            }
        }
    }
    let [w_none, w_out] = wall.map(p50);
    let [s_none, s_out] = sandbox.map(p50);
    let [i_none, i_out] = init.map(p50);
    eprintln!(
        "cold start p50 of 20: none {w_none:?} (sandbox {s_none:?}, runtime init {i_none:?}), outbound {w_out:?} (sandbox {s_out:?}, runtime init {i_out:?}): networking adds {:?}",
        w_out.saturating_sub(w_none)
    );
    assert!(
        w_out < w_none + Duration::from_millis(250),
        "networking adds more than 250 ms to a cold start: none {w_none:?}, outbound {w_out:?}"
    );
}

/// The setting through the CLI: create with `--network outbound`, shown by `get`,
/// changed by `update-config`, a bad value refused with what to write. No sandbox
/// starts, so this runs on the real host.
#[tokio::test]
async fn the_network_setting_through_the_cli() {
    let agent = TestAgent::start().await;
    let code = tempfile::tempdir().unwrap();
    std::fs::write(
        code.path().join("app.py"),
        "def handler(e, c):\n    return 1\n",
    )
    .unwrap();
    let flint = |args: &[&str]| {
        Command::new(binary("flint"))
            .arg("--endpoint")
            .arg(&agent.socket)
            .args(args)
            .output()
            .expect("run flint")
    };
    let dir = code.path().to_str().unwrap();
    let o = flint(&[
        "create",
        "f",
        "--runtime",
        "python3.11",
        "--handler",
        "app.handler",
        "--code",
        dir,
        "--network",
        "outbound",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("network:       outbound"), "{out}");
    let o = flint(&["update-config", "f", "--network", "none"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = flint(&["--json", "get", "f"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["network"], "none", "{v}");
    let o = flint(&["update-config", "f", "--network", "vpc"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("\"none\" or \"outbound\""), "{err}");
}

/// Pre-started sandboxes of an outbound pool have their network made ahead: after one
/// cold start records the demand, the pool for (python3.11, 128, outbound) fills, and
/// another outbound function's first invocation is a pool hit that reaches the
/// "internet". Stopping flintd removes the pool's links.
#[tokio::test(flavor = "multi_thread")]
async fn an_outbound_pool_hit_has_its_network_ready() {
    let w = world();
    let mut agent =
        TestAgent::start_in(Some(&w.host.path()), 300, &["--network-enable-forwarding"]).await;
    let mut c = agent.client().await;
    let target = serde_json::json!([["by_ip", "203.0.113.10", 8000, true]]);
    c.functions
        .create_function(outbound("first", PROBE))
        .await
        .expect("create");
    let r = invoke_ok(
        &mut c,
        "first",
        &serde_json::json!({"targets": target}).to_string(),
    )
    .await;
    assert!(!r.timings.unwrap().pool_hit, "nothing was there to hit");
    let t0 = Instant::now();
    loop {
        let cap = agent.capacity().await;
        if cap
            .pools
            .iter()
            .any(|p| p.network == "outbound" && p.memory_mb == 128 && p.ready >= 1)
        {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "no outbound pool sandbox ready within 15 s: {:?}",
            cap.pools
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.functions
        .create_function(outbound("second", PROBE))
        .await
        .expect("create");
    let r = invoke_ok(
        &mut c,
        "second",
        &serde_json::json!({"targets": target}).to_string(),
    )
    .await;
    let t = r.timings.unwrap();
    assert!(t.cold_start && t.pool_hit, "expected a pool hit: {t:?}");
    assert_eq!(
        json(&r)["by_ip"],
        "ok:hello from the internet",
        "{}",
        json(&r)
    );
    let st = agent.stop();
    assert!(st.success(), "flintd exited with {st}");
    assert!(
        w.host.sandbox_links().is_empty(),
        "{:?}",
        w.host.sandbox_links()
    );
    assert!(!w.host.nft_tables().contains("inet flint"));
}

/// Waits until the pools for (python3.11, 128) of both networks are full (ready at
/// their target, at least 1): no refill runs beside the next measurement.
async fn pools_full(agent: &TestAgent) {
    let t0 = Instant::now();
    loop {
        let cap = agent.capacity().await;
        let full = |n: &str| {
            cap.pools
                .iter()
                .any(|p| p.network == n && p.memory_mb == 128 && p.ready >= p.target.max(1))
        };
        if full("none") && full("outbound") {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "pools not full within 15 s: {:?}",
            cap.pools
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Pool-hit cost of networking: 10 pool hits of new functions with network none and
/// 10 with outbound, interleaved in one run (each once both pools are full, so no
/// refill competes for the CPU), p50 of the client-side latency.
#[tokio::test(flavor = "multi_thread")]
async fn pool_hit_cost_of_networking() {
    let w = world();
    let args = ["--network-enable-forwarding"];
    let agent = TestAgent::start_in(Some(&w.host.path()), 300, &args).await;
    let mut c = agent.client().await;
    let code = "def handler(e, c):\n    return 1\n";
    let create = |name: String, network: &str| CreateFunctionRequest {
        network: network.to_string(),
        ..python_function(&name, code)
    };
    // One cold start each records the demand that fills both pools.
    for n in ["none", "outbound"] {
        c.functions
            .create_function(create(format!("seed-{n}"), n))
            .await
            .expect("create");
        invoke_ok(&mut c, &format!("seed-{n}"), "{}").await;
    }
    let mut wall = [Vec::new(), Vec::new()];
    for round in 0..10 {
        for (i, n) in ["none", "outbound"].iter().enumerate() {
            pools_full(&agent).await;
            let name = format!("{n}-{round}");
            c.functions
                .create_function(create(name.clone(), n))
                .await
                .expect("create");
            let t0 = Instant::now();
            let r = invoke_ok(&mut c, &name, "{}").await;
            let t = r.timings.expect("timings");
            assert!(t.cold_start && t.pool_hit, "{name}: not a pool hit: {t:?}");
            wall[i].push(t0.elapsed());
        }
    }
    let [none, out] = wall.map(p50);
    eprintln!(
        "pool hit p50 of 10: none {none:?}, outbound {out:?}: networking adds {:?}",
        out.saturating_sub(none)
    );
    assert!(
        out < none + Duration::from_millis(100),
        "networking adds more than 100 ms to a pool hit: none {none:?}, outbound {out:?}"
    );
}
