//! The namespace sandbox: flint-init as PID 1 of fresh PID, mount, network, IPC, UTS
//! and cgroup namespaces, pivoted into the runtime's read-only root file system, inside
//! a cgroup that caps memory and processes. The host end of the flint-init stream is
//! one end of a Unix socketpair. For hosts without hardware virtualisation.

pub mod cgroup;

use super::{BoxFuture, Sandbox, SandboxBackend, SandboxError, SandboxSpec};
use crate::limits::PIDS_MAX;
use cgroup::SandboxCgroup;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

/// Makes namespace sandboxes.
pub struct NamespaceBackend {
    init_path: PathBuf,
    cgroup_parent: String,
}

impl NamespaceBackend {
    /// A backend running `init_path` under cgroup `cgroup_parent`; removes sandboxes
    /// a previous agent left behind.
    pub fn new(init_path: PathBuf, cgroup_parent: String) -> Self {
        let stale = cgroup::remove_stale(&cgroup_parent);
        if stale > 0 {
            tracing::info!(stale, "removed sandboxes left by an earlier run");
        }
        Self {
            init_path,
            cgroup_parent,
        }
    }
}

impl SandboxBackend for NamespaceBackend {
    fn kind(&self) -> &'static str {
        "namespace"
    }

    fn create<'a>(
        &'a self,
        spec: &'a SandboxSpec,
    ) -> BoxFuture<'a, Result<Box<dyn Sandbox>, SandboxError>> {
        Box::pin(async move {
            let cg =
                SandboxCgroup::create(&self.cgroup_parent, &spec.id, spec.memory_mb, PIDS_MAX)?;
            match spawn(&self.init_path, spec, &cg) {
                Ok((child, stream)) => Ok(Box::new(NamespaceSandbox {
                    id: spec.id.clone(),
                    child: Some(child),
                    cgroup: Some(cg),
                    stream: Some(stream),
                }) as Box<dyn Sandbox>),
                Err(e) => {
                    cg.kill_all();
                    let _ = cg.delete();
                    Err(e)
                }
            }
        })
    }
}

fn spawn(
    init: &std::path::Path,
    spec: &SandboxSpec,
    cg: &SandboxCgroup,
) -> Result<(tokio::process::Child, tokio::net::UnixStream), SandboxError> {
    let (host, guest) = std::os::unix::net::UnixStream::pair()?;
    let guest_fd = guest.as_raw_fd();
    let mut cmd = tokio::process::Command::new(init);
    cmd.arg("sandbox")
        .arg("--rootfs")
        .arg(&spec.rootfs)
        .arg("--fd")
        .arg(guest_fd.to_string())
        .arg("--hostname")
        .arg("flint");
    for f in cg.procs_files() {
        cmd.arg("--cgroup").arg(f);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // SAFETY: the closure runs in the forked child before exec and only calls fcntl,
    // which is async-signal-safe; guest_fd is open in the child (inherited).
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(guest_fd, libc::F_SETFD, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|source| SandboxError::Spawn {
        path: init.to_path_buf(),
        source,
    })?;
    drop(guest);
    if let Some(stderr) = child.stderr.take() {
        let id = spec.id.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::debug!(sandbox = %id, "flint-init: {line}");
            }
        });
    }
    host.set_nonblocking(true)?;
    Ok((child, tokio::net::UnixStream::from_std(host)?))
}

/// One namespace sandbox.
pub struct NamespaceSandbox {
    id: String,
    child: Option<tokio::process::Child>,
    cgroup: Option<SandboxCgroup>,
    stream: Option<tokio::net::UnixStream>,
}

impl Sandbox for NamespaceSandbox {
    fn id(&self) -> &str {
        &self.id
    }

    fn take_stream(&mut self) -> Option<tokio::net::UnixStream> {
        self.stream.take()
    }

    fn oom_killed(&self) -> bool {
        self.cgroup.as_ref().is_some_and(|c| c.oom_kills() > 0)
    }

    fn memory_peak(&self) -> Option<u64> {
        self.cgroup.as_ref().and_then(|c| c.memory_peak())
    }

    fn destroy(&mut self) -> BoxFuture<'_, Result<(), SandboxError>> {
        Box::pin(async move {
            self.stream = None;
            if let Some(mut child) = self.child.take() {
                // The launcher's death kills PID 1 (PDEATHSIG), and with it the whole
                // PID namespace; kill_all below covers anything that escaped.
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
            match self.cgroup.take() {
                Some(cg) => release_cgroup(&self.id, cg).await,
                None => Ok(()),
            }
        })
    }
}

/// Kills everything in a sandbox's cgroup and removes it, waiting up to a few seconds.
pub(crate) async fn release_cgroup(id: &str, cg: SandboxCgroup) -> Result<(), SandboxError> {
    for _ in 0..500 {
        cg.kill_all();
        if cg.pids().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut last = Ok(());
    for _ in 0..100 {
        last = cg.delete();
        if last.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if let Err(e) = &last {
        tracing::warn!(sandbox = %id, error = %e, "cgroup left behind");
    }
    last
}

/// The same, synchronously (for Drop, when destroy was never called).
pub(crate) fn release_cgroup_now(cg: &SandboxCgroup) {
    cg.kill_all();
    for _ in 0..100 {
        if cg.pids().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = cg.delete();
}

impl Drop for NamespaceSandbox {
    fn drop(&mut self) {
        if let Some(cg) = &self.cgroup {
            // Not destroyed through destroy(): kill what we can synchronously.
            release_cgroup_now(cg);
        }
    }
}
