//! Outbound networking on the microVM backend through a real flintd (issue 12, item 1):
//! an outbound function's VM gets a TAP `flv<id>` made by flintd before the jail, owned
//! by the jailed VMM's uid, addressed from the same /31 pairs as the namespace
//! sandboxes' veths and covered by the same nftables table (`inet flint`); flint-vmm is
//! given it (`--net-tap`) with the guest's address on the kernel command line (`ip=`).
//! The TAP goes with the VM, and a TAP and table left by a flintd killed with SIGKILL
//! go at the next start. flintd runs in a network namespace of this test's own, so the
//! host's links and nftables are never touched.
//!
//! On this CI host (nested kvm_pvm) no guest user space runs, so the VM's boot ends at
//! the short boot timeout given here and the checks are the host side's. On hardware
//! KVM the same test expects the function to answer from inside the VM with its eth0
//! address and /etc/resolv.conf (docs/NETWORK.md, "microVMs").
//! Needs: images/kernel/build.sh, images/build-ext4.sh python3.11 <static flint-init>.

use flint_integration::*;
use flint_proto::v1::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Reports eth0's address and /etc/resolv.conf from inside the VM.
const REPORT: &str = r#"
import socket
def handler(e, c):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.connect(('198.51.100.1', 9))
    return {'ip': u.getsockname()[0], 'resolv': open('/etc/resolv.conf').read()}
"#;

