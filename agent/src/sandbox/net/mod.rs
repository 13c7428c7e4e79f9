//! Sandbox networking for functions whose setting is `outbound` (docs/NETWORK.md).
//! Each such sandbox gets a network namespace made by flintd (so it belongs to the
//! host's user namespace: the function, root only in its own user namespace, can
//! change none of its interfaces, addresses or routes) holding `eth0`, one end of a
//! veth pair whose host end `flv<id>` is routed: a /31 of `--network-cidr` per
//! sandbox ([`leases`]), no bridge, so sandboxes share no link. The nftables table
//! ([`nft`]) masquerades their traffic and applies the egress policy. flint-init joins
//! the namespace (`--netns-fd`) before it unshares the rest. A microVM gets a TAP
//! named the same way ([`tap`]) in place of the veth: same pairs, same table.

pub mod cidr;
pub mod ifconfig;
pub mod leases;
pub mod nft;
pub mod sweep;
pub mod tap;

use cidr::{Cidr, CidrError, EgressRule};
use leases::{Lease, Leases};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

/// How the host ends of sandbox links are named: "flv" and the sandbox id's 12 hex
/// digits (15 bytes, the kernel's limit).
pub const IF_PREFIX: &str = "flv";
/// The sandbox's end.
pub const GUEST_IF: &str = "eth0";

/// Networking failures.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A flag is invalid
    #[error(transparent)]
    Flag(#[from] CidrError),
    /// The subnet is too small
    #[error("--network-cidr {0} is too small: give at least a /30")]
    SmallSubnet(Cidr),
    /// Every address pair is taken
    #[error("all {0} address pairs of --network-cidr are in use: too many networked sandboxes; give a larger block")]
    Exhausted(usize),
    /// A system call failed
    #[error("{0}: {1}")]
    Sys(&'static str, std::io::Error),
    /// `ip` or `nft` failed or is missing
    #[error(
        "{0} failed: {1} (is {0} installed? images/host-deps.sh installs nftables and iproute2)"
    )]
    Tool(&'static str, String),
    /// Writing resolv.conf failed
    #[error("writing {0}: {1}")]
    Resolv(PathBuf, std::io::Error),
}

/// flintd's networking settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    pub cidr: Cidr,
    pub allow: Vec<EgressRule>,
    pub deny: Vec<EgressRule>,
    /// Name servers for the sandboxes' /etc/resolv.conf.
    pub dns: Vec<Ipv4Addr>,
    /// Turn IPv4 forwarding on at start-up (`--network-enable-forwarding`).
    pub enable_forwarding: bool,
}

impl NetConfig {
    /// Validates the flags; with no `dns`, takes the host's non-loopback name servers.
    pub fn parse(
        cidr: &str,
        allow: &[String],
        deny: &[String],
        dns: &[Ipv4Addr],
        enable_forwarding: bool,
    ) -> Result<Self, NetError> {
        let cidr = Cidr::parse(cidr)?;
        if cidr.prefix > 30 {
            return Err(NetError::SmallSubnet(cidr));
        }
        let rules = |v: &[String]| {
            v.iter()
                .map(|s| EgressRule::parse(s))
                .collect::<Result<Vec<_>, _>>()
        };
        let dns = if dns.is_empty() {
            host_name_servers(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
        } else {
            dns.to_vec()
        };
        Ok(Self {
            cidr,
            allow: rules(allow)?,
            deny: rules(deny)?,
            dns,
            enable_forwarding,
        })
    }
}

/// The IPv4 `nameserver` lines of a resolv.conf that a sandbox can reach (not
/// loopback: the sandbox's loopback is its own, and the host is out of its reach).
pub fn host_name_servers(resolv: &str) -> Vec<Ipv4Addr> {
    resolv
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<Ipv4Addr>().ok())
        .filter(|a| !a.is_loopback() && !a.is_unspecified())
        .collect()
}

/// The networking of one agent: address pairs and the nftables table (installed on
/// the first networked sandbox).
pub struct Network {
    config: NetConfig,
    leases: Arc<Leases>,
    resolv: PathBuf,
    installed: Mutex<bool>,
}

/// One sandbox's network: its namespace (held open), the host end of its link, its
/// addresses. The link is deleted when this is dropped; the pair goes back after.
pub struct SandboxNet {
    netns: OwnedFd,
    host_if: String,
    _lease: Lease,
}

impl Network {
    /// Networking under `config`; `run_dir` holds the sandboxes' resolv.conf.
    pub fn new(config: NetConfig, run_dir: &Path) -> Self {
        Self {
            leases: Leases::new(config.cidr),
            resolv: run_dir.join("resolv.conf"),
            config,
            installed: Mutex::new(false),
        }
    }

    /// The resolv.conf bind-mounted into networked sandboxes.
    pub fn resolv_conf(&self) -> &Path {
        &self.resolv
    }

