//! The seccomp filter on the function's runtime, installed by flint-init in the
//! forked child just before it execs the runtime (so it binds the runtime and all it
//! starts, not flint-init). A deny list: every system call not named here is allowed,
//! so Python, Node, Java and Ruby run unchanged; the named ones fail with EPERM (not a
//! kill: runtimes probe some of them and fall back). What each group protects against:
//!
//! - namespaces (`unshare`, `setns`, `clone` with any namespace flag): a nested user
//!   namespace would hand the function a full capability set over its own mounts and
//!   network stack, the base of most container escapes. `clone3` passes its flags in
//!   memory a filter cannot read, so it fails with ENOSYS instead, which makes glibc
//!   fall back to `clone`;
//! - mounts after set-up (`mount`, `umount2`, `pivot_root`, `chroot` and the new mount
//!   API): the file system layout, masks and read-only binds stay as built;
//! - the kernel itself (`kexec_*`, module loading, `reboot`, `swapon`/`swapoff`,
//!   `acct`, `quotactl`, `syslog`): whole-host operations;
//! - large kernel attack surface (`bpf`, `perf_event_open`, `io_uring_*`,
//!   `userfaultfd`, `keyctl`/`add_key`/`request_key`): frequent sources of kernel
//!   exploits, and the key rings are shared by every process of a host uid;
//! - `ptrace`, `process_vm_writev`: tampering with other processes;
//! - `open_by_handle_at`, `name_to_handle_at`: opening files by handle bypasses the
//!   mount namespace (the "shocker" escape).

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

/// Errors building the filter (a bug in the lists below, never input).
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// This architecture has no seccomp support in the filter compiler
    #[error("no seccomp filter for architecture {0}")]
    Arch(&'static str),
    /// The filter compiler refused the rules
    #[error("building the seccomp filter: {0}")]
    Build(#[from] seccompiler::BackendError),
}

/// System calls denied with EPERM whatever their arguments.
pub const DENIED: [(&str, libc::c_long); 36] = [
    ("unshare", libc::SYS_unshare),
    ("setns", libc::SYS_setns),
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("chroot", libc::SYS_chroot),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("move_mount", libc::SYS_move_mount),
    ("open_tree", libc::SYS_open_tree),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("reboot", libc::SYS_reboot),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("acct", libc::SYS_acct),
    ("quotactl", libc::SYS_quotactl),
    ("syslog", libc::SYS_syslog),
    ("bpf", libc::SYS_bpf),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    ("keyctl", libc::SYS_keyctl),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
];

/// Also denied: `name_to_handle_at` (kept apart so [`DENIED`] reads as the list in
/// the docs; it only makes the handles `open_by_handle_at` would use).
const ALSO_DENIED: [libc::c_long; 1] = [libc::SYS_name_to_handle_at];

/// The `clone` flags that create namespaces (CLONE_NEWTIME is not valid for clone).
pub const NAMESPACE_FLAGS: [u64; 7] = [
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
];

/// The runtime's filters, compiled before the fork: applied in the child with
/// [`apply`], which only makes system calls.
pub struct Filters {
    deny: BpfProgram,
    no_clone3: BpfProgram,
}

fn arch() -> Result<TargetArch, SeccompError> {
    TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|_| SeccompError::Arch(std::env::consts::ARCH))
}

