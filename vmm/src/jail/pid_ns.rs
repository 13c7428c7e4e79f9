//! The jailed VMM's PID namespace (like Firecracker's jailer `--new-pid-ns`): the
//! process that was started forks into a new PID namespace, and the child, PID 1 there,
//! goes on to become the VMM. It sees no other process of the host (nor can signal or
//! ptrace one by number), and when it exits the kernel kills anything left in its
//! namespace.
//!
//! The parent stays what flintd started, so flintd keeps one process to signal, wait
//! for and read the exit status of: it does nothing but wait for the child and
//!
//! - forwards the signals the VMM waits for itself (those blocked when the jail was
//!   entered: SIGUSR1 with `--snapshot-to`), which a namespace's PID 1 receives from
//!   an ancestor namespace only because they are blocked;
//! - turns a terminating signal (SIGTERM, SIGINT, SIGHUP, SIGQUIT, an unblocked
//!   SIGUSR1), which PID 1 would ignore, into SIGKILL for the child, then dies of that
//!   signal itself once the child is gone, as an unjailed VMM would have;
//! - exits with the child's status (the exit summary on stdout is the child's, on the
//!   shared descriptor), or dies of the signal that killed it.
//!
//! SIGKILL cannot be forwarded: the child has `PR_SET_PDEATHSIG(SIGKILL)` and checks,
//! after setting it, that the parent did not already die (a pipe only the parent
//! holds open). The kernel clears a parent-death signal when the process's credentials
//! change, so the child arms it again, and checks the pipe again, right after dropping
//! its privileges ([`rearm_death_signal`]).
//!
//! The parent itself drops to the jail's user and group at once and confines itself to
//! the few system calls it makes ([`super::filters::Kind::Supervisor`]): it stays in
//! the host's namespaces, so it must be worth nothing to take over. Until the child has
//! dropped its own privileges the parent cannot signal it (EPERM); a terminating signal
//! then ends the parent at once, and the child's parent-death signal ends the VMM.

use super::{sys, JailError};
use std::io;
use std::sync::atomic::{AtomicI32, Ordering};

/// The child's read end of the pipe only the parent holds open (-1 outside a jail, and
/// once the death signal is armed for good).
static PARENT_ALIVE: AtomicI32 = AtomicI32::new(-1);

/// Signals the parent watches: the child's end, and what flintd or a terminal sends.
const WATCHED: [libc::c_int; 6] = [
    libc::SIGCHLD,
    libc::SIGUSR1,
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
];

fn last(what: &'static str) -> JailError {
    sys(what, "")(io::Error::last_os_error())
}

/// Forks into a new PID namespace. Returns in the child (PID 1 there); the parent
/// never returns: it drops to `uid`/`gid`, supervises the child and exits as it does.
/// Must run while the process has one thread.
pub fn enter(uid: u32, gid: u32) -> Result<(), JailError> {
    // SAFETY: unshare takes flags only. CLONE_NEWPID moves no existing process: the
    // next child is PID 1 of the new namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
        return Err(last("unshare(CLONE_NEWPID)"));
    }
    // SAFETY: sigset_t is plain data, filled in by sigemptyset/sigaddset/sigprocmask.
    let (watched, before) = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut before: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in WATCHED {
            libc::sigaddset(&mut set, s);
        }
        // Blocked before the fork, so nothing sent to the parent before it waits is lost.
        if libc::sigprocmask(libc::SIG_BLOCK, &set, &mut before) != 0 {
            return Err(last("sigprocmask"));
        }
        (set, before)
    };
    let mut alive = [0i32; 2];
    // SAFETY: `alive` has room for the two descriptors.
    if unsafe { libc::pipe2(alive.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(last("pipe2"));
    }
    // SAFETY: the process is single-threaded (the caller's contract), so the child may
    // go on running ordinary code.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(last("fork"));
    }
    if child == 0 {
        return in_child(alive, &before);
    }
    // SAFETY: the read end is the child's alone; the write end stays open until we exit.
    unsafe { libc::close(alive[0]) };
    if let Err(e) = confine_parent(uid, gid) {
        eprintln!("flint-vmm: cannot confine the jail's waiting process: {e}");
        // SAFETY: kill(2) of our own child (still root: we are too), then ending.
        unsafe {
            libc::kill(child, libc::SIGKILL);
            libc::_exit(crate::exit::EXIT_VMM_ERROR);
        }
    }
    supervise(child, &watched, &before)
}

