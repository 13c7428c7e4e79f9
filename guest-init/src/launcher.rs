//! `flint-init sandbox`: the namespace sandbox launcher run by flintd. It joins the
//! sandbox's cgroups, unshares the namespaces and forks; the parent stays in the host's
//! pid namespace (forwarding SIGTERM/SIGINT and reporting the exit status), the child
//! becomes PID 1 of the new pid namespace, builds the file system and runs the init loop.

use crate::control::{self, Paths, RUNTIME_PGID};
use crate::{net, sandbox_fs, sandbox_mask, userns};
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{self, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use std::fs::File;
use std::os::fd::{FromRawFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Validated `sandbox` arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxArgs {
    /// The image's root directory (shared, never written).
    pub rootfs: PathBuf,
    /// The host stream descriptor.
    pub fd: RawFd,
    /// `cgroup.procs` files to join.
    pub cgroups: Vec<PathBuf>,
    /// Hostname inside the sandbox.
    pub hostname: String,
    /// First host uid (and gid) of the sandbox's own user namespace (65,536 ids);
    /// none: no user namespace (the sandbox's root is the host's root).
    pub uid_base: Option<u32>,
    /// The network namespace flintd made (outbound functions); none: a new one with
    /// loopback only.
    pub net: Option<SandboxNet>,
    /// Host directories mounted read-only at the second path (under /mnt).
    pub ro_binds: Vec<(PathBuf, PathBuf)>,
    /// A detached disk-backed file system (made by flintd) to attach at /tmp.
    pub tmp_fd: Option<RawFd>,
}

/// A network namespace made and configured by flintd, joined before the other
/// namespaces are unshared (it stays owned by the host's user namespace, so nothing
/// inside can change its interfaces), and the resolv.conf that goes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxNet {
    /// The namespace's descriptor, inherited from flintd.
    pub fd: RawFd,
    /// Bind-mounted read-only over the image's /etc/resolv.conf.
    pub resolv_conf: PathBuf,
}

/// Errors launching the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// Joining a cgroup failed
    #[error("joining cgroup {0}: {1}")]
    Cgroup(PathBuf, std::io::Error),
    /// The host stream descriptor is not open
    #[error("descriptor {0} is not open: {1}")]
    BadFd(RawFd, nix::Error),
    /// A namespace, signal or process system call failed
    #[error("{0}: {1}")]
    Sys(&'static str, nix::Error),
    /// Building the sandbox's file system failed
    #[error(transparent)]
    Fs(#[from] sandbox_fs::FsError),
    /// Bringing up the loopback interface failed
    #[error(transparent)]
    Net(#[from] net::NetError),
    /// The init loop could not start
    #[error(transparent)]
    Control(#[from] control::ControlError),
    /// The sandbox's user namespace could not be set up
    #[error(transparent)]
    Userns(#[from] userns::UsernsError),
}

fn sys(what: &'static str) -> impl FnOnce(nix::Error) -> LaunchError {
    move |e| LaunchError::Sys(what, e)
}

/// Runs the launcher; returns the exit code for the parent process.
pub fn run(args: &SandboxArgs) -> Result<i32, LaunchError> {
    let started = Instant::now();
    let pid = std::process::id().to_string();
    for cg in &args.cgroups {
        std::fs::write(cg, &pid).map_err(|e| LaunchError::Cgroup(cg.clone(), e))?;
    }
    if let Err(e) = set_oom_unkillable() {
        // Needs CAP_SYS_RESOURCE, which some hosts (containers) withhold: degrade.
        eprintln!("flint-init: warning: oom_score_adj -1000 not set: {e}");
    }
    nix::fcntl::fcntl(args.fd, nix::fcntl::FcntlArg::F_GETFD)
        .map_err(|e| LaunchError::BadFd(args.fd, e))?;
    let mut namespaces = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWCGROUP;
    match &args.net {
        Some(net) => {
            // SAFETY: flintd handed this descriptor over for the sandbox's lifetime.
            let ns = unsafe { std::os::fd::OwnedFd::from_raw_fd(net.fd) };
            nix::sched::setns(&ns, CloneFlags::CLONE_NEWNET).map_err(sys("setns(network)"))?;
        }
        None => namespaces |= CloneFlags::CLONE_NEWNET,
    }
    match args.uid_base {
        Some(base) => userns::unshare_mapped(namespaces, base)?,
        None => unshare(namespaces).map_err(sys("unshare"))?,
    }
    let mut forwarded = SigSet::empty();
    forwarded.add(Signal::SIGTERM);
    forwarded.add(Signal::SIGINT);
    forwarded.add(Signal::SIGCHLD);
    let mut old = SigSet::empty();
    signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&forwarded), Some(&mut old))
        .map_err(sys("sigprocmask"))?;
    // SAFETY: the launcher is single-threaded here, so the child may run any code.
    match unsafe { fork() }.map_err(sys("fork"))? {
        ForkResult::Parent { child } => {
            let _ = nix::unistd::close(args.fd);
            if let Some(fd) = args.tmp_fd {
                let _ = nix::unistd::close(fd);
            }
            supervise(child, &forwarded)
        }
        ForkResult::Child => {
            let code = match sandbox_child(args, &old, started) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("flint-init: sandbox: {e}");
                    1
                }
            };
            std::process::exit(code)
        }
    }
}

/// The parent: forward signals to the child, return its exit status.
fn supervise(child: Pid, set: &SigSet) -> Result<i32, LaunchError> {
    loop {
        let sig = set.wait().map_err(sys("sigwait"))?;
        if sig != Signal::SIGCHLD {
            let _ = signal::kill(child, sig);
            continue;
        }
        match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => return Err(LaunchError::Sys("waitpid", e)),
        }
    }
}

