//! Brings the loopback interface up (the Runtime API listens on 127.0.0.1).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Errors configuring the loopback interface.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Creating the control socket failed
    #[error("socket for interface control: {0}")]
    Socket(nix::Error),
    /// Reading or writing the interface flags failed
    #[error("{0} on lo: {1}")]
    Ioctl(&'static str, nix::Error),
}

/// Sets IFF_UP on `lo` in the current network namespace.
pub fn loopback_up() -> Result<(), NetError> {
    // SAFETY: plain socket(2) call; the result is checked and owned immediately.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(NetError::Socket(nix::Error::last()));
    }
    // SAFETY: `fd` is a new descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads into the ifreq we own.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) } < 0 {
        return Err(NetError::Ioctl("SIOCGIFFLAGS", nix::Error::last()));
    }
    // SAFETY: after SIOCGIFFLAGS the union holds the flags.
    if unsafe { ifr.ifr_ifru.ifru_flags } & libc::IFF_UP as libc::c_short != 0 {
        // Already up: a namespace flintd made (and only flintd may change).
        return Ok(());
    }
    // SAFETY: after SIOCGIFFLAGS the union holds the flags.
    unsafe { ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads the ifreq we own.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) } < 0 {
        return Err(NetError::Ioctl("SIOCSIFFLAGS", nix::Error::last()));
    }
    Ok(())
}
