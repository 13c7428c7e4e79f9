//! The flintd under test: started by the bench on a private socket, data directory and
//! cgroup parent (or an existing one given by --endpoint), and the few API calls the
//! scenarios make (deploy a function, invoke it, read the node's capacity).

use flint_agent::client::{connect, Client};
use flint_proto::v1::node_client::NodeClient;
use flint_proto::v1::{
    Capacity, CreateFunctionRequest, GetCapacityRequest, InvocationType, InvokeRequest,
    InvokeResponse, LogType,
};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static STARTED: AtomicUsize = AtomicUsize::new(0);

/// The handler every bench function runs: it returns its event (a hello that echoes).
pub const HELLO_PY: &str = "def handler(event, context):\n    return event\n";

/// Errors talking to or running flintd.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A file the bench needs is missing
    #[error("{what} not found at {path}: {hint}")]
    Missing {
        what: &'static str,
        path: PathBuf,
        hint: &'static str,
    },
    /// Local I/O failed
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// flintd exited or never answered
    #[error("flintd did not come up: {0}")]
    Start(String),
    /// Could not connect
    #[error(transparent)]
    Connect(#[from] flint_agent::client::ClientError),
    /// An API call failed
    #[error("{call}: {status}")]
    Rpc {
        call: String,
        status: Box<tonic::Status>,
    },
    /// Sandboxes kept starting or a pool stayed below its target
    #[error("flintd did not settle within {0:?} (a sandbox still starting or a pool below its target: see its log for failing pool starts)")]
    Unsettled(Duration),
    /// The function did not succeed
    #[error("invoking {name} gave status {code}, error {error:?}: {payload}")]
    Invoke {
        name: String,
        code: u32,
        error: String,
        payload: String,
    },
}

fn rpc(call: impl Into<String>) -> impl FnOnce(tonic::Status) -> AgentError {
    let call = call.into();
    move |status| AgentError::Rpc {
        call,
        status: Box::new(status),
    }
}

/// How to start flintd.
#[derive(Debug, Clone)]
pub struct StartOptions {
    pub flintd: PathBuf,
    pub init: PathBuf,
    pub images_dir: PathBuf,
    /// Pass `--pool-max 0` (no warm pool) when flintd has the flag.
    pub pool_off: bool,
    /// `--pool-warm` values (e.g. `python3.11:128=2`) when the pool is on and flintd has
    /// the flag: each keeps that many generic sandboxes ready whatever the demand.
    pub pool_warm: Vec<String>,
    pub keep_alive_s: u64,
    /// More flags for flintd.
    pub extra: Vec<String>,
    /// Run flintd in a network namespace of its own (loopback up), so that what its
    /// sandboxes' networking sets up (links, routes, nftables) stays out of the host's.
    pub own_netns: bool,
}

/// A flintd the bench talks to.
pub struct Agent {
    child: Option<Child>,
    pub endpoint: String,
    /// Whether `--pool-max 0` was passed (the pool is off).
    pub pool_off: bool,
    /// cgroup parent of a flintd we started.
    pub cgroup_parent: Option<String>,
    log: Option<PathBuf>,
    /// Lambda's REST API of a flintd we started, when it has `--api-listen`.
    pub rest: Option<crate::rest::RestEndpoint>,
    /// The function URL listener (ADDR) of a flintd we started, when it has
    /// `--http-listen`.
    pub http: Option<String>,
    _tmp: Option<tempfile::TempDir>,
}

/// Whether `flintd --help` lists `flag`.
pub fn has_flag(flintd: &Path, flag: &str) -> bool {
    Command::new(flintd)
        .arg("--help")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(flag))
        .unwrap_or(false)
}

fn require(what: &'static str, path: &Path, hint: &'static str) -> Result<(), AgentError> {
    if path.exists() {
        Ok(())
    } else {
        Err(AgentError::Missing {
            what,
            path: path.to_path_buf(),
            hint,
        })
    }
}

