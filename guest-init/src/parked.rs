//! `flint-init sandbox-parked`: a namespace sandbox launcher started ahead of need.
//! It joins the cgroups it is given (the first `cgroup.procs` write waits for the
//! kernel's RCU grace period: paid here, off any cold start's critical path), says so
//! with one byte on its control socket, and waits there for the sandbox it will run.
//!
//! The control socket is one end of a `SOCK_SEQPACKET` pair made by flintd:
//! - launcher to flintd: [`READY`] once the cgroups are joined;
//! - flintd to launcher: one message whose payload is the words of the `sandbox`
//!   subcommand (each ended by a NUL) without `--fd`, `--tmp-fd`, `--netns-fd` and
//!   `--cgroup`, and whose `SCM_RIGHTS` carry the flint-init stream, the /tmp file
//!   system and, for an outbound function, the network namespace, in that order.
//!
//! flintd writes the sandbox's limits into the cgroup before it sends the message;
//! the launcher then unshares and forks as [`launcher::run`] always does, and the
//! child (the sandbox's PID 1) inherits the cgroup by fork. End of file on the
//! socket (flintd discarded the launcher, or is gone) ends the launcher quietly.

use crate::args::{self, ArgsError, ParkedArgs};
use crate::launcher::{self, LaunchError, SandboxArgs};
use nix::sys::socket::{recvmsg, send, ControlMessageOwned, MsgFlags};
use std::io::IoSliceMut;
use std::os::fd::RawFd;
use std::path::PathBuf;

/// The byte a parked launcher sends once it is in its cgroups.
pub const READY: u8 = b'R';
/// The largest argument message accepted.
const MAX_MESSAGE: usize = 64 * 1024;

/// Errors of a parked launcher.
#[derive(Debug, thiserror::Error)]
pub enum ParkedError {
    /// Joining a cgroup failed
    #[error("joining cgroup {0}: {1}")]
    Cgroup(PathBuf, std::io::Error),
    /// The control socket failed
    #[error("control socket: {0}")]
    Control(nix::Error),
    /// The argument message is not what flintd sends
    #[error("bad sandbox message from flintd: {0}")]
    Message(String),
    /// The sandbox arguments in the message are invalid
    #[error("sandbox arguments: {0}")]
    Args(#[from] ArgsError),
    /// Running the sandbox failed
    #[error(transparent)]
    Launch(#[from] LaunchError),
}

/// Runs a parked launcher; returns the exit code for the process.
pub fn run(p: &ParkedArgs) -> Result<i32, ParkedError> {
    let pid = std::process::id().to_string();
    for cg in &p.cgroups {
        std::fs::write(cg, &pid).map_err(|e| ParkedError::Cgroup(cg.clone(), e))?;
    }
    send(p.control_fd, &[READY], MsgFlags::empty()).map_err(ParkedError::Control)?;
    let Some(args) = receive(p.control_fd)? else {
        return Ok(0);
    };
    let _ = nix::unistd::close(p.control_fd);
    Ok(launcher::run(&args)?)
}

/// Waits for the sandbox message; `None` at end of file.
fn receive(fd: RawFd) -> Result<Option<SandboxArgs>, ParkedError> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut space = nix::cmsg_space!([RawFd; 3]);
    let (len, fds) = loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        match recvmsg::<()>(fd, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC) {
            Ok(msg) => {
                if msg
                    .flags
                    .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC)
                {
                    return Err(ParkedError::Message("truncated".into()));
                }
                let mut fds = Vec::new();
                for c in msg.cmsgs().map_err(ParkedError::Control)? {
                    if let ControlMessageOwned::ScmRights(r) = c {
                        fds.extend(r);
                    }
                }
                break (msg.bytes, fds);
            }
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(ParkedError::Control(e)),
        }
    };
    if len == 0 && fds.is_empty() {
        return Ok(None);
    }
    let words = words(&buf[..len])?;
    Ok(Some(sandbox_args(words, &fds)?))
}

/// The NUL-ended words of a message.
fn words(payload: &[u8]) -> Result<Vec<String>, ParkedError> {
    let Some(body) = payload.strip_suffix(&[0]) else {
        return Err(ParkedError::Message(
            "the last word is not NUL-ended".into(),
        ));
    };
    body.split(|b| *b == 0)
        .map(|w| {
            String::from_utf8(w.to_vec())
                .map_err(|_| ParkedError::Message("a word is not UTF-8".into()))
        })
        .collect()
}

/// The `sandbox` arguments from the message's words and descriptors (stream, /tmp,
/// network namespace if any).
fn sandbox_args(mut words: Vec<String>, fds: &[RawFd]) -> Result<SandboxArgs, ParkedError> {
    for w in &words {
        if matches!(w.as_str(), "--fd" | "--tmp-fd" | "--netns-fd" | "--cgroup") {
            return Err(ParkedError::Message(format!(
                "{w} is not for a parked launcher"
            )));
        }
    }
    let names = ["--fd", "--tmp-fd", "--netns-fd"];
    if !(2..=3).contains(&fds.len()) {
        return Err(ParkedError::Message(format!(
            "{} descriptors, expected 2 or 3",
            fds.len()
        )));
    }
    for (name, fd) in names.iter().zip(fds) {
        words.push((*name).to_string());
        words.push(fd.to_string());
    }
    let parsed = args::parse_sandbox(&words)?;
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_words_and_descriptors_make_the_sandbox_arguments() {
        let w = words(b"--rootfs\0/r\0--resolv-conf\0/etc/r\0").unwrap();
        let a = sandbox_args(w, &[7, 8, 9]).unwrap();
        assert_eq!(a.rootfs, PathBuf::from("/r"));
        assert_eq!((a.fd, a.tmp_fd), (7, Some(8)));
        assert_eq!(a.net.as_ref().map(|n| n.fd), Some(9));
        assert!(a.cgroups.is_empty());
        let a = sandbox_args(words(b"--rootfs\0/r\0").unwrap(), &[7, 8]).unwrap();
        assert_eq!(a.net, None);
    }

    #[test]
    fn bad_messages_are_refused() {
        assert!(words(b"--rootfs\0/r").is_err(), "no final NUL");
        for bad in [
            &b"--rootfs\0/r\0--cgroup\0/x\0"[..],
            b"--rootfs\0/r\0--fd\x003\0",
        ] {
            assert!(sandbox_args(words(bad).unwrap(), &[7, 8]).is_err());
        }
        assert!(sandbox_args(words(b"--rootfs\0/r\0").unwrap(), &[7]).is_err());
        // A network namespace without its resolv.conf: the usual pair check.
        assert!(sandbox_args(words(b"--rootfs\0/r\0").unwrap(), &[7, 8, 9]).is_err());
    }
}
