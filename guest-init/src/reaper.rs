//! The reaper: as PID 1, init adopts every orphan in the sandbox; one thread waits for
//! all children forever and tells the shared state when the runtime itself exits.

use crate::state::Shared;
use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// How long to sleep when there is no child at all.
const IDLE: Duration = Duration::from_millis(20);

/// Starts the reaper thread.
pub fn spawn(shared: Arc<Shared>) -> std::io::Result<()> {
    thread::Builder::new()
        .name("reaper".into())
        .spawn(move || reap_forever(&shared))?;
    Ok(())
}

fn reap_forever(shared: &Shared) {
    loop {
        match waitpid(Pid::from_raw(-1), None) {
            Ok(WaitStatus::Exited(pid, code)) => shared.child_exited(pid.as_raw(), code, 0),
            Ok(WaitStatus::Signaled(pid, sig, _)) => {
                shared.child_exited(pid.as_raw(), -1, sig as i32)
            }
            Ok(_) | Err(Errno::EINTR) => {}
            Err(Errno::ECHILD) => thread::sleep(IDLE),
            Err(e) => {
                eprintln!("flint-init: waitpid: {e}");
                thread::sleep(IDLE);
            }
        }
    }
}