impl Agent {
    /// Starts a flintd and waits until its API answers.
    pub async fn start(o: &StartOptions) -> Result<Agent, AgentError> {
        require(
            "flintd",
            &o.flintd,
            "run `cargo build --workspace` (or pass --bin-dir)",
        )?;
        require(
            "flint-init",
            &o.init,
            "run `cargo build --workspace` (or pass --bin-dir)",
        )?;
        require(
            "the python3.11 image",
            &o.images_dir.join("python3.11/rootfs"),
            "run images/build-rootfs.sh (or pass --images-dir)",
        )?;
        let tmp = tempfile::Builder::new()
            .prefix("flint-bench-")
            .tempdir()
            .map_err(|e| AgentError::Io("temporary directory".into(), e))?;
        let n = STARTED.fetch_add(1, Ordering::SeqCst);
        let cgroup_parent = format!("flint-bench-{}-{n}", std::process::id());
        let socket = tmp.path().join("flintd.sock");
        let log = tmp.path().join("flintd.log");
        let log_file = std::fs::File::create(&log)
            .map_err(|e| AgentError::Io(log.display().to_string(), e))?;
        let pool_off = o.pool_off && has_flag(&o.flintd, "--pool-max");
        let mut cmd = if o.own_netns {
            let mut c = Command::new("unshare");
            c.args([
                "--net",
                "--",
                "sh",
                "-c",
                "ip link set lo up && exec \"$0\" \"$@\"",
            ])
            .arg(&o.flintd);
            c
        } else {
            Command::new(&o.flintd)
        };
        cmd.args(&o.extra);
        cmd.arg("--data-dir")
            .arg(tmp.path().join("data"))
            .arg("--socket")
            .arg(&socket)
            .arg("--images-dir")
            .arg(&o.images_dir)
            .arg("--init-path")
            .arg(&o.init)
            .arg("--cgroup-parent")
            .arg(&cgroup_parent)
            .arg("--keep-alive")
            .arg(o.keep_alive_s.to_string())
            .args([
                "--function-rate-limit",
                "1000000",
                "--concurrency-limit",
                "100000",
            ])
            .env("FLINT_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file);
        if pool_off {
            cmd.args(["--pool-max", "0"]);
        } else if !o.pool_warm.is_empty() && has_flag(&o.flintd, "--pool-warm") {
            for w in &o.pool_warm {
                cmd.arg("--pool-warm").arg(w);
            }
        }
        let rest = if has_flag(&o.flintd, "--api-listen") {
            let addr = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| AgentError::Io("a free port for the REST API".into(), e))?
                .to_string();
            let key = flint_agent::lambda_api::keys::KeyStore::new(&tmp.path().join("data"))
                .create("flint-bench")
                .map_err(|e| AgentError::Start(e.to_string()))?;
            cmd.args(["--api-listen", &addr, "--region", "us-east-1"]);
            Some(crate::rest::RestEndpoint {
                addr,
                region: "us-east-1".into(),
                key_id: key.id,
                secret: key.secret,
            })
        } else {
            None
        };
        let http = if has_flag(&o.flintd, "--http-listen") {
            let addr = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| AgentError::Io("a free port for function URLs".into(), e))?
                .to_string();
            cmd.args(["--http-listen", &addr]);
            Some(addr)
        } else {
            None
        };
        let child = cmd
            .spawn()
            .map_err(|e| AgentError::Io(format!("start {}", o.flintd.display()), e))?;
        let mut agent = Agent {
            child: Some(child),
            endpoint: socket.display().to_string(),
            pool_off,
            cgroup_parent: Some(cgroup_parent),
            log: Some(log),
            rest,
            http,
            _tmp: Some(tmp),
        };
        let t0 = Instant::now();
        loop {
            if let Some(st) = agent
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(AgentError::Start(format!(
                    "exited with {st}: {}",
                    agent.log_tail()
                )));
            }
            if socket.exists() && connect(&agent.endpoint).await.is_ok() {
                return Ok(agent);
            }
            if t0.elapsed() > Duration::from_secs(20) {
                return Err(AgentError::Start(format!(
                    "no answer within 20 s: {}",
                    agent.log_tail()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// An already running flintd at `endpoint`.
    pub async fn existing(endpoint: &str) -> Result<Agent, AgentError> {
        connect(endpoint).await?;
        Ok(Agent {
            child: None,
            endpoint: endpoint.to_string(),
            pool_off: false,
            cgroup_parent: None,
            log: None,
            rest: None,
            http: None,
            _tmp: None,
        })
    }

    /// The last lines of flintd's log.
    pub fn log_tail(&self) -> String {
        let Some(log) = &self.log else {
            return String::new();
        };
        let s = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }

    /// A connected client.
    pub async fn client(&self) -> Result<Client, AgentError> {
        Ok(connect(&self.endpoint).await?)
    }

    /// Stops a flintd we started (SIGTERM, then SIGKILL after 20 s); its sandboxes go with it.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: kill(2) on the pid of our own child, which has not been reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let t0 = Instant::now();
        let mut exited = false;
        while t0.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = child.try_wait() {
                exited = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if !exited {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.remove_cgroup_parent();
    }

    /// Removes the cgroup parent directories flintd left in each hierarchy. A flintd
    /// that had to be killed leaves its sandboxes (frozen idle instances among them):
    /// they are thawed, killed and removed as flintd's own start-up sweep would.
    fn remove_cgroup_parent(&self) {
        let Some(parent) = &self.cgroup_parent else {
            return;
        };
        let left = flint_agent::sandbox::namespace::sweep::remove_on_stop(parent);
        if !left.is_empty() {
            eprintln!(
                "flint-bench: {} sandbox cgroups of flintd's are still there after the sweep",
                left.len()
            );
        }
        let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
            return;
        };
        for h in hierarchies.flatten() {
            let dir = h.path().join(parent);
            // Anything else flintd left (rmdir fails on any that still has a process).
            if let Ok(children) = std::fs::read_dir(&dir) {
                for c in children.flatten().filter(|c| c.path().is_dir()) {
                    let _ = std::fs::remove_dir(c.path());
                }
            }
            let _ = std::fs::remove_dir(dir);
        }
        let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(parent));
    }

    /// Bytes charged to the sandboxes' cgroups (memory controller), for a flintd we started.
    pub fn cgroup_memory_bytes(&self) -> Option<u64> {
        let parent = self.cgroup_parent.as_ref()?;
        let v1 = Path::new("/sys/fs/cgroup/memory")
            .join(parent)
            .join("memory.usage_in_bytes");
        let v2 = Path::new("/sys/fs/cgroup")
            .join(parent)
            .join("memory.current");
        [v1, v2]
            .iter()
            .find_map(|p| std::fs::read_to_string(p).ok())
            .and_then(|s| s.trim().parse().ok())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A code bundle holding `app.py` = [`HELLO_PY`].
pub fn hello_bundle() -> Result<Vec<u8>, AgentError> {
    let dir = tempfile::tempdir().map_err(|e| AgentError::Io("temporary directory".into(), e))?;
    let app = dir.path().join("app.py");
    std::fs::write(&app, HELLO_PY).map_err(|e| AgentError::Io(app.display().to_string(), e))?;
    flint_agent::client::bundle(dir.path()).map_err(|e| AgentError::Io("zip code".into(), e))
}

/// Creates a 128 MB python3.11 function running [`HELLO_PY`].
pub async fn deploy(c: &mut Client, name: &str, code: &[u8]) -> Result<(), AgentError> {
    deploy_sized(c, name, code, 128).await
}

/// Creates a python3.11 function of `memory_mb` MB running [`HELLO_PY`].
pub async fn deploy_sized(
    c: &mut Client,
    name: &str,
    code: &[u8],
    memory_mb: u32,
) -> Result<(), AgentError> {
    deploy_on(c, name, ("python3.11", "app.handler"), code, memory_mb).await
}

/// Creates a function of `memory_mb` MB on `runtime` with `handler`.
pub async fn deploy_on(
    c: &mut Client,
    name: &str,
    (runtime, handler): (&str, &str),
    code: &[u8],
    memory_mb: u32,
) -> Result<(), AgentError> {
    c.functions
        .create_function(CreateFunctionRequest {
            name: name.into(),
            runtime: runtime.into(),
            handler: handler.into(),
            memory_mb,
            timeout_s: 30,
            code_zip: code.to_vec(),
            ..Default::default()
        })
        .await
        .map_err(rpc(format!("create function {name}")))?;
    Ok(())
}

/// Invokes synchronously; returns the client-side latency and the response, which must
/// be a success.
/// [`invoke`], retried while flintd throttles it (RESOURCE_EXHAUSTED: its start
/// scheduler is full, as when hundreds of warm-up calls start instances at once), as a
/// Lambda client retries TooManyRequestsException; gives up after `within`.
pub async fn invoke_retrying(
    c: &mut Client,
    name: &str,
    payload: &[u8],
    within: Duration,
) -> Result<(Duration, InvokeResponse), AgentError> {
    let t0 = Instant::now();
    let mut gap = Duration::from_millis(50);
    loop {
        match invoke(c, name, payload).await {
            Err(AgentError::Rpc { status, .. })
                if status.code() == tonic::Code::ResourceExhausted && t0.elapsed() < within =>
            {
                tokio::time::sleep(gap).await;
                gap = (gap * 2).min(Duration::from_secs(1));
            }
            other => return other,
        }
    }
}

pub async fn invoke(
    c: &mut Client,
    name: &str,
    payload: &[u8],
) -> Result<(Duration, InvokeResponse), AgentError> {
    let req = InvokeRequest {
        function_name: name.into(),
        invocation_type: InvocationType::RequestResponse as i32,
        log_type: LogType::LogNone as i32,
        payload: payload.to_vec(),
        client_context: String::new(),
    };
    let t0 = Instant::now();
    let r = c
        .invocations
        .invoke(req)
        .await
        .map_err(rpc(format!("invoke {name}")))?
        .into_inner();
    let dt = t0.elapsed();
    if r.status_code != 200 || !r.function_error.is_empty() {
        return Err(AgentError::Invoke {
            name: name.into(),
            code: r.status_code,
            error: r.function_error.clone(),
            payload: String::from_utf8_lossy(&r.payload[..r.payload.len().min(300)]).into(),
        });
    }
    Ok((dt, r))
}

/// Whether an agent is settled: nothing starting (pool refills included) and every
/// pool at or above its target.
pub fn settled(cap: &Capacity) -> bool {
    cap.sandboxes.as_ref().is_none_or(|s| s.starting == 0)
        && cap.pools.iter().all(|p| p.ready >= p.target)
}

/// Waits (polling every 10 ms) until every agent of `clients` is [`settled`], at most
/// `limit`. A pool hit sets off a refill (a sandbox and an interpreter starting, tens
/// of ms of CPU); a sample taken while one runs, on the same agent or another, shares
/// the CPU with it and measures that, not the hit.
pub async fn wait_settled(clients: &[&Client], limit: Duration) -> Result<(), AgentError> {
    let t0 = Instant::now();
    loop {
        let mut all = true;
        for c in clients {
            all &= settled(&capacity(c).await?);
        }
        if all {
            return Ok(());
        }
        if t0.elapsed() > limit {
            return Err(AgentError::Unsettled(limit));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The node's capacity (Node.GetCapacity).
pub async fn capacity(c: &Client) -> Result<Capacity, AgentError> {
    Ok(NodeClient::new(c.channel.clone())
        .get_capacity(GetCapacityRequest {})
        .await
        .map_err(rpc("Node.GetCapacity"))?
        .into_inner())
}
