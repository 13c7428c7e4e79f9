//! End-to-end tests of the real `flint-init sandbox` binary: a busybox root file system
//! in a temporary directory, a socketpair as the host stream, a shell-script runtime
//! that talks to the Runtime API with busybox wget. Needs root (namespaces, mounts) and
//! /bin/busybox (`apt-get install -y busybox-static`); fails clearly without them.

use flint_proto::frame::{read_frame, write_frame};
use flint_proto::init::{
    guest_message::Msg, host_message, Configure, GuestMessage, HostMessage, Invoke, Layer, Shutdown,
};
use std::io::{Cursor, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const BUSYBOX: &str = "/bin/busybox";
const APPLETS: &[&str] = &[
    "sh", "wget", "id", "sleep", "cat", "touch", "grep", "sed", "tr", "echo", "hostname",
];

/// A runtime that serves invocations by replying with facts about its sandbox.
const BOOTSTRAP: &str = r#"#!/bin/sh
API="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
echo "bootstrap up as $(id -u)"
sleep 31337 &
while true; do
  wget -q -S -O /tmp/event "$API/invocation/next" 2> /tmp/headers
  ID=$(grep -i "Lambda-Runtime-Aws-Request-Id" /tmp/headers | sed 's/.*: *//' | tr -d '\r ')
  if touch /var/task/probe 2>/dev/null; then RO=no; else RO=yes; fi
  if touch /probe 2>/dev/null; then ROOT_RO=no; else ROOT_RO=yes; fi
  echo "handling $ID"
  BODY="{\"uid\":$(id -u),\"gid\":$(id -g),\"task_ro\":\"$RO\",\"root_ro\":\"$ROOT_RO\",\"host\":\"$(hostname)\",\"fn\":\"$AWS_LAMBDA_FUNCTION_NAME\",\"event\":$(cat /tmp/event)}"
  wget -q -O /dev/null --post-data "$BODY" "$API/invocation/$ID/response"
done
"#;

fn make_rootfs(dir: &Path) {
    assert!(
        Path::new(BUSYBOX).exists(),
        "{BUSYBOX} is missing: install it with `apt-get install -y busybox-static`"
    );
    assert!(
        nix::unistd::geteuid().is_root(),
        "the sandbox tests need root (namespaces and mounts)"
    );
    for d in [
        "proc",
        "sys",
        "dev",
        "tmp",
        "var/task",
        "var/runtime",
        "opt",
        "bin",
        "etc",
    ] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::copy(BUSYBOX, dir.join("bin/busybox")).unwrap();
    for a in APPLETS {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(a)).unwrap();
    }
}

fn zip_of(entries: &[(&str, u32, &str)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, mode, data) in entries {
        let opts = zip::write::SimpleFileOptions::default().unix_permissions(*mode);
        w.start_file(*name, opts).unwrap();
        w.write_all(data.as_bytes()).unwrap();
    }
    w.finish().unwrap().into_inner()
}

struct Sandbox {
    child: Child,
    host: UnixStream,
    _root: tempfile::TempDir,
    root_path: String,
}

