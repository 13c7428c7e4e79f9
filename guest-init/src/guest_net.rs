//! eth0 of a microVM guest with outbound networking. flintd puts the guest's address,
//! gateway and name servers on the kernel command line in the kernel's own form
//! (`ip=<client>::<gateway>:<netmask>::<device>:off[:<dns0>[:<dns1>]]`), so the kernel's
//! IP autoconfiguration (CONFIG_IP_PNP) has normally configured the interface and the
//! default route before init runs. [`configure`] checks that and does by ioctl whatever
//! is missing; [`install_resolv_conf`] gives the read-only root an /etc/resolv.conf.

use nix::mount::{mount, MsFlags};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Errors setting up the guest's network.
#[derive(Debug, thiserror::Error)]
pub enum GuestNetError {
    /// The `ip=` parameter is not the static form flintd writes
    #[error("kernel parameter {0:?}: expected ip=<address>::<gateway>:<netmask>::<device>:off[:<dns0>[:<dns1>]]")]
    BadParam(String),
    /// The interface does not exist
    #[error("no interface {0}: was virtio-net probed? (guest kernel needs CONFIG_VIRTIO_NET, flint-vmm --net-tap)")]
    NoDevice(String),
    /// An interface or route ioctl failed
    #[error("{0} on {1}: {2}")]
    Ioctl(&'static str, String, std::io::Error),
    /// Writing or mounting resolv.conf failed
    #[error("{0} {1}: {2}")]
    Resolv(&'static str, PathBuf, std::io::Error),
}

/// The static configuration of one interface, from the kernel command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpConfig {
    pub address: Ipv4Addr,
    pub gateway: Option<Ipv4Addr>,
    pub netmask: Ipv4Addr,
    pub device: String,
    pub dns: Vec<Ipv4Addr>,
}

impl IpConfig {
    /// The `ip=` parameter of `cmdline` (None when there is none, or it asks for
    /// `ip=off`/`ip=none`, which flintd never writes).
    pub fn from_cmdline(cmdline: &str) -> Result<Option<Self>, GuestNetError> {
        let Some(value) = cmdline
            .split_whitespace()
            .take_while(|w| *w != "--")
            .filter_map(|w| w.strip_prefix("ip="))
            .last()
        else {
            return Ok(None);
        };
        if matches!(value, "off" | "none" | "") {
            return Ok(None);
        }
        let bad = || GuestNetError::BadParam(format!("ip={value}"));
        let f: Vec<&str> = value.split(':').collect();
        let at = |i: usize| f.get(i).copied().unwrap_or("");
        let addr = |s: &str| s.parse::<Ipv4Addr>().map_err(|_| bad());
        let opt = |s: &str| {
            if s.is_empty() {
                Ok(None)
            } else {
                addr(s).map(Some)
            }
        };
        if at(6) != "off" && at(6) != "none" {
            return Err(bad());
        }
        let device = at(5).to_string();
        if device.is_empty() || device.len() >= libc::IFNAMSIZ {
            return Err(bad());
        }
        let dns = [opt(at(7))?, opt(at(8))?].into_iter().flatten().collect();
        Ok(Some(Self {
            address: addr(at(0))?,
            gateway: opt(at(2))?,
            netmask: addr(at(3))?,
            device,
            dns,
        }))
    }

    /// The resolv.conf for these name servers.
    pub fn resolv_conf(&self) -> String {
        self.dns
            .iter()
            .map(|a| format!("nameserver {a}\n"))
            .collect()
    }
}

/// What [`configure`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Configured {
    /// The address was already there (the kernel's `ip=` did it).
    pub address_was_set: bool,
    /// A default route was already there.
    pub route_was_set: bool,
}

