//! The microVM's host stream: an AF_VSOCK stream to the host (CID 2), port from the
//! kernel command line (`flint.vsock_port=N`, default 1024).

use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, VsockAddr};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::thread;
use std::time::Duration;

/// The host's context id.
pub const HOST_CID: u32 = 2;
/// Port used when the command line does not name one.
pub const DEFAULT_PORT: u32 = 1024;
/// Kernel command line key for the port.
const PORT_KEY: &str = "flint.vsock_port=";

/// Errors connecting to the host.
#[derive(Debug, thiserror::Error)]
pub enum VsockError {
    /// Creating the socket failed
    #[error("creating an AF_VSOCK socket: {0}")]
    Socket(nix::Error),
    /// Every connection attempt failed
    #[error(
        "connecting to vsock CID {HOST_CID} port {port} failed {attempts} times, last: {last}"
    )]
    Connect {
        /// The port.
        port: u32,
        /// Attempts made.
        attempts: u32,
        /// The last error.
        last: nix::Error,
    },
}

/// The port named by `flint.vsock_port=N` in `cmdline` (the last one wins), else the
/// default; malformed values are ignored.
pub fn port_from_cmdline(cmdline: &str) -> u32 {
    cmdline
        .split_ascii_whitespace()
        .filter_map(|w| w.strip_prefix(PORT_KEY))
        .filter_map(|v| v.parse().ok())
        .next_back()
        .unwrap_or(DEFAULT_PORT)
}

/// Connects to the host, trying `attempts` times `delay` apart.
pub fn connect_host(port: u32, attempts: u32, delay: Duration) -> Result<File, VsockError> {
    let addr = VsockAddr::new(HOST_CID, port);
    let mut last = nix::Error::EINVAL;
    for i in 0..attempts.max(1) {
        if i > 0 {
            thread::sleep(delay);
        }
        let fd = socket(
            AddressFamily::Vsock,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(VsockError::Socket)?;
        match connect(fd.as_raw_fd(), &addr) {
            Ok(()) => return Ok(File::from(fd)),
            Err(e) => last = e,
        }
    }
    Err(VsockError::Connect {
        port,
        attempts,
        last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_comes_from_the_command_line() {
        assert_eq!(
            port_from_cmdline("console=ttyS0 root=/dev/vda"),
            DEFAULT_PORT
        );
        assert_eq!(port_from_cmdline("a flint.vsock_port=5000 b\n"), 5000);
        assert_eq!(port_from_cmdline("flint.vsock_port=x"), DEFAULT_PORT);
        assert_eq!(
            port_from_cmdline("flint.vsock_port=1 flint.vsock_port=2"),
            2
        );
        assert_eq!(port_from_cmdline("xflint.vsock_port=9"), DEFAULT_PORT);
    }
}
