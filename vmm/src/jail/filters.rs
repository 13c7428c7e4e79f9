//! The jailed VMM's seccomp filters (seccompiler, BPF). Anything not listed kills the
//! process (SECCOMP_RET_KILL_PROCESS), as Firecracker's filters do.
//!
//! - [`Kind::Process`], installed on the main thread once the VM is built, before any
//!   other thread exists, so every thread inherits it: what the VMM needs to run, pause,
//!   snapshot and end the VM (memory management, threads, signals to its own threads,
//!   KVM ioctls, the devices' file and socket I/O, and the snapshot's files).
//! - [`Kind::Supervisor`], the jail's waiting process outside the VMM's PID namespace:
//!   signals, waiting for its child, exiting; not even read or write.
//! - [`Kind::Vcpu`], stacked by each vCPU thread when it starts (and inherited by the
//!   device worker threads the vCPUs start when the guest activates a device): no file
//!   may be opened, created, renamed or removed by name, no signal sent, no process
//!   created, and ioctl is limited to KVM's ioctls and the two socket ones the workers
//!   use. A guest that takes over a vCPU thread's exit handling gets nothing more than
//!   the file descriptors the VMM already holds.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use super::JailError;

/// Which filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The whole process.
    Process,
    /// vCPU threads and the device workers they start.
    Vcpu,
    /// The process outside the PID namespace that waits for the VMM (pid_ns.rs): signals,
    /// waiting for its child, and its own end; nothing else.
    Supervisor,
}

/// Everything the supervisor does: wait for signals and its child, signal the child,
/// restore a default action and raise a signal on itself, and exit.
const SUPERVISOR: &[libc::c_long] = &[
    libc::SYS_rt_sigtimedwait,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigreturn,
    libc::SYS_restart_syscall,
    libc::SYS_wait4,
    libc::SYS_kill,
    libc::SYS_tgkill,
    libc::SYS_getpid,
    libc::SYS_gettid,
    libc::SYS_exit,
    libc::SYS_exit_group,
];

/// System calls every thread makes: memory, threads, futexes, time, I/O on descriptors it
/// holds, epoll and eventfds, and the Unix sockets of the vsock device.
const COMMON: &[libc::c_long] = &[
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_preadv,
    libc::SYS_pwritev,
    libc::SYS_lseek,
    libc::SYS_close,
    libc::SYS_fstat,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_fcntl,
    libc::SYS_dup,
    libc::SYS_dup3,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    libc::SYS_mremap,
    libc::SYS_brk,
    libc::SYS_futex,
    libc::SYS_clone,
    libc::SYS_clone3,
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_sigaltstack,
    libc::SYS_gettid,
    libc::SYS_getpid,
    libc::SYS_prctl,
    libc::SYS_sched_getaffinity,
    libc::SYS_sched_yield,
    libc::SYS_nanosleep,
    libc::SYS_clock_nanosleep,
    libc::SYS_clock_gettime,
    libc::SYS_getrandom,
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_pwait,
    libc::SYS_eventfd2,
    libc::SYS_ppoll,
    libc::SYS_connect,
    libc::SYS_accept4,
    libc::SYS_sendto,
    libc::SYS_recvfrom,
    libc::SYS_sendmsg,
    libc::SYS_recvmsg,
    libc::SYS_shutdown,
    libc::SYS_getsockopt,
    libc::SYS_setsockopt,
    libc::SYS_getsockname,
    libc::SYS_getpeername,
];

/// The legacy system calls that only x86_64 has (aarch64's kernel ABI has only the
/// `*at`/`p*` forms, already in the lists): glibc and std still use some of them there.
#[cfg(target_arch = "x86_64")]
const COMMON_X86_64: &[libc::c_long] = &[libc::SYS_epoll_wait, libc::SYS_poll];
#[cfg(not(target_arch = "x86_64"))]
const COMMON_X86_64: &[libc::c_long] = &[];

/// As [`COMMON_X86_64`], for the main thread's snapshot files.
#[cfg(target_arch = "x86_64")]
const PROCESS_ONLY_X86_64: &[libc::c_long] = &[libc::SYS_mkdir, libc::SYS_unlink, libc::SYS_rename];
#[cfg(not(target_arch = "x86_64"))]
const PROCESS_ONLY_X86_64: &[libc::c_long] = &[];

/// What only the main thread needs: the snapshot's files and directories (by name),
/// signals to its own vCPU threads, waiting for SIGUSR1, and installing the vCPU filter.
const PROCESS_ONLY: &[libc::c_long] = &[
    libc::SYS_openat,
    libc::SYS_mkdirat,
    libc::SYS_unlinkat,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_ftruncate,
    libc::SYS_fallocate,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_tgkill,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigtimedwait,
    libc::SYS_ioctl,
    // A thread stacking its own, narrower filter (vCPU threads at start).
    libc::SYS_seccomp,
];

