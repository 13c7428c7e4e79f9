//! Process baselines with the runtime image's own interpreter: `python3 -c pass` on the
//! host (the floor for an empty-pool cold start), the same inside bubblewrap, and the
//! hello handler run inside bubblewrap (the peer sandbox), cold or kept idle.

use crate::agent::HELLO_PY;
use crate::procs::{self, ProcError};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(30);

/// Python that imports the handler from /var/task and calls it once, like a runtime.
const RUN_HELLO: &str = "import sys, json; sys.path.insert(0, '/var/task'); import app; \
print(json.dumps(app.handler({}, None)), flush=True)";

/// Errors of the baselines.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// A program the baselines need is missing
    #[error("{0} not found: {1}")]
    Missing(PathBuf, &'static str),
    /// Local I/O failed
    #[error("baseline {0}: {1}")]
    Io(&'static str, #[source] std::io::Error),
    /// A baseline process failed
    #[error(transparent)]
    Proc(#[from] ProcError),
    /// The peer sandbox printed something else than the handler's result
    #[error("peer sandbox answered {0:?}, expected {{}}")]
    Output(String),
}

/// The baseline commands.
pub struct Baselines {
    python: PathBuf,
    rootfs: PathBuf,
    code: tempfile::TempDir,
}

impl Baselines {
    /// `python` is the host interpreter that the image also holds; `rootfs` the image.
    pub fn new(python: &Path, rootfs: &Path) -> Result<Baselines, BaselineError> {
        if !python.is_file() {
            return Err(BaselineError::Missing(python.into(), "pass --python"));
        }
        if !rootfs.join("usr/bin/python3").exists() {
            return Err(BaselineError::Missing(
                rootfs.join("usr/bin/python3"),
                "build the image with images/build-rootfs.sh",
            ));
        }
        if !Path::new("/usr/bin/bwrap").is_file() {
            return Err(BaselineError::Missing(
                "/usr/bin/bwrap".into(),
                "apt-get install bubblewrap (images/host-deps.sh installs it)",
            ));
        }
        let code = tempfile::tempdir().map_err(|e| BaselineError::Io("tempdir", e))?;
        std::fs::write(code.path().join("app.py"), HELLO_PY)
            .map_err(|e| BaselineError::Io("write app.py", e))?;
        Ok(Baselines {
            python: python.into(),
            rootfs: rootfs.into(),
            code,
        })
    }

    fn bwrap(&self) -> Command {
        let mut c = Command::new("/usr/bin/bwrap");
        c.args(["--unshare-all", "--die-with-parent"])
            .arg("--ro-bind")
            .arg(&self.rootfs)
            .arg("/")
            .args(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"])
            .arg("--ro-bind")
            .arg(self.code.path())
            .arg("/var/task")
            .args(["--chdir", "/var/task", "/usr/bin/python3"]);
        c
    }

    /// Wall time of `python3 -c pass` on the host.
    pub fn python_pass(&self) -> Result<Duration, BaselineError> {
        Ok(procs::run_ok(Command::new(&self.python).args(["-c", "pass"]), DEADLINE)?.wall)
    }

    /// Wall time of `python3 -c pass` inside bubblewrap on the image.
    pub fn bwrap_pass(&self) -> Result<Duration, BaselineError> {
        Ok(procs::run_ok(self.bwrap().args(["-c", "pass"]), DEADLINE)?.wall)
    }

    /// Wall time of the peer sandbox's cold start: bubblewrap, Python, import the
    /// handler, call it once, print the result.
    pub fn bwrap_hello(&self) -> Result<Duration, BaselineError> {
        let r = procs::run_ok(self.bwrap().args(["-c", RUN_HELLO]), DEADLINE)?;
        let out = String::from_utf8_lossy(&r.stdout).trim().to_string();
        if out != "{}" {
            return Err(BaselineError::Output(out));
        }
        Ok(r.wall)
    }

    /// Starts a peer sandbox that has run the handler once and then stays idle (waits on
    /// stdin); returns when it has answered. It runs in `cgroup` (a memory cgroup
    /// directory), joined by a shell before bwrap starts, so every process is charged there.
    pub fn idle_peer(&self, cgroup: &Path) -> Result<IdlePeer, BaselineError> {
        let code = format!("{RUN_HELLO}; sys.stdin.read()");
        let bw = self.bwrap();
        let mut child = Command::new("/bin/sh")
            .args(["-c", "echo $$ > \"$0/cgroup.procs\" && exec \"$@\""])
            .arg(cgroup)
            .arg(bw.get_program())
            .args(bw.get_args())
            .args(["-c", &code])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| BaselineError::Io("spawn bwrap", e))?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            BufReader::new(out)
                .read_line(&mut line)
                .map_err(|e| BaselineError::Io("read peer output", e))?;
        }
        let peer = IdlePeer(child);
        if line.trim() != "{}" {
            return Err(BaselineError::Output(line.trim().to_string()));
        }
        Ok(peer)
    }
}

/// A memory cgroup for the peer sandboxes (v1 memory controller or cgroup v2), removed
/// on drop once empty.
pub struct PeerCgroup {
    pub dir: PathBuf,
    usage: PathBuf,
}

impl PeerCgroup {
    /// Creates `flint-bench-peers-<pid>` under the memory hierarchy.
    pub fn create() -> Result<PeerCgroup, BaselineError> {
        let name = format!("flint-bench-peers-{}", std::process::id());
        let v1 = Path::new("/sys/fs/cgroup/memory");
        let (dir, usage) = if v1.is_dir() {
            (v1.join(&name), "memory.usage_in_bytes")
        } else {
            (Path::new("/sys/fs/cgroup").join(&name), "memory.current")
        };
        std::fs::create_dir_all(&dir).map_err(|e| BaselineError::Io("create peer cgroup", e))?;
        let usage = dir.join(usage);
        Ok(PeerCgroup { dir, usage })
    }

    /// Bytes charged to the cgroup now.
    pub fn bytes(&self) -> Result<u64, BaselineError> {
        let s = std::fs::read_to_string(&self.usage)
            .map_err(|e| BaselineError::Io("read peer cgroup usage", e))?;
        s.trim()
            .parse()
            .map_err(|_| BaselineError::Output(format!("cgroup usage {s:?}")))
    }
}

impl Drop for PeerCgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// An idle peer sandbox, killed on drop.
pub struct IdlePeer(Child);

impl Drop for IdlePeer {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
