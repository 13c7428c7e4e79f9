//! Helpers for the end-to-end tests: start a real flintd binary on a private socket,
//! data directory and cgroup parent; write function code; check for leftovers.
//!
//! The tests need root (namespaces, cgroups), the binaries built
//! (`cargo build --workspace`) and the runtime images
//! (`images/build-rootfs.sh`). Missing prerequisites make tests fail, never skip.

use flint_agent::client::{connect, Client};
use flint_proto::v1::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub mod client_run;
pub mod provided_binary;
pub mod rabbitmq;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The directory holding the workspace's built binaries (target/debug).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/debug/deps/<test-binary>
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf()
}

/// Path of a workspace binary; panics with the command to build it.
pub fn binary(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.is_file(),
        "{} is missing: run `cargo build --workspace` before the tests",
        p.display()
    );
    p
}

/// The sandbox backend the tests run on: `FLINT_TEST_SANDBOX`, default namespace
/// (microvm needs a host with hardware KVM).
pub fn test_backend() -> String {
    std::env::var("FLINT_TEST_SANDBOX").unwrap_or_else(|_| "namespace".into())
}

/// The runtime images directory the tests use.
pub fn images_dir() -> PathBuf {
    let dir = PathBuf::from(
        std::env::var("FLINT_IMAGES_DIR").unwrap_or_else(|_| "/var/lib/flint/images".into()),
    );
    assert!(
        dir.join("python3.11/rootfs").is_dir(),
        "no python3.11 image in {}: run images/build-rootfs.sh first",
        dir.display()
    );
    dir
}

/// A running flintd with its own data directory, socket and cgroup parent.
pub struct TestAgent {
    child: Option<Child>,
    pub data_dir: PathBuf,
    pub socket: PathBuf,
    pub cgroup_parent: String,
    _tmp: Option<tempfile::TempDir>,
    keep_alive: u64,
    extra: Vec<String>,
    /// A network namespace (a file such as /run/netns/NAME) flintd runs in.
    netns: Option<PathBuf>,
    /// A command flintd is run under (its path and flags are appended).
    wrapper: Vec<String>,
}

impl TestAgent {
    /// Starts a flintd on a fresh data directory.
    pub async fn start() -> TestAgent {
        Self::start_with(300).await
    }

    /// Starts a flintd whose idle instances live `keep_alive` seconds.
    pub async fn start_with(keep_alive: u64) -> TestAgent {
        Self::start_args(keep_alive, &[]).await
    }

    /// Starts a flintd with `keep_alive` and extra flags.
    pub async fn start_args(keep_alive: u64, extra: &[&str]) -> TestAgent {
        Self::start_in(None, keep_alive, extra).await
    }

    /// Starts a flintd inside the network namespace `netns` (a file such as
    /// /run/netns/NAME), with `keep_alive` and extra flags.
    pub async fn start_in(netns: Option<&Path>, keep_alive: u64, extra: &[&str]) -> TestAgent {
        let tmp = tempfile::tempdir().expect("tempdir");
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let mut a = TestAgent {
            child: None,
            data_dir: tmp.path().join("data"),
            socket: tmp.path().join("flintd.sock"),
            cgroup_parent: format!("flint-test-{}-{n}", std::process::id()),
            _tmp: Some(tmp),
            keep_alive,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            netns: netns.map(Path::to_path_buf),
            wrapper: Vec::new(),
        };
        a.spawn().await;
        a
    }

    /// Starts a flintd under `wrapper(data_dir)` (a command that ends by exec'ing
    /// its arguments: flintd's path and flags), with `keep_alive` and extra flags.
    pub async fn start_wrapped(
        wrapper: impl Fn(&Path) -> Vec<String>,
        keep_alive: u64,
        extra: &[&str],
    ) -> TestAgent {
        let tmp = tempfile::tempdir().expect("tempdir");
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let data_dir = tmp.path().join("data");
        let mut a = TestAgent {
            child: None,
            wrapper: wrapper(&data_dir),
            data_dir,
            socket: tmp.path().join("flintd.sock"),
            cgroup_parent: format!("flint-test-{}-{n}", std::process::id()),
            _tmp: Some(tmp),
            keep_alive,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            netns: None,
        };
        a.spawn().await;
        a
    }

