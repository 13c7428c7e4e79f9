//! Parked launchers: flint-init launchers started ahead of need, each already inside
//! a fresh sandbox cgroup of its own, waiting on a control socket for the sandbox to
//! run (`flint-init sandbox-parked`, protocol in guest-init/src/parked.rs).
//!
//! Why: a process joins a cgroup by writing its pid to `cgroup.procs`; without the
//! `favordynmods` mount option the first such write waits for the kernel's RCU grace
//! period (about 10 ms on a fresh host), which used to sit on every empty-pool cold
//! start. A parked launcher pays it while flintd refills in the background. At a cold
//! start flintd takes one, renames its cgroup to the sandbox's id (cgroup v1: a
//! directory rename moves no process), writes the sandbox's memory cap and CPU weight
//! (the pid limit is set when it is parked), and only then sends the sandbox's
//! arguments: the launcher unshares and forks, and the sandbox's PID 1 inherits the
//! cgroup by fork (which takes the cgroup lock only for reading: no grace period).
//!
//! Parked launchers are capped from the start (pid limit, [`PARKED_MEMORY_MB`] of
//! memory); their cgroups are named like sandboxes (`sbx-parked-N`), so the start-up
//! and stop sweeps remove what a killed flintd left, and a parked launcher whose
//! flintd is gone sees end of file on its socket and exits.

use super::cgroup::SandboxCgroup;
use super::cpu::CpuQuota;
use crate::limits::{MEMORY_MIN_MB, PIDS_MAX};
use crate::sandbox::process::ProcessSandbox;
use crate::sandbox::{SandboxError, SANDBOX_ID_PREFIX};
use nix::sys::socket::{
    recv, sendmsg, socketpair, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType,
};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::AsyncBufReadExt;

/// Memory cap of a parked launcher's cgroup until its sandbox's own is written.
pub const PARKED_MEMORY_MB: u32 = MEMORY_MIN_MB;
/// How long a new launcher may take to join its cgroups and say so.
const READY_WAIT: Duration = Duration::from_secs(5);
/// Pause after a failed refill before the next try; doubled after each failure in a row
/// up to [`RETRY_MAX`].
const RETRY_GAP: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);
/// The byte a launcher sends once it is in its cgroups.
const READY: u8 = b'R';

/// One parked launcher: the process, its cgroup and the host end of its control socket.
pub struct ParkedLauncher {
    child: tokio::process::Child,
    /// Named `sbx-parked-N` until [`SandboxCgroup::rename`]d to its sandbox's id.
    pub cgroup: SandboxCgroup,
    control: OwnedFd,
}