impl Sandbox {
    fn start() -> Self {
        let root = tempfile::tempdir().unwrap();
        make_rootfs(root.path());
        let (host, guest) = UnixStream::pair().unwrap();
        host.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let fd = guest.as_raw_fd();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_flint-init"));
        cmd.args(["sandbox", "--rootfs"]).arg(root.path()).args([
            "--fd",
            &fd.to_string(),
            "--hostname",
            "testhost",
        ]);
        // SAFETY: fcntl is async-signal-safe; it makes the launcher inherit `guest`
        // (std creates it close-on-exec) without leaking it into other tests' children.
        unsafe {
            cmd.pre_exec(move || {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
        };
        let child = cmd.spawn().unwrap();
        drop(guest);
        let root_path = root.path().display().to_string();
        Sandbox {
            child,
            host,
            _root: root,
            root_path,
        }
    }

    fn send(&mut self, m: host_message::Msg) {
        write_frame(&mut self.host, &HostMessage { msg: Some(m) }).unwrap();
    }

    fn recv(&mut self) -> Msg {
        let m: GuestMessage = read_frame(&mut self.host).expect("a frame from flint-init");
        m.msg.expect("a message")
    }

    /// Next message that is not a Log; logs are collected into `logs`.
    fn recv_skip_logs(&mut self, logs: &mut Vec<u8>) -> Msg {
        loop {
            match self.recv() {
                Msg::Log(l) => logs.extend_from_slice(&l.data),
                other => return other,
            }
        }
    }

    fn configure(&mut self, code_zip: Vec<u8>, bootstrap: &str) {
        self.configure_with_layers(code_zip, bootstrap, Vec::new());
    }

    /// Hello, then one Layer frame per layer (as flintd sends a microVM), then
    /// Configure.
    fn configure_with_layers(&mut self, code_zip: Vec<u8>, bootstrap: &str, layers: Vec<Layer>) {
        match self.recv() {
            Msg::Hello(h) => {
                assert_eq!(h.protocol_version, flint_proto::init::PROTOCOL_VERSION);
                assert!(!h.init_version.is_empty());
            }
            other => panic!("expected Hello first, got {other:?}"),
        }
        let layer_count = layers.len() as u32;
        for layer in layers {
            self.send(host_message::Msg::Layer(layer));
        }
        let mut environment = std::collections::HashMap::new();
        environment.insert(
            "AWS_LAMBDA_FUNCTION_NAME".to_string(),
            "spoofed".to_string(),
        );
        self.send(host_message::Msg::Configure(Configure {
            function_name: "echo".into(),
            function_version: "$LATEST".into(),
            handler: "x".into(),
            memory_mb: 128,
            timeout_s: 3,
            environment,
            code_zip,
            bootstrap: vec![bootstrap.into()],
            runtime: "provided".into(),
            tmp_mb: 16,
            layer_count,
            ..Default::default()
        }));
    }

    fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "flint-init did not exit in {within:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn processes_with_cmdline(needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            if cmd.windows(needle.len()).any(|w| w == needle) {
                found.push(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    found
}

#[test]
fn invoke_round_trip_as_unprivileged_user_then_shutdown_leaves_nothing() {
    let mut sb = Sandbox::start();
    let t0 = Instant::now();
    sb.configure(
        zip_of(&[("bootstrap", 0o755, BOOTSTRAP)]),
        "/var/task/bootstrap",
    );
    let mut logs = Vec::new();
    match sb.recv_skip_logs(&mut logs) {
        Msg::Ready(r) => {
            assert!(r.init_ns > 0 && r.unpack_ns > 0 && r.unpack_ns < r.init_ns);
            eprintln!(
                "configure->ready {:?} (init_ns {} unpack_ns {})",
                t0.elapsed(),
                r.init_ns,
                r.unpack_ns
            );
        }
        other => panic!(
            "expected Ready, got {other:?}; logs: {}",
            String::from_utf8_lossy(&logs)
        ),
    }
    for i in 1..=2 {
        let id = format!("req-{i}");
        let t = Instant::now();
        sb.send(host_message::Msg::Invoke(Invoke {
            request_id: id.clone(),
            payload: format!("{{\"n\":{i}}}").into_bytes(),
            deadline_ms: 4_000_000_000_000,
            invoked_function_arn: "arn:aws:lambda:local:0:function:echo".into(),
            ..Default::default()
        }));
        let resp = match sb.recv_skip_logs(&mut logs) {
            Msg::Response(r) => r,
            other => {
                panic!(
                    "expected Response, got {other:?}; logs: {}",
                    String::from_utf8_lossy(&logs)
                )
            }
        };
        eprintln!("invoke {i} round trip {:?}", t.elapsed());
        assert_eq!(resp.request_id, id);
        let v: serde_json::Value = serde_json::from_slice(&resp.payload)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&resp.payload)));
        assert_eq!(v["uid"], 993, "runtime must run as uid 993: {v}");
        assert_eq!(v["gid"], 990);
        assert_eq!(v["task_ro"], "yes", "/var/task must be read-only: {v}");
        assert_eq!(v["root_ro"], "yes", "/ must be read-only: {v}");
        assert_eq!(v["host"], "testhost");
        assert_eq!(
            v["fn"], "echo",
            "reserved variables override the function's"
        );
        assert_eq!(v["event"]["n"], i);
    }
    // The runtime's output reached the host as Log frames.
    let logs_text = String::from_utf8_lossy(&logs).into_owned();
    let _ = std::io::stderr().write_all(logs_text.as_bytes());
    assert!(
        logs_text.contains("bootstrap up as 993"),
        "logs: {logs_text}"
    );