/// Makes the interface match `cfg` in the calling thread's network namespace: address
/// and netmask, up, default route through the gateway. Leaves alone what is right.
pub fn configure(cfg: &IpConfig) -> Result<Configured, GuestNetError> {
    let sock = socket(&cfg.device)?;
    let dev = &cfg.device;
    let mut ifr = ifreq(dev);
    if let Err(e) = ioctl(&sock, libc::SIOCGIFFLAGS, &mut ifr, "SIOCGIFFLAGS", dev) {
        return Err(match e {
            GuestNetError::Ioctl(_, _, ref io) if io.raw_os_error() == Some(libc::ENODEV) => {
                GuestNetError::NoDevice(dev.clone())
            }
            e => e,
        });
    }
    let mut cur = ifreq(dev);
    let address_was_set = match ioctl(&sock, libc::SIOCGIFADDR, &mut cur, "SIOCGIFADDR", dev) {
        // SAFETY: after SIOCGIFADDR the union holds an AF_INET sockaddr.
        Ok(()) => from_sockaddr(unsafe { &cur.ifr_ifru.ifru_addr }) == Some(cfg.address),
        Err(GuestNetError::Ioctl(_, _, io)) if io.raw_os_error() == Some(libc::EADDRNOTAVAIL) => {
            false
        }
        Err(e) => return Err(e),
    };
    if !address_was_set {
        let mut r = ifreq(dev);
        r.ifr_ifru.ifru_addr = sockaddr(cfg.address);
        ioctl(&sock, libc::SIOCSIFADDR, &mut r, "SIOCSIFADDR", dev)?;
        let mut r = ifreq(dev);
        r.ifr_ifru.ifru_netmask = sockaddr(cfg.netmask);
        ioctl(&sock, libc::SIOCSIFNETMASK, &mut r, "SIOCSIFNETMASK", dev)?;
    }
    let mut r = ifreq(dev);
    ioctl(&sock, libc::SIOCGIFFLAGS, &mut r, "SIOCGIFFLAGS", dev)?;
    // SAFETY: after SIOCGIFFLAGS the union holds the flags.
    let flags = unsafe { r.ifr_ifru.ifru_flags };
    if flags & libc::IFF_UP as libc::c_short == 0 {
        r.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
        ioctl(&sock, libc::SIOCSIFFLAGS, &mut r, "SIOCSIFFLAGS", dev)?;
    }
    let route_was_set = has_default_route(dev);
    if let (false, Some(gw)) = (route_was_set, cfg.gateway) {
        add_default_route(&sock, dev, gw)?;
    }
    Ok(Configured {
        address_was_set,
        route_was_set,
    })
}

/// The guest's whole set-up from its kernel command line: eth0 as `ip=` says, and
/// /etc/resolv.conf (a tmpfs on /run holds it) when name servers are given. None when
/// the VM has no network.
pub fn setup_from_cmdline(cmdline: &str) -> Result<Option<(IpConfig, Configured)>, GuestNetError> {
    let Some(cfg) = IpConfig::from_cmdline(cmdline)? else {
        return Ok(None);
    };
    let done = configure(&cfg)?;
    if !cfg.dns.is_empty() {
        install_resolv_conf(
            &cfg.resolv_conf(),
            Path::new("/run"),
            Path::new("/etc/resolv.conf"),
        )?;
    }
    Ok(Some((cfg, done)))
}

/// True when /proc/net/route (of the caller's namespace) has a default route on `dev`.
fn has_default_route(dev: &str) -> bool {
    std::fs::read_to_string("/proc/thread-self/net/route")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 7 && f[0] == dev && f[1] == "00000000" && f[7] == "00000000"
        })
}

/// Writes `text` to `<run>/resolv.conf` on a new small tmpfs at `run`, and bind-mounts
/// it over `etc_resolv` (which must exist: the images have one).
pub fn install_resolv_conf(text: &str, run: &Path, etc_resolv: &Path) -> Result<(), GuestNetError> {
    mount(
        Some("tmpfs"),
        run,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("size=64k,mode=0755"),
    )
    .map_err(|e| GuestNetError::Resolv("mounting a tmpfs on", run.to_path_buf(), e.into()))?;
    let file = run.join("resolv.conf");
    std::fs::write(&file, text).map_err(|e| GuestNetError::Resolv("writing", file.clone(), e))?;
    mount(
        Some(&file),
        etc_resolv,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| {
        GuestNetError::Resolv(
            "bind-mounting resolv.conf on",
            etc_resolv.to_path_buf(),
            e.into(),
        )
    })
}

