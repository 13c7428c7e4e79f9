//! Confinement of one flint-vmm process, in the spirit of Firecracker's jailer but done by
//! flint-vmm itself (`--jail DIR --jail-uid U --jail-gid G`):
//!
//! 1. [`enter`], before the VM is built (the process is still single-threaded): a fork
//!    into a new PID namespace whose PID 1 becomes the VMM while the parent, dropped to
//!    U and G under a seccomp filter of its own, waits for it ([`pid_ns`]); new mount, IPC and UTS namespaces (and a new, empty network
//!    namespace when the VM has no network device); a tmpfs on DIR holding only the VM's files, each bind-mounted at its own
//!    path (inputs read-only, the directories of outputs read-write) and a private
//!    `/dev/kvm` (and `/dev/net/tun`) node; then `pivot_root` into it, so the rest of the
//!    host's file system is gone from the process.
//! 2. The VM is built as usual, opening its files by the same paths inside the jail.
//! 3. [`drop_privileges`], before the vCPUs start: every supplementary group dropped, the
//!    real, effective and saved ids set to U and G (which clears every capability),
//!    the parent-death signal armed again (an id change clears it),
//!    `PR_SET_NO_NEW_PRIVS`, and the process seccomp filter ([`filters`]); each vCPU thread
//!    then stacks its own, narrower filter when it starts ([`enter_vcpu_thread`]).
//!
//! A process that is not jailed is unchanged.

pub mod filters;
mod mounts;
mod pid_ns;
mod plan;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

pub use plan::Plan;

/// Set once the process has dropped its privileges: vCPU threads started afterwards
/// install their filter.
static JAILED: AtomicBool = AtomicBool::new(false);

/// The jail's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JailConfig {
    /// An existing, empty directory that becomes the process's root.
    pub root: PathBuf,
    /// User the VMM runs as once the VM is built (not 0).
    pub uid: u32,
    /// Group the VMM runs as.
    pub gid: u32,
}

/// Errors confining the process.
#[derive(Debug, thiserror::Error)]
pub enum JailError {
    /// --jail needs root (CAP_SYS_ADMIN for the namespaces and mounts)
    #[error("--jail needs root (CAP_SYS_ADMIN for the namespaces and mounts); run flint-vmm as root or without --jail")]
    NotRoot,
    /// --jail-uid 0 would keep root: give the unprivileged user the VMM should run as
    #[error("--jail-uid 0 would keep root: give the unprivileged user the VMM should run as")]
    RootUid,
    /// jail directory {0} must be an existing, empty directory
    #[error("jail directory {0} must be an existing, empty directory")]
    BadRoot(PathBuf),
    /// jail path {0} must be absolute
    #[error("a path given to a jailed flint-vmm must be absolute: {0}")]
    RelativePath(PathBuf),
    /// a system call failed while setting up the jail
    #[error("jail set-up: {what} {path}: {source}")]
    Sys {
        /// The step.
        what: &'static str,
        /// The path involved, if any.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// the seccomp filter could not be built or installed
    #[error("seccomp filter: {0}")]
    Seccomp(String),
}

pub(crate) fn sys(
    what: &'static str,
    path: impl Into<String>,
) -> impl FnOnce(std::io::Error) -> JailError {
    let path = path.into();
    move |source| JailError::Sys { what, path, source }
}

/// Checks the settings before anything is changed.
pub fn check(config: &JailConfig) -> Result<(), JailError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(JailError::NotRoot);
    }
    if config.uid == 0 {
        return Err(JailError::RootUid);
    }
    let empty = std::fs::read_dir(&config.root)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false);
    if !config.root.is_absolute() || !empty {
        return Err(JailError::BadRoot(config.root.clone()));
    }
    Ok(())
}

/// Moves the process into its namespaces and its own root holding only `plan`'s paths.
/// Must run while the process has one thread.
pub fn enter(config: &JailConfig, plan: &Plan) -> Result<(), JailError> {
    check(config)?;
    // First, so that everything after runs as PID 1 of the new namespace (the parent
    // waits there, pid_ns.rs).
    pid_ns::enter(config.uid, config.gid)?;
    let mut flags = libc::CLONE_NEWNS | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS;
    if !plan.needs_network() {
        flags |= libc::CLONE_NEWNET;
    }
    // SAFETY: unshare takes flags only; the process is single-threaded here (checked by
    // the kernel: CLONE_NEWNS fails with EINVAL otherwise).
    if unsafe { libc::unshare(flags) } != 0 {
        return Err(sys("unshare", "")(std::io::Error::last_os_error()));
    }
    mounts::build_root(config, plan)?;
    mounts::pivot_into(&config.root)?;
    Ok(())
}

/// Drops every privilege and installs the process filter; later vCPU threads stack
/// theirs.
pub fn drop_privileges(config: &JailConfig) -> Result<(), JailError> {
    let gid = config.gid;
    let uid = config.uid;
    // SAFETY: setgroups with a zero count reads no memory.
    if unsafe { libc::setgroups(0, std::ptr::null()) } != 0 {
        return Err(sys("setgroups", "")(std::io::Error::last_os_error()));
    }
    // SAFETY: plain id arguments.
    if unsafe { libc::setresgid(gid, gid, gid) } != 0 {
        return Err(sys("setresgid", gid.to_string())(
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: plain id arguments. Leaving uid 0 for a non-zero uid in all three ids
    // clears the permitted, effective and ambient capability sets.
    if unsafe { libc::setresuid(uid, uid, uid) } != 0 {
        return Err(sys("setresuid", uid.to_string())(
            std::io::Error::last_os_error(),
        ));
    }
    // The id change cleared the parent-death signal.
    pid_ns::rearm_death_signal()?;
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(sys("prctl(PR_SET_NO_NEW_PRIVS)", "")(
            std::io::Error::last_os_error(),
        ));
    }
    filters::install(filters::Kind::Process)?;
    JAILED.store(true, Ordering::SeqCst);
    Ok(())
}

/// Called first thing on every vCPU thread: stacks the vCPU filter when jailed. A thread
/// that cannot install it ends the process (it must never run unconfined).
pub fn enter_vcpu_thread() {
    if !JAILED.load(Ordering::SeqCst) {
        return;
    }
    if let Err(e) = filters::install(filters::Kind::Vcpu) {
        eprintln!("flint-vmm: cannot confine a vCPU thread: {e}");
        std::process::exit(crate::exit::EXIT_VMM_ERROR);
    }
}