    let marker = b"sleep\x0031337";
    assert!(
        !processes_with_cmdline(marker).is_empty(),
        "the runtime's background process should be running before Shutdown"
    );
    sb.send(host_message::Msg::Shutdown(Shutdown {}));
    let st = sb.wait_exit(Duration::from_secs(10));
    assert_eq!(st.code(), Some(0), "exit status after Shutdown: {st:?}");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        processes_with_cmdline(marker),
        Vec::<String>::new(),
        "processes left running after Shutdown"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&sb.root_path),
        "sandbox mounts leaked to the host"
    );
}

#[test]
fn bad_zip_is_reported_as_init_error() {
    let mut sb = Sandbox::start();
    sb.configure(
        b"PK\x03\x04 definitely not a zip".to_vec(),
        "/var/task/bootstrap",
    );
    match sb.recv_skip_logs(&mut Vec::new()) {
        Msg::InitError(e) => {
            assert_eq!(e.error_type, "Runtime.InvalidZipFileException");
            let v: serde_json::Value = serde_json::from_slice(&e.payload).unwrap();
            assert_eq!(v["errorType"], "Runtime.InvalidZipFileException");
            assert!(v["errorMessage"].as_str().unwrap().contains("zip"));
        }
        other => panic!("expected InitError, got {other:?}"),
    }
    drop(
        sb.host
            .try_clone()
            .unwrap()
            .shutdown(std::net::Shutdown::Both),
    );
    assert_eq!(sb.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn missing_bootstrap_is_invalid_entrypoint() {
    let mut sb = Sandbox::start();
    sb.configure(zip_of(&[("other", 0o644, "x")]), "/var/task/bootstrap");
    let mut saw_exit = false;
    let mut saw_error = false;
    while !(saw_exit && saw_error) {
        match sb.recv_skip_logs(&mut Vec::new()) {
            Msg::InitError(e) => {
                assert_eq!(e.error_type, "Runtime.InvalidEntrypoint");
                let v: serde_json::Value = serde_json::from_slice(&e.payload).unwrap();
                let msg = v["errorMessage"].as_str().unwrap();
                assert!(msg.contains("/var/task/bootstrap"), "{msg}");
                saw_error = true;
            }
            Msg::RuntimeExit(x) => {
                assert_eq!(x.exit_code, 127);
                saw_exit = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    sb.send(host_message::Msg::Shutdown(Shutdown {}));
    assert_eq!(sb.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn runtime_exiting_during_init_is_exit_error() {
    let mut sb = Sandbox::start();
    let script = "#!/bin/sh\necho dying >&2\nexit 3\n";
    sb.configure(
        zip_of(&[("bootstrap", 0o755, script)]),
        "/var/task/bootstrap",
    );
    let mut logs = Vec::new();
    match sb.recv_skip_logs(&mut logs) {
        Msg::RuntimeExit(x) => {
            assert_eq!((x.exit_code, x.signal), (3, 0));
            assert_eq!(x.request_id, "");
        }
        other => panic!("expected RuntimeExit, got {other:?}"),
    }
    match sb.recv_skip_logs(&mut logs) {
        Msg::InitError(e) => {
            assert_eq!(e.error_type, "Runtime.ExitError");
            assert!(String::from_utf8_lossy(&e.payload).contains("exit status 3"));
        }
        other => panic!("expected InitError, got {other:?}"),
    }
    sb.send(host_message::Msg::Shutdown(Shutdown {}));
    assert_eq!(sb.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn sigterm_to_the_launcher_ends_the_sandbox() {
    let mut sb = Sandbox::start();
    // A marker of its own: tests run in parallel.
    let script = BOOTSTRAP.replace("sleep 31337", "sleep 31338");
    sb.configure(
        zip_of(&[("bootstrap", 0o755, &script)]),
        "/var/task/bootstrap",
    );
    match sb.recv_skip_logs(&mut Vec::new()) {
        Msg::Ready(_) => {}
        other => panic!("expected Ready, got {other:?}"),
    }
    let pid = nix::unistd::Pid::from_raw(sb.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let st = sb.wait_exit(Duration::from_secs(10));
    assert_eq!(st.code(), Some(128 + libc::SIGTERM), "{st:?}");
    // The host stream reaches end of file: init and the runtime are gone.
    let r: Result<GuestMessage, _> = loop {
        match read_frame::<_, GuestMessage>(&mut sb.host) {
            Ok(GuestMessage {
                msg: Some(Msg::Log(_)),
            }) => continue,
            other => break other,
        }
    };
    assert!(
        matches!(r, Err(flint_proto::frame::FrameError::Closed)),
        "{r:?}"
    );
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        processes_with_cmdline(b"sleep\x0031338"),
        Vec::<String>::new(),
        "processes left running after SIGTERM"
    );
}

/// A runtime that answers with what the function's layers left in /opt.
const LAYERS_BOOTSTRAP: &str = r#"#!/bin/sh
API="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
while true; do
  wget -q -S -O /tmp/event "$API/invocation/next" 2> /tmp/headers
  ID=$(grep -i "Lambda-Runtime-Aws-Request-Id" /tmp/headers | sed 's/.*: *//' | tr -d '\r ')
  if touch /opt/probe 2>/dev/null; then RO=no; else RO=yes; fi
  BODY="{\"m\":\"$(cat /opt/python/m.py)\",\"first\":\"$(cat /opt/python/first.py)\",\"tool\":\"$(cat /opt/bin/tool/x)\",\"opt_ro\":\"$RO\"}"
  wget -q -O /dev/null --post-data "$BODY" "$API/invocation/$ID/response"
done
"#;

#[test]
fn layer_frames_are_unpacked_in_order_into_a_read_only_opt() {
    let mut sb = Sandbox::start();
    let layer = |index: u32, entries: &[(&str, u32, &str)]| Layer {
        index,
        arn: format!("arn:aws:lambda:local:000000000000:layer:l{index}:1"),
        zip: zip_of(entries),
    };
    sb.configure_with_layers(
        zip_of(&[("bootstrap", 0o755, LAYERS_BOOTSTRAP)]),
        "/var/task/bootstrap",
        vec![
            layer(
                0,
                &[
                    ("python/m.py", 0o644, "one"),
                    ("python/first.py", 0o644, "kept"),
                    ("bin/tool", 0o755, "a file"),
                ],
            ),
            layer(
                1,
                &[("python/m.py", 0o644, "two"), ("bin/tool/x", 0o644, "dir")],
            ),
        ],
    );
    let mut logs = Vec::new();
    match sb.recv_skip_logs(&mut logs) {
        Msg::Ready(r) => assert_eq!(r.layers, 2, "Ready counts the layers installed"),
        other => panic!(
            "expected Ready, got {other:?}; logs: {}",
            String::from_utf8_lossy(&logs)
        ),
    }
    sb.send(host_message::Msg::Invoke(Invoke {
        request_id: "req-1".into(),
        payload: b"{}".to_vec(),
        deadline_ms: 4_000_000_000_000,
        ..Default::default()
    }));
    let resp = match sb.recv_skip_logs(&mut logs) {
        Msg::Response(r) => r,
        other => panic!(
            "expected Response, got {other:?}; logs: {}",
            String::from_utf8_lossy(&logs)
        ),
    };
    let v: serde_json::Value = serde_json::from_slice(&resp.payload)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&resp.payload)));
    assert_eq!(v["m"], "two", "the later layer's file wins: {v}");
    assert_eq!(
        v["first"], "kept",
        "the earlier layer's other files stay: {v}"
    );
    assert_eq!(v["tool"], "dir", "a later directory replaces a file: {v}");
    assert_eq!(v["opt_ro"], "yes", "/opt must be read-only: {v}");
    sb.send(host_message::Msg::Shutdown(Shutdown {}));
    assert_eq!(sb.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn a_bad_layer_is_an_invalid_zip_naming_the_layer() {
    let mut sb = Sandbox::start();
    sb.configure_with_layers(
        zip_of(&[("bootstrap", 0o755, LAYERS_BOOTSTRAP)]),
        "/var/task/bootstrap",
        vec![Layer {
            index: 0,
            arn: "arn:aws:lambda:local:000000000000:layer:broken:4".into(),
            zip: b"PK\x03\x04 not a zip".to_vec(),
        }],
    );
    match sb.recv_skip_logs(&mut Vec::new()) {
        Msg::InitError(e) => {
            assert_eq!(e.error_type, "Runtime.InvalidZipFileException");
            let v: serde_json::Value = serde_json::from_slice(&e.payload).unwrap();
            let msg = v["errorMessage"].as_str().unwrap();
            assert!(
                msg.contains("layer 0 (arn:aws:lambda:local:000000000000:layer:broken:4)"),
                "{msg}"
            );
        }
        other => panic!("expected InitError, got {other:?}"),
    }
    sb.send(host_message::Msg::Shutdown(Shutdown {}));
    assert_eq!(sb.wait_exit(Duration::from_secs(10)).code(), Some(0));
}