fn set_oom_unkillable() -> std::io::Result<()> {
    std::fs::write("/proc/self/oom_score_adj", "-1000")
}

extern "C" fn on_terminate(sig: libc::c_int) {
    let pgid = RUNTIME_PGID.load(Ordering::SeqCst);
    // SAFETY: kill and _exit are async-signal-safe.
    unsafe {
        if pgid > 0 {
            libc::kill(-pgid, libc::SIGKILL);
        }
        libc::_exit(128 + sig);
    }
}

/// PID 1 of the new pid namespace.
fn sandbox_child(args: &SandboxArgs, old: &SigSet, started: Instant) -> Result<i32, LaunchError> {
    // SAFETY: plain prctl; asks for SIGKILL when the launcher parent dies.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } != 0 {
        return Err(LaunchError::Sys("PR_SET_PDEATHSIG", nix::Error::last()));
    }
    // As PID 1 of a pid namespace, signals from the host are only delivered when a
    // handler is installed: make SIGTERM/SIGINT end the sandbox.
    let action = signal::SigAction::new(
        signal::SigHandler::Handler(on_terminate),
        signal::SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        // SAFETY: the handler only calls async-signal-safe functions.
        unsafe { signal::sigaction(sig, &action) }.map_err(sys("sigaction"))?;
    }
    signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(old), None).map_err(sys("sigprocmask"))?;
    // Inherited from the launcher when it worked; a failure was already reported.
    let _ = set_oom_unkillable();
    sandbox_fs::setup(
        &args.rootfs,
        &args.hostname,
        args.net.as_ref().map(|n| n.resolv_conf.as_path()),
        &args.ro_binds,
    )?;
    if let Err(e) = sandbox_mask::hide_cmdline() {
        // Needs CAP_SYS_RESOURCE, which some hosts (containers) withhold: degrade.
        eprintln!("flint-init: warning: /proc/1/cmdline still shows the launcher's arguments: {e}");
    }
    net::loopback_up()?;
    nix::fcntl::fcntl(
        args.fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map_err(|e| LaunchError::BadFd(args.fd, e))?;
    // SAFETY: `fd` was checked to be open and is handed to us by flintd to own.
    let stream = unsafe { File::from_raw_fd(args.fd) };
    if let Some(fd) = args.tmp_fd {
        nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .map_err(|e| LaunchError::BadFd(fd, e))?;
    }
    let paths = Paths {
        tmp_fd: args.tmp_fd,
        ..Paths::default()
    };
    Ok(control::run(stream, started, &paths, None)?)
}
