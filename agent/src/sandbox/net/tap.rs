//! A microVM's link: a persistent TAP interface `flv<id>` made by flintd before the VM's
//! jail, owned by the jailed VMM's uid (no other unprivileged process may attach to
//! it), with the host end of a /31 pair from the same [`super::leases`] as
//! the namespace sandboxes' veths. Its name matches the nftables table's `flv*`, so the
//! one egress policy ([`super::nft`]) and the start-up sweep ([`super::sweep`]) cover it
//! as they cover a veth. The guest is told its address, gateway and name servers on the
//! kernel command line (`ip=`, [`VmNet::kernel_ip_param`]).

use super::leases::Lease;
use super::{host_if_name, ifconfig, run_ip, NetError, Network, GUEST_IF};
use std::net::Ipv4Addr;

/// Name servers the kernel's `ip=` parameter carries (dns0 and dns1).
pub const KERNEL_DNS_MAX: usize = 2;

/// One microVM's TAP and addresses. The TAP is deleted when this is dropped; the pair
/// goes back after.
pub struct VmNet {
    tap: String,
    lease: Lease,
    dns: Vec<Ipv4Addr>,
}

impl Network {
    /// A TAP `flv<id>` for microVM `id`, owned by `owner` (uid and gid of the jailed
    /// VMM; None: root), with the host end's address up. Blocking (one `ip` process).
    pub fn attach_tap(&self, id: &str, owner: Option<u32>) -> Result<VmNet, NetError> {
        self.install()?;
        let lease = self
            .leases
            .lease()
            .ok_or(NetError::Exhausted(self.leases.capacity()))?;
        let tap = host_if_name(id);
        let owner = owner.map(|o| o.to_string());
        let mut args = vec!["tuntap", "add", "dev", tap.as_str(), "mode", "tap"];
        if let Some(o) = &owner {
            args.extend(["user", o.as_str(), "group", o.as_str()]);
        }
        run_ip(&args)?;
        let net = VmNet {
            tap,
            lease,
            dns: self.config.dns.clone(),
        };
        ifconfig::address_up(&net.tap, net.lease.host(), 31)?;
        Ok(net)
    }
}

impl VmNet {
    /// The TAP's name (flint-vmm's `--net-tap`).
    pub fn tap(&self) -> &str {
        &self.tap
    }

    /// The guest's address.
    pub fn guest(&self) -> Ipv4Addr {
        self.lease.sandbox()
    }

    /// The guest's gateway: the TAP's address.
    pub fn gateway(&self) -> Ipv4Addr {
        self.lease.host()
    }

    /// The kernel's static IP autoconfiguration for the guest's `eth0`
    /// (Documentation/admin-guide/nfs/nfsroot.rst):
    /// `ip=<client>::<gateway>:<netmask>::<device>:off[:<dns0>[:<dns1>]]`.
    pub fn kernel_ip_param(&self) -> String {
        kernel_ip_param(self.guest(), self.gateway(), &self.dns)
    }
}

/// `ip=` for `guest` on a /31 with `gateway`, and at most two name servers.
pub fn kernel_ip_param(guest: Ipv4Addr, gateway: Ipv4Addr, dns: &[Ipv4Addr]) -> String {
    let mut p = format!("ip={guest}::{gateway}:255.255.255.254::{GUEST_IF}:off");
    for d in dns.iter().take(KERNEL_DNS_MAX) {
        p.push_str(&format!(":{d}"));
    }
    p
}

impl Drop for VmNet {
    fn drop(&mut self) {
        if let Err(e) = run_ip(&["link", "del", &self.tap]) {
            tracing::warn!(link = %self.tap, error = %e, "microVM TAP not deleted");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::net::{nft, sweep, NetConfig};

    #[test]
    fn ip_param_has_the_pair_and_at_most_two_name_servers() {
        let g = Ipv4Addr::new(100, 96, 0, 1);
        let h = Ipv4Addr::new(100, 96, 0, 0);
        assert_eq!(
            kernel_ip_param(g, h, &[]),
            "ip=100.96.0.1::100.96.0.0:255.255.255.254::eth0:off"
        );
        let dns = [
            Ipv4Addr::new(10, 0, 0, 2),
            Ipv4Addr::new(9, 9, 9, 9),
            Ipv4Addr::new(1, 1, 1, 1),
        ];
        assert_eq!(
            kernel_ip_param(g, h, &dns),
            "ip=100.96.0.1::100.96.0.0:255.255.255.254::eth0:off:10.0.0.2:9.9.9.9"
        );
    }

    /// Reads `ip` output in this test's own network namespace.
    fn ip(args: &[&str]) -> String {
        let out = std::process::Command::new("ip")
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The real thing in a private network namespace (a test thread's, so the host's
    /// interfaces and nftables are untouched): a TAP owned by the given uid with the
    /// host address, the policy table, both gone with the VmNet and the sweep.
    #[test]
    fn tap_is_owned_addressed_policed_and_removed() {
        std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare netns");
            let dir = tempfile::tempdir().unwrap();
            let cfg = NetConfig::parse(
                "100.96.0.0/29",
                &[],
                &["203.0.113.0/24".into()],
                &[Ipv4Addr::new(10, 0, 0, 2)],
                false,
            )
            .unwrap();
            let network = Network::new(cfg, dir.path());
            let vm = network
                .attach_tap("sbx-00000000abcd", Some(4_000_000))
                .expect("attach_tap");
            assert_eq!(vm.tap(), "flv00000000abcd");
            assert_eq!(vm.guest(), Ipv4Addr::new(100, 96, 0, 1));
            let link = ip(&["-d", "link", "show", "flv00000000abcd"]);
            assert!(link.contains("tun type tap"), "{link}");
            assert!(link.contains("user 4000000"), "{link}");
            assert!(link.contains("group 4000000"), "{link}");
            let addr = ip(&["-4", "addr", "show", "flv00000000abcd"]);
            assert!(addr.contains("inet 100.96.0.0/31"), "{addr}");
            assert!(nft::table_exists());
            let rules = std::process::Command::new("nft")
                .args(["list", "table", "inet", "flint"])
                .output()
                .unwrap();
            let rules = String::from_utf8_lossy(&rules.stdout);
            assert!(rules.contains("ip daddr 203.0.113.0/24 drop"), "{rules}");
            assert!(
                vm.kernel_ip_param().ends_with(":eth0:off:10.0.0.2"),
                "{}",
                vm.kernel_ip_param()
            );
            drop(vm);
            assert!(ip(&["link", "show", "flv00000000abcd"]).is_empty());
            // A TAP a killed flintd left goes with the sweep, as a veth does.
            let left = network.attach_tap("sbx-00000000beef", None).unwrap();
            std::mem::forget(left);
            assert_eq!(sweep::leftover_links(), vec!["flv00000000beef".to_string()]);
            assert_eq!(sweep::remove_leftovers(), 2, "the TAP and the table");
            assert!(sweep::leftover_links().is_empty());
            assert!(!nft::table_exists());
        })
        .join()
        .expect("test thread");
    }
}
