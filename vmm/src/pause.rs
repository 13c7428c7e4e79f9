//! Stopping vCPUs for a snapshot and the signals involved: a flag every vCPU thread checks
//! before KVM_RUN, a real-time "kick" signal (a no-op handler) that makes a thread's
//! KVM_RUN return EINTR, and SIGUSR1, which asks flint-vmm for a snapshot.

use std::sync::atomic::{AtomicBool, Ordering};

/// The signal that asks flint-vmm (run with `--snapshot-to`) for a snapshot.
pub const SNAPSHOT_SIGNAL: libc::c_int = libc::SIGUSR1;

/// Shared by the VMM and its vCPU threads.
#[derive(Debug, Default)]
pub struct PauseControl {
    requested: AtomicBool,
}

impl PauseControl {
    /// Asks every vCPU thread to pause at its next look.
    pub fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
    }

    /// Whether a pause was asked for.
    pub fn requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }
}

/// The kick signal: the second real-time signal.
pub fn kick_signal() -> libc::c_int {
    libc::SIGRTMIN() + 1
}

extern "C" fn on_kick(_signal: libc::c_int) {}

/// Installs the kick signal's no-op handler (without SA_RESTART, so KVM_RUN returns
/// EINTR).
pub fn install_kick_handler() -> std::io::Result<()> {
    // SAFETY: a zeroed sigaction is valid; the handler is an async-signal-safe no-op and
    // the struct outlives the call.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_kick as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(kick_signal(), &action, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Sends the kick signal to `thread`.
pub fn kick(thread: libc::pthread_t) -> std::io::Result<()> {
    // SAFETY: `thread` is a thread of this process that has not been joined (vCPU threads
    // never are), and the kick signal has a handler.
    let rc = unsafe { libc::pthread_kill(thread, kick_signal()) };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

fn snapshot_sigset() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set; sigaddset adds a valid signal number.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, SNAPSHOT_SIGNAL);
        set
    }
}

/// Blocks the snapshot signal in the calling thread and every thread it starts later, so
/// only [`wait_snapshot_signal`] receives it.
pub fn block_snapshot_signal() -> std::io::Result<()> {
    let set = snapshot_sigset();
    // SAFETY: `set` is initialised; the old mask is not needed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Waits for the (blocked) snapshot signal.
pub fn wait_snapshot_signal() -> std::io::Result<()> {
    let set = snapshot_sigset();
    let mut got: libc::c_int = 0;
    // SAFETY: `set` is initialised and `got` is a valid out pointer.
    let rc = unsafe { libc::sigwait(&set, &mut got) };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc));
    }
    Ok(())
}
