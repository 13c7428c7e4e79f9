//! Forwards the runtime's stdout and stderr (one pipe) to the host as Log frames,
//! tagged with the invocation in flight when the bytes arrived.
//!
//! Ordering: a runtime prints, then posts its result. So that an invocation's output
//! always reaches the host before its result, [`LogPipe::drain`] is called just
//! before a result (or the runtime's exit) is reported: it forwards whatever the
//! pipe still holds. The forwarder thread and `drain` take turns through a gate, so
//! no bytes are reordered.

use crate::host_link::HostLink;
use flint_proto::init::{guest_message::Msg, Log};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::thread;

/// Largest Log frame payload.
const CHUNK: usize = 64 * 1024;

/// The read end of the runtime's output pipe.
pub struct LogPipe {
    gate: Mutex<Gate>,
}

/// The pipe and the one buffer every pass reads into: allocated once, not per pass (a
/// drain runs before every result, and a zeroed 64 KiB allocation there cost the
/// sandbox's CPU share on every invocation).
struct Gate {
    pipe: File,
    buf: Box<[u8]>,
}

/// What one non-blocking read pass found.
enum Pass {
    /// Read everything available.
    Drained,
    /// Every writer closed the pipe.
    Eof,
}

impl LogPipe {
    /// Wraps the read end (made non-blocking).
    pub fn new(read_end: OwnedFd) -> std::io::Result<Arc<Self>> {
        let flags = nix::fcntl::fcntl(read_end.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL)?;
        let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(read_end.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(flags))?;
        Ok(Arc::new(LogPipe {
            gate: Mutex::new(Gate {
                pipe: File::from(read_end),
                buf: vec![0u8; CHUNK].into_boxed_slice(),
            }),
        }))
    }

    /// Forwards everything the pipe holds now, tagged with `request_id`.
    pub fn drain(&self, link: &HostLink, request_id: &str) {
        let _ = self.pass(link, request_id);
    }

    fn pass(&self, link: &HostLink, request_id: &str) -> Pass {
        let mut gate = self.gate.lock().unwrap_or_else(|e| e.into_inner());
        let Gate { pipe, buf } = &mut *gate;
        loop {
            match pipe.read(buf) {
                Ok(0) => return Pass::Eof,
                Ok(n) => link.report(Msg::Log(Log {
                    request_id: request_id.to_string(),
                    data: buf[..n].to_vec(),
                })),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Pass::Drained,
                Err(e) => {
                    eprintln!("flint-init: reading runtime output: {e}");
                    return Pass::Eof;
                }
            }
        }
    }

    fn wait_readable(&self) -> bool {
        let gate = self.gate.lock().unwrap_or_else(|e| e.into_inner());
        let fd = match gate.pipe.try_clone() {
            Ok(f) => f,
            Err(_) => return false,
        };
        drop(gate);
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        loop {
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => return true,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return false,
            }
        }
    }
}

/// Where the forwarder sends output: the host link, tagged with the invocation in
/// flight. Init's shared state implements it; this module does not know that state.
pub trait Sink: Send + Sync + 'static {
    /// The host stream.
    fn link(&self) -> &HostLink;
    /// Request id of the invocation in flight (empty between invocations).
    fn current_request_id(&self) -> String;
}

/// Starts the forwarder thread; it ends when every writer has closed the pipe.
pub fn spawn<S: Sink>(pipe: Arc<LogPipe>, shared: Arc<S>) -> std::io::Result<()> {
    thread::Builder::new()
        .name("log-forwarder".into())
        .spawn(move || loop {
            if !pipe.wait_readable() {
                return;
            }
            // Read the id before taking the gate: `drain` callers hold the state
            // lock and then take the gate, so the opposite order would deadlock.
            let request_id = shared.current_request_id();
            if let Pass::Eof = pipe.pass(shared.link(), &request_id) {
                return;
            }
        })?;
    Ok(())
}