impl Filters {
    /// Compiles the deny list and the clone3 filter.
    pub fn build() -> Result<Self, SeccompError> {
        let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
        for (_, nr) in DENIED {
            rules.insert(nr, Vec::new());
        }
        for nr in ALSO_DENIED {
            rules.insert(nr, Vec::new());
        }
        let clone_rules = NAMESPACE_FLAGS
            .iter()
            .map(|&flag| {
                SeccompRule::new(vec![SeccompCondition::new(
                    0,
                    SeccompCmpArgLen::Qword,
                    SeccompCmpOp::MaskedEq(flag),
                    flag,
                )?])
            })
            .collect::<Result<Vec<_>, _>>()?;
        rules.insert(libc::SYS_clone, clone_rules);
        let deny = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(libc::EPERM as u32),
            arch()?,
        )?;
        let mut clone3 = BTreeMap::new();
        clone3.insert(libc::SYS_clone3, Vec::new());
        let no_clone3 = SeccompFilter::new(
            clone3,
            SeccompAction::Allow,
            SeccompAction::Errno(libc::ENOSYS as u32),
            arch()?,
        )?;
        Ok(Self {
            deny: deny.try_into()?,
            no_clone3: no_clone3.try_into()?,
        })
    }

    /// Installs both filters on the calling thread (and everything it starts).
    /// Returns the errno on failure. Async-signal-safe: no allocation, only prctl.
    /// PR_SET_NO_NEW_PRIVS must already be set (or the caller hold CAP_SYS_ADMIN).
    pub fn apply(&self) -> Result<(), i32> {
        for prog in [&self.deny, &self.no_clone3] {
            let fprog = libc::sock_fprog {
                len: prog.len() as u16,
                filter: prog.as_ptr() as *mut libc::sock_filter,
            };
            // SAFETY: fprog points at a valid BPF program that outlives the call (the
            // kernel copies it); PR_SET_SECCOMP does not keep the pointer.
            let r = unsafe {
                libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER as libc::c_ulong,
                    &fprog as *const libc::sock_fprog as libc::c_ulong,
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                )
            };
            if r != 0 {
                // SAFETY: reading errno right after the failed call.
                return Err(unsafe { *libc::__errno_location() });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` in a forked child with the filters installed; returns its exit code.
    fn in_filtered_child(f: fn() -> i32) -> i32 {
        let filters = Filters::build().unwrap();
        // SAFETY: the child only makes system calls and exits.
        match unsafe { libc::fork() } {
            0 => {
                // SAFETY: plain prctl, then the filters, then `f`, then _exit.
                unsafe {
                    libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                    let code = match filters.apply() {
                        Ok(()) => f(),
                        Err(_) => 99,
                    };
                    libc::_exit(code)
                }
            }
            pid => {
                let mut status = 0;
                // SAFETY: waiting for our own child.
                unsafe { libc::waitpid(pid, &mut status, 0) };
                assert!(libc::WIFEXITED(status), "child died: {status:#x}");
                libc::WEXITSTATUS(status)
            }
        }
    }

    fn errno() -> i32 {
        // SAFETY: reading errno.
        unsafe { *libc::__errno_location() }
    }

    /// The filters compile for the architecture this test runs on (x86_64 natively,
    /// aarch64 under qemu-user in test-aarch64.sh, which cannot install them).
    #[test]
    fn the_filters_compile_for_this_architecture() {
        let filters = Filters::build().expect("build");
        // One check per syscall at least, plus the architecture check.
        assert!(filters.deny.len() > DENIED.len(), "{}", filters.deny.len());
        assert!(!filters.no_clone3.is_empty());
    }

    #[test]
    fn denied_calls_fail_with_eperm_and_clone3_with_enosys() {
        assert_eq!(
            in_filtered_child(|| {
                // SAFETY: raw system calls whose failure is the point.
                let r = unsafe { libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER) };
                if r != -1 || errno() != libc::EPERM {
                    return 1;
                }
                // SAFETY: as above; keyctl(KEYCTL_GET_KEYRING_ID, session, 0).
                let r = unsafe { libc::syscall(libc::SYS_keyctl, 0, -3, 0) };
                if r != -1 || errno() != libc::EPERM {
                    return 2;
                }
                // SAFETY: as above; a null clone_args is never read.
                let r = unsafe { libc::syscall(libc::SYS_clone3, 0, 0) };
                if r != -1 || errno() != libc::ENOSYS {
                    return 3;
                }
                0
            }),
            0
        );
    }

    #[test]
    fn clone_without_namespace_flags_and_ordinary_calls_still_work() {
        assert_eq!(
            in_filtered_child(|| {
                // SAFETY: a plain fork through clone(SIGCHLD); the child exits at once.
                let pid = unsafe {
                    libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_long, 0, 0, 0, 0)
                };
                if pid == 0 {
                    // SAFETY: child of the clone above.
                    unsafe { libc::_exit(0) }
                }
                if pid < 0 {
                    return 1;
                }
                let mut st = 0;
                // SAFETY: waiting for the child just made.
                unsafe { libc::waitpid(pid as i32, &mut st, 0) };
                // SAFETY: getpid cannot fail.
                if unsafe { libc::getpid() } <= 0 {
                    return 2;
                }
                // clone with CLONE_NEWUSER is refused.
                // SAFETY: as above; refused before anything is created.
                let r = unsafe {
                    libc::syscall(
                        libc::SYS_clone,
                        (libc::CLONE_NEWUSER | libc::SIGCHLD) as libc::c_long,
                        0,
                        0,
                        0,
                        0,
                    )
                };
                if r == 0 {
                    // SAFETY: only if the filter failed: leave at once.
                    unsafe { libc::_exit(9) }
                }
                if r != -1 || errno() != libc::EPERM {
                    return 3;
                }
                0
            }),
            0
        );
    }
}