/// The parent: no supplementary groups, the jail's ids (which clears every capability),
/// no new privileges, and the supervisor's seccomp filter.
fn confine_parent(uid: u32, gid: u32) -> Result<(), JailError> {
    // SAFETY: setgroups with a zero count reads no memory.
    if unsafe { libc::setgroups(0, std::ptr::null()) } != 0 {
        return Err(last("setgroups"));
    }
    // SAFETY: plain id arguments.
    if unsafe { libc::setresgid(gid, gid, gid) } != 0 {
        return Err(last("setresgid"));
    }
    // SAFETY: plain id arguments.
    if unsafe { libc::setresuid(uid, uid, uid) } != 0 {
        return Err(last("setresuid"));
    }
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(last("prctl(PR_SET_NO_NEW_PRIVS)"));
    }
    super::filters::install(super::filters::Kind::Supervisor)
}

/// In the child, right after it changed its ids (which cleared its parent-death
/// signal): arms `PR_SET_PDEATHSIG(SIGKILL)` again, then ends the process if the parent
/// died in between. Does nothing in a process that did not fork into a jail.
pub fn rearm_death_signal() -> Result<(), JailError> {
    let fd = PARENT_ALIVE.swap(-1, Ordering::SeqCst);
    if fd < 0 {
        return Ok(());
    }
    // SAFETY: PR_SET_PDEATHSIG takes integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } != 0 {
        return Err(last("prctl(PR_SET_PDEATHSIG)"));
    }
    exit_if_orphaned(fd);
    // SAFETY: `fd` was ours alone (swapped out above).
    unsafe { libc::close(fd) };
    Ok(())
}

/// Ends the process at once, as the death signal would have, when the parent's end of
/// the `alive` pipe is closed (the parent died before the death signal was armed).
fn exit_if_orphaned(fd: i32) {
    let mut fds = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd; a zero timeout only looks.
    let n = unsafe { libc::poll(&mut fds, 1, 0) };
    if n > 0 && fds.revents & libc::POLLHUP != 0 {
        // SAFETY: ending this process at once.
        unsafe { libc::_exit(crate::exit::EXIT_VMM_ERROR) };
    }
}

/// The child: dies with the parent, restores the signal mask it was started with.
fn in_child(alive: [i32; 2], before: &libc::sigset_t) -> Result<(), JailError> {
    // SAFETY: closing our copy of the write end, which only the parent must hold.
    unsafe { libc::close(alive[1]) };
    // SAFETY: PR_SET_PDEATHSIG takes integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } != 0 {
        return Err(last("prctl(PR_SET_PDEATHSIG)"));
    }
    exit_if_orphaned(alive[0]);
    // Kept (close-on-exec) for the check after the privileges are dropped.
    PARENT_ALIVE.store(alive[0], Ordering::SeqCst);
    // SAFETY: `before` is the mask saved by sigprocmask.
    if unsafe { libc::sigprocmask(libc::SIG_SETMASK, before, std::ptr::null_mut()) } != 0 {
        return Err(last("sigprocmask"));
    }
    Ok(())
}

/// The parent: waits for `child`, forwarding signals; exits as the child did.
fn supervise(child: libc::pid_t, watched: &libc::sigset_t, before: &libc::sigset_t) -> ! {
    let mut dying_of: Option<libc::c_int> = None;
    loop {
        // SAFETY: `watched` is a valid set; no siginfo wanted.
        let sig = unsafe { libc::sigwaitinfo(watched, std::ptr::null_mut()) };
        if sig < 0 {
            continue; // EINTR
        }
        if sig == libc::SIGCHLD {
            let mut status = 0;
            // SAFETY: our only child; `status` is a valid int.
            let got = unsafe { libc::waitpid(child, &mut status, libc::WNOHANG) };
            if got == child {
                finish(status, dying_of);
            }
            continue;
        }
        // SAFETY: `before` is a valid set.
        let held_by_the_vmm = unsafe { libc::sigismember(before, sig) } == 1;
        if held_by_the_vmm {
            // SAFETY: kill(2) of our own child, not reaped yet. Before the child has
            // dropped its privileges this fails (EPERM) and the signal is lost, as one
            // sent before the VMM waits for it would be.
            unsafe { libc::kill(child, sig) };
        } else {
            dying_of.get_or_insert(sig);
            // SAFETY: as above.
            if unsafe { libc::kill(child, libc::SIGKILL) } != 0 {
                // The child is still root: end now; its death signal ends it.
                finish(0, dying_of);
            }
        }
    }
}

/// Ends the parent as the child ended, or of the signal it was asked to die of.
fn finish(status: libc::c_int, dying_of: Option<libc::c_int>) -> ! {
    let signal = if libc::WIFSIGNALED(status) {
        Some(dying_of.unwrap_or(libc::WTERMSIG(status)))
    } else {
        dying_of
    };
    if let Some(sig) = signal {
        // SAFETY: restoring the default action and unblocking `sig` so that raising it
        // ends this process as it ended (or would have ended) the VMM.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, sig);
            libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::raise(sig);
            libc::_exit(128 + sig);
        }
    }
    // SAFETY: ends the process without running the child's destructors or flushing
    // buffers the child owns.
    unsafe { libc::_exit(libc::WEXITSTATUS(status)) }
}