impl ParkedLauncher {
    /// Hands the launcher its sandbox: the words of the `sandbox` subcommand (without
    /// descriptors or cgroups) and the stream, /tmp and (outbound) network descriptors.
    pub fn start(&self, words: &[OsString], fds: &[RawFd]) -> Result<(), SandboxError> {
        let mut payload = Vec::new();
        for w in words {
            payload.extend_from_slice(w.as_bytes());
            payload.push(0);
        }
        let iov = [IoSlice::new(&payload)];
        let cmsg = [ControlMessage::ScmRights(fds)];
        sendmsg::<()>(
            self.control.as_raw_fd(),
            &iov,
            &cmsg,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map_err(|e| SandboxError::Io(std::io::Error::from(e)))?;
        Ok(())
    }

    /// The launcher process and its cgroup, once [`start`](Self::start)ed (or to
    /// tear down).
    pub fn into_parts(self) -> (tokio::process::Child, SandboxCgroup) {
        (self.child, self.cgroup)
    }

    /// Kills the launcher and removes its cgroup.
    pub async fn discard(self) {
        let name = self.cgroup.path().to_string();
        let mut s = ProcessSandbox::new(&name, self.cgroup);
        s.child = Some(self.child);
        if let Err(e) = s.teardown().await {
            tracing::warn!(cgroup = %name, error = %e, "parked launcher not removed");
        }
    }
}

/// The parked launchers of one agent and their background refill.
pub struct ParkedLaunchers {
    target: usize,
    init: PathBuf,
    parent: String,
    ready: Mutex<VecDeque<ParkedLauncher>>,
    wake: tokio::sync::Notify,
    stopped: AtomicBool,
    next: AtomicU64,
    refill: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl ParkedLaunchers {
    /// Keeps `target` launchers of `init` parked under cgroup `parent`, refilled by a
    /// task on the current tokio runtime.
    pub fn start(target: usize, init: PathBuf, parent: String) -> Arc<Self> {
        let me = Arc::new(Self {
            target,
            init,
            parent,
            ready: Mutex::new(VecDeque::new()),
            wake: tokio::sync::Notify::new(),
            stopped: AtomicBool::new(false),
            next: AtomicU64::new(0),
            refill: Mutex::new(None),
        });
        let task = tokio::spawn(me.clone().refill_loop());
        *me.refill.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        me
    }

    /// A parked launcher, if one is ready; the refill starts another.
    pub fn take(&self) -> Option<ParkedLauncher> {
        let p = self
            .ready
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front();
        self.wake.notify_one();
        p
    }

    /// How many are parked now.
    pub fn ready(&self) -> usize {
        self.ready.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Stops the refill, kills every parked launcher and removes its cgroup.
    pub async fn shutdown(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.wake.notify_one();
        let task = self.refill.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = task {
            let _ = tokio::time::timeout(READY_WAIT + Duration::from_secs(1), t).await;
        }
        let all: Vec<_> = self
            .ready
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        for p in all {
            p.discard().await;
        }
    }

    async fn refill_loop(self: Arc<Self>) {
        let mut gap = RETRY_GAP;
        loop {
            while !self.stopped.load(Ordering::SeqCst) && self.ready() < self.target {
                match self.park_one().await {
                    Ok(p) if self.stopped.load(Ordering::SeqCst) => p.discard().await,
                    Ok(p) => {
                        gap = RETRY_GAP;
                        self.ready
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push_back(p)
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in = ?gap, "could not park a sandbox launcher");
                        // Woken early by a stop.
                        let _ = tokio::time::timeout(gap, self.wake.notified()).await;
                        gap = (gap * 2).min(RETRY_MAX);
                    }
                }
            }
            if self.stopped.load(Ordering::SeqCst) {
                return;
            }
            self.wake.notified().await;
        }
    }

    /// Starts one launcher in a new cgroup and waits until it has joined it.
    async fn park_one(&self) -> Result<ParkedLauncher, SandboxError> {
        let name = format!(
            "{SANDBOX_ID_PREFIX}parked-{}-{}",
            std::process::id(),
            self.next.fetch_add(1, Ordering::Relaxed)
        );
        let cgroup = SandboxCgroup::create(
            &self.parent,
            &name,
            PARKED_MEMORY_MB,
            PIDS_MAX,
            CpuQuota::for_memory(PARKED_MEMORY_MB),
        )?;
        let (host, guest) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| SandboxError::Io(e.into()))?;
        // Non-blocking on flintd's end only: the launcher blocks in its wait.
        nix::fcntl::fcntl(
            host.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .map_err(|e| SandboxError::Io(e.into()))?;
        let mut child = match spawn(&self.init, &cgroup, guest.as_raw_fd()) {
            Ok(c) => c,
            Err(e) => {
                let _ = cgroup.delete();
                return Err(e);
            }
        };
        drop(guest);
        if let Some(stderr) = child.stderr.take() {
            forward_stderr(name, stderr);
        }
        let p = ParkedLauncher {
            child,
            cgroup,
            control: host,
        };
        match tokio::time::timeout(READY_WAIT, wait_ready(&p.control)).await {
            Ok(Ok(())) => Ok(p),
            Ok(Err(e)) => {
                p.discard().await;
                Err(e)
            }
            Err(_) => {
                p.discard().await;
                Err(SandboxError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("a parked launcher did not join its cgroups within {READY_WAIT:?}"),
                )))
            }
        }
    }
}

/// `flint-init sandbox-parked` with the control socket's launcher end inherited.
fn spawn(
    init: &std::path::Path,
    cgroup: &SandboxCgroup,
    control: RawFd,
) -> Result<tokio::process::Child, SandboxError> {
    let mut cmd = tokio::process::Command::new(init);
    cmd.arg("sandbox-parked")
        .arg("--control-fd")
        .arg(control.to_string());
    for f in cgroup.procs_files() {
        cmd.arg("--cgroup").arg(f);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // SAFETY: the closure runs in the forked child before exec and only calls fcntl,
    // which is async-signal-safe; `control` is open until the child has started.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(control, libc::F_SETFD, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().map_err(|source| SandboxError::Spawn {
        path: init.to_path_buf(),
        source,
    })
}

/// Waits for the launcher's [`READY`] byte.
async fn wait_ready(control: &OwnedFd) -> Result<(), SandboxError> {
    let io = |e: std::io::Error| SandboxError::Io(e);
    // SAFETY: the descriptor stays open (owned by `control`, borrowed for this whole
    // function) for as long as `afd`, which deregisters it when dropped here.
    let afd = unsafe { AsyncFd::register(control.as_raw_fd()) }.map_err(|e| io(e.into()))?;
    loop {
        let mut guard = afd.readable().await.map_err(io)?;
        let mut b = [0u8; 1];
        match recv(control.as_raw_fd(), &mut b, MsgFlags::empty()) {
            Ok(1) if b[0] == READY => return Ok(()),
            Ok(_) => return Err(io(std::io::Error::other(
                "the parked launcher exited before joining its cgroups (its stderr is in the log)",
            ))),
            Err(nix::Error::EAGAIN) => guard.clear_ready(),
            Err(e) => return Err(io(e.into())),
        }
    }
}

fn forward_stderr(name: String, stderr: tokio::process::ChildStderr) {
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::debug!(launcher = %name, "flint-init: {line}");
        }
    });
}