/// A named network namespace made for this test, deleted when dropped.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = format!("flt-vmnet-{}", std::process::id());
        sh(&["ip", "netns", "add", &name]);
        let ns = Netns(name);
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }
    fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.0)
    }
    fn exec(&self, cmd: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", &self.0];
        v.extend_from_slice(cmd);
        sh(&v)
    }
    /// The sandbox links (flv*) in this namespace.
    fn sandbox_links(&self) -> Vec<String> {
        self.exec(&["ip", "-o", "link", "show"])
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .filter(|n| n.starts_with("flv"))
            .collect()
    }
    fn has_table(&self) -> bool {
        self.exec(&["nft", "list", "tables"]).contains("inet flint")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// Runs a command and returns its stdout; panics with its stderr on failure.
fn sh(cmd: &[&str]) -> String {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn kernel() -> PathBuf {
    let cache = std::env::var("FLINT_CACHE_DIR").unwrap_or_else(|_| "/var/cache/flint".into());
    let k = PathBuf::from(cache).join("kernel/vmlinux");
    assert!(
        k.is_file(),
        "{} is missing: run images/kernel/build.sh",
        k.display()
    );
    k
}

fn nested_pvm() -> bool {
    Path::new("/sys/module/kvm_pvm").exists()
}

/// Waits for exactly one sandbox link in `ns`.
async fn one_tap(ns: &Netns, what: &str) -> String {
    let t0 = Instant::now();
    loop {
        let links = ns.sandbox_links();
        if links.len() == 1 {
            return links[0].clone();
        }
        assert!(
            links.len() < 2 && t0.elapsed() < Duration::from_secs(30),
            "{what}: expected one TAP, have {links:?} after {:?}",
            t0.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `ns` has no sandbox link (and, with `table`, no nftables table).
async fn none_left(ns: &Netns, table: bool, what: &str) {
    let t0 = Instant::now();
    while !ns.sandbox_links().is_empty() || (table && ns.has_table()) {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "{what}: left behind: {:?}, table there: {}",
            ns.sandbox_links(),
            ns.has_table()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The command line of the flint-vmm process attached to `tap`, if one runs.
fn vmm_cmdline(tap: &str) -> Option<String> {
    let want = format!("--net-tap\0{tap}\0");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let raw = std::fs::read(e.path().join("cmdline")).ok()?;
        let s = String::from_utf8_lossy(&raw).into_owned();
        s.contains(&want).then(|| s.replace('\0', " "))
    })
}

/// The TAP as flintd made it: a persistent tap owned by the jailed VMM's uid, the host
/// end of a /31, under the policy table; flint-vmm attached with `ip=` for the guest.
fn check_tap(ns: &Netns, tap: &str) {
    let link = ns.exec(&["ip", "-d", "link", "show", tap]);
    assert!(link.contains("tun type tap"), "{link}");
    let user = link
        .split_whitespace()
        .skip_while(|w| *w != "user")
        .nth(1)
        .unwrap_or_else(|| panic!("no owner on the TAP: {link}"));
    assert_ne!(user, "0", "the TAP belongs to the jailed VMM's uid: {link}");
    let addr = ns.exec(&["ip", "-4", "-o", "addr", "show", tap]);
    let host = addr
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .unwrap_or_else(|| panic!("no address on the TAP: {addr}"));
    assert!(
        host.starts_with("100.96.") && host.ends_with("/31"),
        "{addr}"
    );
    let rules = ns.exec(&["nft", "list", "table", "inet", "flint"]);
    for r in [
        "ip daddr 198.51.100.0/24 drop",
        "ip daddr 169.254.0.0/16 drop",
        "iifname \"flv*\" drop",
        "masquerade",
    ] {
        assert!(rules.contains(r), "policy lacks {r:?}:\n{rules}");
    }
    let t0 = Instant::now();
    let cmdline = loop {
        if let Some(c) = vmm_cmdline(tap) {
            break c;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no flint-vmm attached to {tap}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let host_ip = host.trim_end_matches("/31");
    let gw: std::net::Ipv4Addr = host_ip.parse().unwrap();
    let guest = std::net::Ipv4Addr::from(u32::from(gw) + 1);
    let ip = format!("ip={guest}::{gw}:255.255.255.254::eth0:off:10.0.0.2");
    assert!(cmdline.contains(&ip), "flint-vmm lacks {ip}: {cmdline}");
    assert!(cmdline.contains("--jail "), "{cmdline}");
}

#[tokio::test]
async fn an_outbound_microvm_gets_a_policed_tap_that_goes_with_it_and_after_a_kill() {
    let disk = images_dir().join("python3.11/rootfs.ext4");
    assert!(
        disk.is_file(),
        "{} is missing: run images/build-ext4.sh python3.11 <static flint-init>",
        disk.display()
    );
    let ns = Netns::new();
    let vm_dir = tempfile::tempdir().unwrap();
    // Hardware KVM boots to flint-init well within a second; here the boot is cut.
    let boot_timeout = if nested_pvm() { "6" } else { "60" };
    let kernel = kernel();
    let args = [
        "--sandbox",
        "microvm",
        "--kernel",
        kernel.to_str().unwrap(),
        "--vm-run-dir",
        vm_dir.path().to_str().unwrap(),
        "--vm-boot-timeout",
        boot_timeout,
        "--pool-max",
        "0",
        "--network-enable-forwarding",
        "--egress-deny",
        "198.51.100.0/24",
        "--network-dns",
        "10.0.0.2",
    ];
    let mut agent = TestAgent::start_in(Some(&ns.path()), 300, &args).await;
    assert_eq!(agent.capacity().await.sandbox_backend, "microvm");
    let mut c = agent.client().await;
    c.functions
        .create_function(CreateFunctionRequest {
            network: "outbound".into(),
            timeout_s: 10,
            ..python_function("vm-out", REPORT)
        })
        .await
        .expect("an outbound function on the microVM backend");

    // One VM: its TAP while it boots, gone when the VM is.
    let mut c2 = agent.client().await;
    let call = tokio::spawn(async move {
        c2.invocations
            .invoke(InvokeRequest {
                function_name: "vm-out".into(),
                ..Default::default()
            })
            .await
    });
    let tap = one_tap(&ns, "first VM").await;
    check_tap(&ns, &tap);
    let result = tokio::time::timeout(Duration::from_secs(120), call)
        .await
        .expect("the invocation ends after the boot timeout")
        .unwrap();
    if nested_pvm() {
        let err = result.expect_err("no guest user space on kvm_pvm");
        assert!(
            err.message().contains("did not connect within"),
            "the VMM must run (attached to its TAP) until the boot timeout: {}",
            err.message()
        );
        none_left(&ns, false, "after the VM's end").await;
    } else {
        let r = json(&result.expect("invoke in a networked microVM").into_inner());
        assert!(r["ip"].as_str().unwrap().starts_with("100.96."), "{r}");
        assert_eq!(r["resolv"], "nameserver 10.0.0.2\n", "{r}");
        assert_eq!(
            ns.sandbox_links(),
            vec![tap.clone()],
            "the warm VM keeps it"
        );
    }
    let left = agent.wait_no_sandboxes(Duration::from_secs(10)).await;
    if nested_pvm() {
        assert!(left.is_empty(), "{left:?}");
    }

    // Another VM (here; on hardware KVM the warm one), and flintd killed with SIGKILL
    // while it runs: the next flintd's start-up sweep removes the VMM, the TAP and the
    // table.
    let mut c3 = agent.client().await;
    let call = tokio::spawn(async move {
        c3.invocations
            .invoke(InvokeRequest {
                function_name: "vm-out".into(),
                ..Default::default()
            })
            .await
    });
    let tap2 = one_tap(&ns, "second VM").await;
    let t0 = Instant::now();
    while vmm_cmdline(&tap2).is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no flint-vmm on {tap2}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent.pid() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = call.await;
    assert!(
        ns.sandbox_links().contains(&tap2) && ns.has_table(),
        "a killed flintd leaves its TAP and table (what the sweep is for)"
    );
    agent.restart_after_kill().await;
    none_left(&ns, true, "after kill -9 and a restart").await;
    assert!(
        vmm_cmdline(&tap2).is_none(),
        "the killed flintd's flint-vmm outlived the restart"
    );
    let st = agent.stop();
    assert!(st.success(), "{st}");
}