/// `_IOC_TYPE` of every KVM ioctl.
const KVM_IOCTL_TYPE: u64 = 0xAE;

fn rules(kind: Kind) -> Result<BTreeMap<i64, Vec<SeccompRule>>, JailError> {
    let err = |e: seccompiler::BackendError| JailError::Seccomp(e.to_string());
    let mut map: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    if kind == Kind::Supervisor {
        for &nr in SUPERVISOR {
            map.insert(nr, vec![]);
        }
        return Ok(map);
    }
    for &nr in COMMON.iter().chain(COMMON_X86_64) {
        map.insert(nr, vec![]);
    }
    // Sockets: only Unix ones (the vsock device's host side).
    let unix = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::Eq,
        libc::AF_UNIX as u64,
    )
    .map_err(err)?;
    map.insert(
        libc::SYS_socket,
        vec![SeccompRule::new(vec![unix]).map_err(err)?],
    );
    match kind {
        Kind::Supervisor => {}
        Kind::Process => {
            for &nr in PROCESS_ONLY.iter().chain(PROCESS_ONLY_X86_64) {
                map.insert(nr, vec![]);
            }
        }
        Kind::Vcpu => {
            // ioctl: KVM's (type 0xAE in bits 8-15 of the request) and FIONBIO/FIOCLEX.
            let kvm = SeccompCondition::new(
                1,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::MaskedEq(0xff00),
                KVM_IOCTL_TYPE << 8,
            )
            .map_err(err)?;
            let fionbio =
                SeccompCondition::new(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, libc::FIONBIO)
                    .map_err(err)?;
            let fioclex =
                SeccompCondition::new(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, libc::FIOCLEX)
                    .map_err(err)?;
            map.insert(
                libc::SYS_ioctl,
                vec![
                    SeccompRule::new(vec![kvm]).map_err(err)?,
                    SeccompRule::new(vec![fionbio]).map_err(err)?,
                    SeccompRule::new(vec![fioclex]).map_err(err)?,
                ],
            );
        }
    }
    Ok(map)
}

/// The compiled filter of `kind`.
pub fn program(kind: Kind) -> Result<BpfProgram, JailError> {
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| JailError::Seccomp(e.to_string()))?;
    let filter = SeccompFilter::new(
        rules(kind)?,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        arch,
    )
    .map_err(|e| JailError::Seccomp(e.to_string()))?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| JailError::Seccomp(e.to_string()))
}

/// Installs `kind`'s filter on the calling thread (inherited by threads it starts).
pub fn install(kind: Kind) -> Result<(), JailError> {
    let prog = program(kind)?;
    seccompiler::apply_filter(&prog).map_err(|e| JailError::Seccomp(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_filters_compile() {
        assert!(!program(Kind::Process).expect("process").is_empty());
        assert!(!program(Kind::Vcpu).expect("vcpu").is_empty());
        assert!(!program(Kind::Supervisor).expect("supervisor").is_empty());
    }

    #[test]
    fn the_supervisor_can_only_wait_signal_and_exit() {
        let sup = rules(Kind::Supervisor).expect("rules");
        for nr in [
            libc::SYS_openat,
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_mmap,
            libc::SYS_socket,
            libc::SYS_ptrace,
            libc::SYS_execve,
            libc::SYS_clone,
            libc::SYS_ioctl,
        ] {
            assert!(!sup.contains_key(&nr), "supervisor filter allows {nr}");
        }
        for nr in [libc::SYS_rt_sigtimedwait, libc::SYS_wait4, libc::SYS_kill] {
            assert!(sup.contains_key(&nr), "supervisor filter lacks {nr}");
        }
    }

    #[test]
    fn the_vcpu_filter_cannot_open_files_or_signal() {
        let vcpu = rules(Kind::Vcpu).expect("rules");
        let process = rules(Kind::Process).expect("rules");
        for nr in [
            libc::SYS_openat,
            libc::SYS_unlinkat,
            libc::SYS_renameat2,
            libc::SYS_tgkill,
            libc::SYS_execve,
        ] {
            assert!(!vcpu.contains_key(&nr), "vCPU filter allows {nr}");
        }
        assert!(!process.contains_key(&libc::SYS_execve));
        // Everything the vCPU filter allows, the process filter allows too (the vCPU's
        // is stacked on it).
        for nr in vcpu.keys() {
            assert!(process.contains_key(nr), "{nr} only in the vCPU filter");
        }
    }
}