    async fn spawn(&mut self) {
        let mut cmd = match self.wrapper.split_first() {
            None => Command::new(binary("flintd")),
            Some((prog, args)) => {
                let mut c = Command::new(prog);
                c.args(args).arg(binary("flintd"));
                c
            }
        };
        if let Some(ns) = &self.netns {
            use std::os::unix::process::CommandExt;
            let f = std::fs::File::open(ns).expect("open network namespace");
            // SAFETY: the closure runs in the forked child before exec and only calls
            // setns(2), which is async-signal-safe; `f` outlives the spawn.
            unsafe {
                cmd.pre_exec(move || {
                    nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
                        .map_err(std::io::Error::from)
                });
            }
        }
        if !self.extra.iter().any(|a| a == "--sandbox") {
            cmd.arg("--sandbox").arg(test_backend());
        }
        let child = cmd
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--socket")
            .arg(&self.socket)
            .arg("--images-dir")
            .arg(images_dir())
            .arg("--init-path")
            .arg(binary("flint-init"))
            .arg("--cgroup-parent")
            .arg(&self.cgroup_parent)
            .arg("--keep-alive")
            .arg(self.keep_alive.to_string())
            .args(&self.extra)
            .env(
                "FLINT_LOG",
                std::env::var("FLINT_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn flintd");
        self.child = Some(child);
        let t0 = Instant::now();
        loop {
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("flintd exited during start-up: {st}");
            }
            if self.socket.exists() && connect(self.socket.to_str().unwrap()).await.is_ok() {
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "flintd did not start within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A connected client.
    pub async fn client(&self) -> Client {
        connect(self.socket.to_str().expect("utf-8 path"))
            .await
            .expect("connect to flintd")
    }

    /// Stops flintd with SIGTERM and waits for it.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("agent running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let t0 = Instant::now();
        loop {
            if let Some(st) = child.try_wait().expect("wait flintd") {
                return st;
            }
            if t0.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                panic!("flintd did not stop within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Restarts flintd on the same data directory.
    pub async fn restart(&mut self) {
        let st = self.stop();
        assert!(st.success(), "flintd exited with {st} on SIGTERM");
        self.spawn().await;
    }

    /// Starts flintd again after it was killed (reaps the dead process first).
    pub async fn restart_after_kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
        self.spawn().await;
    }

    /// The pid of the running flintd.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("agent running").id()
    }

    /// Sandbox cgroups that currently exist under this agent's parent, but for the
    /// cgroups of the running flintd's parked launchers (`--parked-launchers`: they
    /// wait for a sandbox; any other run's are leftovers and count).
    pub fn sandbox_cgroups(&self) -> Vec<PathBuf> {
        let parked = self.parked_prefix();
        self.all_cgroups()
            .into_iter()
            .filter(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                parked.as_ref().is_none_or(|pre| !name.starts_with(pre))
            })
            .collect()
    }

    /// The cgroups of the running flintd's parked launchers (one per hierarchy each).
    pub fn parked_cgroups(&self) -> Vec<PathBuf> {
        let Some(pre) = self.parked_prefix() else {
            return Vec::new();
        };
        self.all_cgroups()
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .starts_with(&pre)
            })
            .collect()
    }

    /// The name prefix of the running flintd's parked launcher cgroups.
    fn parked_prefix(&self) -> Option<String> {
        let pid = self.child.as_ref()?.id();
        Some(format!("sbx-parked-{pid}-"))
    }

    /// Every cgroup directory under this agent's parent.
    pub fn all_cgroups(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for root in cgroup_roots(&self.cgroup_parent) {
            if let Ok(rd) = std::fs::read_dir(&root) {
                out.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
            }
        }
        out
    }

    /// Number of distinct sandboxes (by cgroup name) that exist now.
    pub fn sandbox_count(&self) -> usize {
        let mut names: Vec<_> = self
            .sandbox_cgroups()
            .into_iter()
            .filter_map(|p| p.file_name().map(|n| n.to_owned()))
            .collect();
        names.sort();
        names.dedup();
        names.len()
    }

