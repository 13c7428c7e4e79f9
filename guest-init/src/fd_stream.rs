//! The host stream read with `recvmsg`, so descriptors flintd sends along with a
//! frame (SCM_RIGHTS; the namespace sandbox's code mount with Configure) are kept
//! instead of being dropped by a plain `read`. On a stream that is not a Unix socket
//! (vsock in the microVM, a pipe in tests) it reads as before.

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{IoSliceMut, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Most descriptors accepted with one message.
const MAX_FDS: usize = 4;

/// Reads the host stream and keeps the descriptors that came with it, in order.
pub struct FdStream {
    file: File,
    fds: VecDeque<OwnedFd>,
    plain: bool,
}

impl FdStream {
    /// Wraps the host stream.
    pub fn new(file: File) -> Self {
        Self {
            file,
            fds: VecDeque::new(),
            plain: false,
        }
    }

    /// The oldest descriptor received and not taken yet.
    pub fn take_fd(&mut self) -> Option<OwnedFd> {
        self.fds.pop_front()
    }
}

impl Read for FdStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.plain {
            return self.file.read(buf);
        }
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; MAX_FDS]);
        let mut iov = [IoSliceMut::new(buf)];
        let msg = match recvmsg::<()>(
            self.file.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(m) => m,
            Err(nix::Error::ENOTSOCK) => {
                self.plain = true;
                return self.file.read(buf);
            }
            Err(e) => return Err(e.into()),
        };
        let n = msg.bytes;
        for c in msg.cmsgs().map_err(std::io::Error::from)? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for fd in fds {
                    // SAFETY: the kernel just installed this descriptor for us.
                    self.fds.push_back(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{sendmsg, ControlMessage};
    use std::io::IoSlice;
    use std::os::unix::net::UnixStream;

    #[test]
    fn keeps_a_descriptor_sent_with_the_data() {
        let (a, b) = UnixStream::pair().unwrap();
        let passed = File::open("/dev/null").unwrap();
        let fds = [passed.as_raw_fd()];
        sendmsg::<()>(
            a.as_raw_fd(),
            &[IoSlice::new(b"hello")],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        let mut s = FdStream::new(File::from(OwnedFd::from(b)));
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        assert!(s.take_fd().is_some());
        assert!(s.take_fd().is_none());
    }

    #[test]
    fn reads_a_pipe_as_before() {
        let (r, w) = nix::unistd::pipe().unwrap();
        nix::unistd::write(&w, b"abc").unwrap();
        let mut s = FdStream::new(File::from(r));
        let mut buf = [0u8; 3];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"abc");
    }
}
