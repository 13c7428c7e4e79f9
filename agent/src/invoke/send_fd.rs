//! Sends a frame to flint-init with descriptors attached to its first byte
//! (SCM_RIGHTS): how the namespace sandbox's Configure carries its code mount (and
//! its layers' /opt mount).

use flint_proto::frame::{encode, FrameError};
use flint_proto::init::HostMessage;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::unix::OwnedWriteHalf;

/// Writes `msg` as one frame; the kernel delivers `fds` (in order) with the bytes of
/// the first `sendmsg`, the rest follows as plain stream data.
pub(super) async fn send_with_fds(
    writer: &mut OwnedWriteHalf,
    msg: &HostMessage,
    fds: &[BorrowedFd<'_>],
) -> Result<(), FrameError> {
    let buf = encode(msg)?;
    let fds: Vec<_> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let sock: &tokio::net::UnixStream = writer.as_ref();
    let sent = loop {
        sock.writable().await?;
        let r = sock.try_io(Interest::WRITABLE, || {
            sendmsg::<()>(
                sock.as_raw_fd(),
                &[IoSlice::new(&buf)],
                &[ControlMessage::ScmRights(&fds)],
                MsgFlags::MSG_NOSIGNAL,
                None,
            )
            .map_err(std::io::Error::from)
        });
        match r {
            Ok(n) => break n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e.into()),
        }
    };
    writer.write_all(&buf[sent..]).await?;
    writer.flush().await?;
    Ok(())
}
