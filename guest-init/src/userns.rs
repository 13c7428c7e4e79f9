//! The sandbox's own user namespace: ids 0..65536 inside map to a host range of its
//! own (given by flintd), so no two sandboxes share a host uid, and with it the
//! per-user kernel state (key rings, RLIMIT_NPROC counts, inotify limits). The
//! launcher unshares the user namespace with the others; a helper it forked before
//! (still in the host's user namespace, where it may map any ids) writes the maps;
//! then the launcher becomes root of the new namespace (host uid BASE).

use nix::sched::{unshare, CloneFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Gid, Pid, Uid};
use std::os::fd::{AsRawFd, OwnedFd};

/// Ids in every sandbox's range.
pub const RANGE: u32 = 65_536;

/// Errors setting up the user namespace.
#[derive(Debug, thiserror::Error)]
pub enum UsernsError {
    /// A system call failed
    #[error("user namespace: {0}: {1}")]
    Sys(&'static str, nix::Error),
    /// The helper could not write the id maps
    #[error("user namespace: writing the uid/gid maps failed (helper exit {0:?})")]
    Map(WaitStatus),
}

fn sys(what: &'static str) -> impl FnOnce(nix::Error) -> UsernsError {
    move |e| UsernsError::Sys(what, e)
}

/// The contents of uid_map and gid_map for `base`.
pub fn map_line(base: u32) -> String {
    format!("0 {base} {RANGE}\n")
}

/// Unshares `flags` and a new user namespace whose ids 0..65536 are host ids
/// `base..base+65536`, then becomes its root. Must be called single-threaded.
pub fn unshare_mapped(flags: CloneFlags, base: u32) -> Result<(), UsernsError> {
    let (go_r, go_w) = nix::unistd::pipe().map_err(sys("pipe"))?;
    let me = Pid::this();
    // SAFETY: the launcher is single-threaded here; the helper only makes system
    // calls, writes two small files and exits.
    let helper = match unsafe { fork() }.map_err(sys("fork"))? {
        ForkResult::Child => {
            drop(go_w);
            let code = match helper(&go_r, me, base) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("flint-init: {e}");
                    1
                }
            };
            // SAFETY: leave the forked helper without running the parent's destructors.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => child,
    };
    drop(go_r);
    let unshared = unshare(flags | CloneFlags::CLONE_NEWUSER).map_err(sys("unshare"));
    // Tell the helper to go (or, on failure, to give up: closing the pipe).
    let woke = unshared.is_ok() && nix::unistd::write(&go_w, b"x") == Ok(1);
    drop(go_w);
    let status = waitpid(helper, None).map_err(sys("waitpid"))?;
    unshared?;
    if !woke || status != WaitStatus::Exited(helper, 0) {
        return Err(UsernsError::Map(status));
    }
    let root = Gid::from_raw(0);
    nix::unistd::setresgid(root, root, root).map_err(sys("setresgid"))?;
    let root = Uid::from_raw(0);
    nix::unistd::setresuid(root, root, root).map_err(sys("setresuid"))
}

/// The helper: waits for the launcher's go, then writes its maps.
fn helper(go: &OwnedFd, launcher: Pid, base: u32) -> Result<(), std::io::Error> {
    let mut b = [0u8; 1];
    if nix::unistd::read(go.as_raw_fd(), &mut b)? != 1 {
        return Err(std::io::Error::other("the launcher did not unshare"));
    }
    let line = map_line(base);
    for file in ["uid_map", "gid_map"] {
        std::fs::write(format!("/proc/{launcher}/{file}"), &line)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_the_whole_range_to_the_base() {
        assert_eq!(map_line(1 << 30), "0 1073741824 65536\n");
    }
}