    /// Waits until the pool of (`runtime`, `memory_mb`) has a sandbox ready; fails after
    /// `within` with the capacity report.
    pub async fn wait_pool_ready(&self, runtime: &str, memory_mb: u32, within: Duration) {
        let t0 = std::time::Instant::now();
        loop {
            let cap = self.capacity().await;
            let ready = cap
                .pools
                .iter()
                .find(|p| p.runtime == runtime && p.memory_mb == memory_mb)
                .map_or(0, |p| p.ready);
            if ready >= 1 {
                return;
            }
            assert!(
                t0.elapsed() < within,
                "the {runtime} pool never had a sandbox ready: {cap:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The Node API's capacity report.
    pub async fn capacity(&self) -> Capacity {
        self.client()
            .await
            .node
            .get_capacity(GetCapacityRequest {})
            .await
            .expect("GetCapacity")
            .into_inner()
    }

    /// Instances (idle, busy or starting) of `function`, from the Node API; pool
    /// sandboxes are not counted.
    pub async fn instances_of(&self, function: &str) -> u32 {
        self.capacity()
            .await
            .functions
            .iter()
            .filter(|f| f.function_name == function)
            .map(|f| f.idle + f.busy)
            .sum()
    }

    /// Waits until every sandbox cgroup on the host is one the agent accounts for
    /// (pool, starting, idle or busy, per the Node API); returns the difference
    /// (cgroups minus accounted) if that never happens. Catches leaked sandboxes
    /// while pools and warm instances legitimately exist.
    pub async fn wait_all_accounted(&self, within: Duration) -> i64 {
        let t0 = Instant::now();
        loop {
            let s = self.capacity().await.sandboxes.unwrap_or_default();
            let accounted = i64::from(s.pool_ready + s.starting + s.idle + s.busy);
            let diff = self.sandbox_count() as i64 - accounted;
            if diff == 0 || t0.elapsed() > within {
                return diff;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until no sandbox cgroup is left (instances are destroyed in the background).
    pub async fn wait_no_sandboxes(&self, within: Duration) -> Vec<PathBuf> {
        let t0 = Instant::now();
        loop {
            let left = self.sandbox_cgroups();
            if left.is_empty() || t0.elapsed() > within {
                return left;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The directories of cgroup parent `parent` in each hierarchy flintd uses.
pub fn cgroup_roots(parent: &str) -> Vec<PathBuf> {
    let v2 = !Path::new("/sys/fs/cgroup/memory").exists();
    if v2 {
        vec![Path::new("/sys/fs/cgroup").join(parent)]
    } else {
        ["memory", "pids", "cpu", "cpuacct", "freezer"]
            .iter()
            .map(|c| Path::new("/sys/fs/cgroup").join(c).join(parent))
            .collect()
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Remove what a killed agent could not (the next agent would do it too): thaw
        // every sandbox and lift its CPU quota first (frozen processes die only once
        // thawed, throttled ones slowly), kill, then
        // remove the directories, retrying while the killed processes exit.
        let roots = cgroup_roots(&self.cgroup_parent);
        let dirs: Vec<PathBuf> = roots
            .iter()
            .filter_map(|r| std::fs::read_dir(r).ok())
            .flat_map(|rd| rd.flatten().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        for d in &dirs {
            for (file, value) in [
                ("freezer.state", "THAWED"),
                ("cgroup.freeze", "0"),
                ("cpu.cfs_quota_us", "-1"),
                ("cpu.max", "max"),
            ] {
                if d.join(file).exists() {
                    let _ = std::fs::write(d.join(file), value);
                }
            }
        }
        for d in &dirs {
            if let Ok(p) = std::fs::read_to_string(d.join("cgroup.procs")) {
                for pid in p.lines().filter_map(|l| l.parse::<i32>().ok()) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        let t0 = Instant::now();
        loop {
            let left = dirs
                .iter()
                .chain(roots.iter())
                .filter(|d| std::fs::remove_dir(d).is_err() && d.exists())
                .count();
            if left == 0 || t0.elapsed() > Duration::from_secs(3) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Zips files given as (path, contents) into a code bundle (mode 0644, or 0755 for
/// names ending in "bootstrap").
pub fn zip_files(files: &[(&str, &str)]) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, body) in files {
        let mode = if name.ends_with("bootstrap") {
            0o755
        } else {
            0o644
        };
        w.start_file(
            *name,
            zip::write::SimpleFileOptions::default().unix_permissions(mode),
        )
        .expect("zip entry");
        w.write_all(body.as_bytes()).expect("zip write");
    }
    w.finish().expect("zip finish").into_inner()
}

/// A CreateFunctionRequest for a Python function with one file app.py.
pub fn python_function(name: &str, app_py: &str) -> CreateFunctionRequest {
    CreateFunctionRequest {
        name: name.to_string(),
        runtime: "python3.11".into(),
        handler: "app.handler".into(),
        memory_mb: 128,
        timeout_s: 3,
        code_zip: zip_files(&[("app.py", app_py)]),
        ..Default::default()
    }
}

/// Invokes synchronously with a JSON payload and log tail.
pub async fn invoke(c: &mut Client, name: &str, payload: &str) -> InvokeResponse {
    c.invocations
        .invoke(InvokeRequest {
            function_name: name.into(),
            invocation_type: InvocationType::RequestResponse as i32,
            log_type: LogType::Tail as i32,
            payload: payload.as_bytes().to_vec(),
            client_context: String::new(),
        })
        .await
        .expect("invoke RPC")
        .into_inner()
}

/// Invokes like [`invoke`] and asserts the function returned no error (the message
/// carries the payload and the log tail); returns the response.
pub async fn invoke_ok(c: &mut Client, name: &str, payload: &str) -> InvokeResponse {
    let r = invoke(c, name, payload).await;
    assert_eq!(
        r.function_error,
        "",
        "{name}: {} / log: {}",
        String::from_utf8_lossy(&r.payload),
        r.log_result
    );
    r
}

/// Parses a response payload as JSON.
pub fn json(r: &InvokeResponse) -> serde_json::Value {
    serde_json::from_slice(&r.payload).unwrap_or_else(|e| {
        panic!(
            "payload is not JSON ({e}): {}",
            String::from_utf8_lossy(&r.payload)
        )
    })
}