    /// Installs the table, the resolv.conf and (when asked) forwarding, once.
    fn install(&self) -> Result<(), NetError> {
        let mut done = self.installed.lock().unwrap_or_else(|p| p.into_inner());
        if *done {
            return Ok(());
        }
        let forward = Path::new("/proc/sys/net/ipv4/ip_forward");
        let on = std::fs::read_to_string(forward).is_ok_and(|s| s.trim() == "1");
        if !on && self.config.enable_forwarding {
            std::fs::write(forward, "1")
                .map_err(|e| NetError::Sys("enabling net.ipv4.ip_forward", e))?;
            tracing::warn!("--network-enable-forwarding: set net.ipv4.ip_forward=1 in flintd's network namespace");
        } else if !on {
            tracing::warn!("net.ipv4.ip_forward is 0: outbound functions reach nothing; turn it on or pass --network-enable-forwarding");
        }
        if let Some(dir) = self.resolv.parent() {
            std::fs::create_dir_all(dir).map_err(|e| NetError::Resolv(dir.to_path_buf(), e))?;
        }
        let text: String = self
            .config
            .dns
            .iter()
            .map(|a| format!("nameserver {a}\n"))
            .collect();
        std::fs::write(&self.resolv, text).map_err(|e| NetError::Resolv(self.resolv.clone(), e))?;
        nft::apply(&nft::ruleset(
            &self.config.cidr,
            &self.config.allow,
            &self.config.deny,
        ))?;
        tracing::info!(cidr = %self.config.cidr, allow = self.config.allow.len(), deny = self.config.deny.len(), "sandbox networking on (nftables table inet flint)");
        *done = true;
        Ok(())
    }

    /// A new network namespace with `eth0` linked to the host for sandbox `id`.
    /// Blocking (one `ip` process).
    pub fn attach(&self, id: &str) -> Result<SandboxNet, NetError> {
        self.install()?;
        let lease = self
            .leases
            .lease()
            .ok_or(NetError::Exhausted(self.leases.capacity()))?;
        let netns = new_netns()?;
        let host_if = host_if_name(id);
        let path = format!("/proc/{}/fd/{}", std::process::id(), netns.as_raw_fd());
        run_ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", GUEST_IF, "netns", &path,
        ])?;
        let net = SandboxNet {
            netns,
            host_if,
            _lease: lease,
        };
        let (host, guest) = (net._lease.host(), net._lease.sandbox());
        ifconfig::address_up(&net.host_if, host, 31)?;
        in_netns(&net.netns, move || {
            ifconfig::link_up("lo")?;
            ifconfig::address_up(GUEST_IF, guest, 31)?;
            ifconfig::default_route(GUEST_IF, host)
        })?;
        Ok(net)
    }
}

impl SandboxNet {
    /// The namespace's descriptor (for flint-init's `--netns-fd`).
    pub fn netns_fd(&self) -> RawFd {
        self.netns.as_raw_fd()
    }
}

impl Drop for SandboxNet {
    fn drop(&mut self) {
        // Deleting one end deletes the pair; the namespace goes with its last user.
        if let Err(e) = run_ip(&["link", "del", &self.host_if]) {
            tracing::warn!(link = %self.host_if, error = %e, "sandbox link not deleted");
        }
    }
}

/// The host end's name for sandbox `id` ("sbx-" and 12 hex digits).
pub fn host_if_name(id: &str) -> String {
    let tail = id
        .strip_prefix(crate::sandbox::SANDBOX_ID_PREFIX)
        .unwrap_or(id);
    format!("{IF_PREFIX}{}", &tail[..tail.len().min(12)])
}

/// Runs `ip ARGS`.
fn run_ip(args: &[&str]) -> Result<(), NetError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| NetError::Tool("ip", e.to_string()))?;
    if !out.status.success() {
        return Err(NetError::Tool(
            "ip",
            format!(
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(())
}

/// A new network namespace, made by a short-lived thread (unshare changes only the
/// calling thread's namespace; flintd's other threads stay where they are).
fn new_netns() -> Result<OwnedFd, NetError> {
    std::thread::spawn(|| -> Result<OwnedFd, NetError> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| NetError::Sys("unshare(CLONE_NEWNET)", e.into()))?;
        let f = std::fs::File::open("/proc/thread-self/ns/net")
            .map_err(|e| NetError::Sys("opening the new network namespace", e))?;
        Ok(f.into())
    })
    .join()
    .map_err(|_| {
        NetError::Sys(
            "network namespace thread",
            std::io::Error::other("panicked"),
        )
    })?
}

/// Runs `work` in a short-lived thread that has joined `netns`.
fn in_netns(
    netns: &OwnedFd,
    work: impl FnOnce() -> Result<(), NetError> + Send + 'static,
) -> Result<(), NetError> {
    let fd = netns.try_clone().map_err(|e| NetError::Sys("dup", e))?;
    std::thread::spawn(move || {
        nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| NetError::Sys("setns(CLONE_NEWNET)", e.into()))?;
        work()
    })
    .join()
    .map_err(|_| {
        NetError::Sys(
            "network namespace thread",
            std::io::Error::other("panicked"),
        )
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_name_servers_skip_loopback() {
        let r = "# x\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver ::1\nsearch a\nnameserver 9.9.9.9\n";
        assert_eq!(
            host_name_servers(r),
            vec![Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(9, 9, 9, 9)]
        );
    }

    #[test]
    fn link_names_fit_the_kernel_limit() {
        assert_eq!(host_if_name("sbx-0123456789ab"), "flv0123456789ab");
        assert!(host_if_name("sbx-0123456789ab").len() <= 15);
    }

    #[test]
    fn flags_are_checked() {
        let c = NetConfig::parse(
            "100.96.0.0/16",
            &["10.0.0.0/8:443".into()],
            &[],
            &[Ipv4Addr::new(1, 1, 1, 1)],
            false,
        )
        .unwrap();
        assert_eq!(c.allow.len(), 1);
        assert_eq!(c.dns, vec![Ipv4Addr::new(1, 1, 1, 1)]);
        assert!(matches!(
            NetConfig::parse("100.96.0.0/31", &[], &[], &[], false),
            Err(NetError::SmallSubnet(_))
        ));
        assert!(NetConfig::parse("100.96.0.0/16", &[], &["nope".into()], &[], false).is_err());
    }
}
