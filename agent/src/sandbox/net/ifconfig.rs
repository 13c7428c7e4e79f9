//! Interface set-up by ioctl in the calling thread's network namespace: an IPv4
//! address with its netmask, IFF_UP, a default route. No tool is started, so a
//! sandbox's side costs a few system calls.

use super::NetError;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

fn socket() -> Result<OwnedFd, NetError> {
    // SAFETY: plain socket(2); the result is checked and owned immediately.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(NetError::Sys("socket", std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` is a new descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name.bytes().take(15)) {
        *dst = src as libc::c_char;
    }
    ifr
}

fn sockaddr(a: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(a).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size; any bytes are valid.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

fn ioctl(
    sock: &OwnedFd,
    req: libc::c_ulong,
    ifr: &mut libc::ifreq,
    what: &'static str,
) -> Result<(), NetError> {
    // SAFETY: `req` is one of the SIOC*IF* requests, which read or write the ifreq we own.
    if unsafe { libc::ioctl(sock.as_raw_fd(), req, ifr as *mut libc::ifreq) } < 0 {
        return Err(NetError::Sys(what, std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Gives `name` the address `addr/prefix` and brings it up.
pub fn address_up(name: &str, addr: Ipv4Addr, prefix: u8) -> Result<(), NetError> {
    let sock = socket()?;
    let mut ifr = ifreq(name);
    ifr.ifr_ifru.ifru_addr = sockaddr(addr);
    ioctl(&sock, libc::SIOCSIFADDR, &mut ifr, "SIOCSIFADDR")?;
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    };
    let mut ifr = ifreq(name);
    ifr.ifr_ifru.ifru_netmask = sockaddr(Ipv4Addr::from(mask));
    ioctl(&sock, libc::SIOCSIFNETMASK, &mut ifr, "SIOCSIFNETMASK")?;
    up(&sock, name)
}

/// Brings `name` up (lo needs no address).
pub fn link_up(name: &str) -> Result<(), NetError> {
    up(&socket()?, name)
}

fn up(sock: &OwnedFd, name: &str) -> Result<(), NetError> {
    let mut ifr = ifreq(name);
    ioctl(sock, libc::SIOCGIFFLAGS, &mut ifr, "SIOCGIFFLAGS")?;
    // SAFETY: after SIOCGIFFLAGS the union holds the flags.
    unsafe { ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    ioctl(sock, libc::SIOCSIFFLAGS, &mut ifr, "SIOCSIFFLAGS")
}

/// Adds the default route through `gateway` on `dev`.
pub fn default_route(dev: &str, gateway: Ipv4Addr) -> Result<(), NetError> {
    let sock = socket()?;
    let mut name: Vec<u8> = dev.bytes().collect();
    name.push(0);
    // SAFETY: rtentry is plain old data; all-zero is a valid value.
    let mut rt: libc::rtentry = unsafe { std::mem::zeroed() };
    rt.rt_dst = sockaddr(Ipv4Addr::UNSPECIFIED);
    rt.rt_genmask = sockaddr(Ipv4Addr::UNSPECIFIED);
    rt.rt_gateway = sockaddr(gateway);
    rt.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
    rt.rt_dev = name.as_mut_ptr() as *mut libc::c_char;
    // SAFETY: SIOCADDRT reads the rtentry and the NUL-terminated device name, both
    // alive for the call.
    if unsafe {
        libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCADDRT,
            &rt as *const libc::rtentry,
        )
    } < 0
    {
        return Err(NetError::Sys("SIOCADDRT", std::io::Error::last_os_error()));
    }
    Ok(())
}