fn socket(dev: &str) -> Result<OwnedFd, GuestNetError> {
    // SAFETY: plain socket(2); the result is checked and owned immediately.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(GuestNetError::Ioctl(
            "socket",
            dev.to_string(),
            std::io::Error::last_os_error(),
        ));
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

fn from_sockaddr(sa: &libc::sockaddr) -> Option<Ipv4Addr> {
    if i32::from(sa.sa_family) != libc::AF_INET {
        return None;
    }
    // SAFETY: an AF_INET sockaddr is a sockaddr_in; both have the same size.
    let sin = unsafe { std::mem::transmute::<libc::sockaddr, libc::sockaddr_in>(*sa) };
    Some(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
}

fn ioctl(
    sock: &OwnedFd,
    req: libc::c_ulong,
    ifr: &mut libc::ifreq,
    what: &'static str,
    dev: &str,
) -> Result<(), GuestNetError> {
    // SAFETY: `req` is one of the SIOC*IF* requests, which read or write the ifreq we own.
    if unsafe { libc::ioctl(sock.as_raw_fd(), req, ifr as *mut libc::ifreq) } < 0 {
        return Err(GuestNetError::Ioctl(
            what,
            dev.to_string(),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

fn add_default_route(sock: &OwnedFd, dev: &str, gateway: Ipv4Addr) -> Result<(), GuestNetError> {
    let mut name: Vec<u8> = dev.bytes().collect();
    name.push(0);
    // SAFETY: rtentry is plain old data; all-zero is a valid value.
    let mut rt: libc::rtentry = unsafe { std::mem::zeroed() };
    rt.rt_dst = sockaddr(Ipv4Addr::UNSPECIFIED);
    rt.rt_genmask = sockaddr(Ipv4Addr::UNSPECIFIED);
    rt.rt_gateway = sockaddr(gateway);
    rt.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
    rt.rt_dev = name.as_mut_ptr().cast::<libc::c_char>();
    // SAFETY: SIOCADDRT reads the rtentry and the NUL-terminated device name, both alive
    // for the call.
    let rc = unsafe {
        libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCADDRT,
            &rt as *const libc::rtentry,
        )
    };
    if rc < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EEXIST) {
            return Err(GuestNetError::Ioctl("SIOCADDRT", dev.to_string(), e));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    const FLINTD_PARAM: &str = "console=ttyS0 init=/sbin/init \
        ip=100.96.0.3::100.96.0.2:255.255.255.254::eth0:off:10.0.0.2:9.9.9.9 -- ip=ignored";

    #[test]
    fn parses_what_flintd_writes() {
        let c = IpConfig::from_cmdline(FLINTD_PARAM).unwrap().unwrap();
        assert_eq!(
            c,
            IpConfig {
                address: Ipv4Addr::new(100, 96, 0, 3),
                gateway: Some(Ipv4Addr::new(100, 96, 0, 2)),
                netmask: Ipv4Addr::new(255, 255, 255, 254),
                device: "eth0".into(),
                dns: vec![Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(9, 9, 9, 9)],
            }
        );
        assert_eq!(c.resolv_conf(), "nameserver 10.0.0.2\nnameserver 9.9.9.9\n");
        assert_eq!(IpConfig::from_cmdline("console=ttyS0").unwrap(), None);
        assert_eq!(IpConfig::from_cmdline("ip=off").unwrap(), None);
        let short = IpConfig::from_cmdline("ip=10.1.1.2::10.1.1.1:255.255.255.0::eth0:off")
            .unwrap()
            .unwrap();
        assert!(short.dns.is_empty());
        for bad in [
            "ip=dhcp",
            "ip=10.1.1.2::10.1.1.1:255.255.255.0::eth0:dhcp",
            "ip=10.1.1.300::10.1.1.1:255.255.255.0::eth0:off",
            "ip=10.1.1.2::10.1.1.1:255.255.255.0:::off",
        ] {
            let e = IpConfig::from_cmdline(bad).unwrap_err();
            assert!(
                e.to_string().contains("expected ip=<address>"),
                "{bad}: {e}"
            );
        }
    }

    fn ip(args: &[&str]) -> String {
        let out = Command::new("ip").args(args).output().expect("ip");
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `eth0` as one end of a veth pair whose other end is up (the carrier a
    /// virtio-net link has), in the calling thread's network namespace.
    fn veth_eth0() {
        ip(&[
            "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
        ]);
        ip(&["link", "set", "eth0p", "up"]);
    }

    /// Runs `work` in a thread of its own network namespace (gone when it ends).
    fn in_private_netns(work: impl FnOnce() + Send + 'static) {
        std::thread::spawn(move || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare netns");
            work();
        })
        .join()
        .expect("test thread");
    }

    /// What the kernel's `ip=` would have done when it did not: a bare `eth0` in a
    /// private namespace gets the address, comes up and gets the default route; a
    /// second run finds everything in place and changes nothing.
    #[test]
    fn configures_a_bare_interface_then_leaves_it_alone() {
        in_private_netns(|| {
            veth_eth0();
            let c = IpConfig::from_cmdline(FLINTD_PARAM).unwrap().unwrap();
            let done = configure(&c).expect("configure");
            assert_eq!(
                done,
                Configured {
                    address_was_set: false,
                    route_was_set: false
                }
            );
            let addr = ip(&["-4", "addr", "show", "eth0"]);
            assert!(addr.contains("inet 100.96.0.3/31"), "{addr}");
            assert!(addr.contains(",UP"), "{addr}");
            let route = ip(&["-4", "route", "show", "default"]);
            assert!(route.contains("default via 100.96.0.2 dev eth0"), "{route}");
            let again = configure(&c).expect("configure again");
            assert_eq!(
                again,
                Configured {
                    address_was_set: true,
                    route_was_set: true
                }
            );
        });
    }

    /// The state the kernel's IP autoconfiguration leaves (set with `ip` here) is
    /// recognised as done.
    #[test]
    fn recognises_what_the_kernel_configured() {
        in_private_netns(|| {
            veth_eth0();
            ip(&["addr", "add", "100.96.0.3/31", "dev", "eth0"]);
            ip(&["link", "set", "eth0", "up"]);
            ip(&[
                "route",
                "add",
                "default",
                "via",
                "100.96.0.2",
                "dev",
                "eth0",
            ]);
            let c = IpConfig::from_cmdline(FLINTD_PARAM).unwrap().unwrap();
            let done = configure(&c).expect("configure");
            assert!(done.address_was_set && done.route_was_set, "{done:?}");
        });
    }

    #[test]
    fn a_missing_interface_is_named() {
        in_private_netns(|| {
            let c = IpConfig::from_cmdline(FLINTD_PARAM).unwrap().unwrap();
            let e = configure(&c).unwrap_err();
            assert!(
                matches!(e, GuestNetError::NoDevice(ref d) if d == "eth0"),
                "{e}"
            );
            assert!(e.to_string().contains("CONFIG_VIRTIO_NET"), "{e}");
        });
    }

    /// resolv.conf over a file, in a private mount namespace (a child thread's, so the
    /// test process's mounts are untouched).
    #[test]
    fn resolv_conf_is_bind_mounted_over_the_images_file() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        let etc = dir.path().join("resolv.conf");
        std::fs::create_dir(&run).unwrap();
        std::fs::write(&etc, "nameserver 192.0.2.1\n").unwrap();
        let (run2, etc2) = (run.clone(), etc.clone());
        std::thread::spawn(move || {
            nix::sched::unshare(
                nix::sched::CloneFlags::CLONE_NEWNS | nix::sched::CloneFlags::CLONE_FS,
            )
            .expect("unshare mount namespace");
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                None::<&str>,
            )
            .expect("private mounts");
            install_resolv_conf("nameserver 10.0.0.2\n", &run2, &etc2).expect("install");
            assert_eq!(
                std::fs::read_to_string(&etc2).unwrap(),
                "nameserver 10.0.0.2\n"
            );
        })
        .join()
        .expect("test thread");
        // Outside that namespace the file is as it was.
        assert_eq!(
            std::fs::read_to_string(&etc).unwrap(),
            "nameserver 192.0.2.1\n"
        );
    }
}
