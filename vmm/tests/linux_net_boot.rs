//! The real guest kernel (images/kernel/build.sh, with CONFIG_VIRTIO_NET and IP_PNP)
//! finds our virtio-net device on a real TAP and configures `eth0` from the `ip=`
//! parameter exactly as flintd writes it for an outbound microVM (the agent's
//! `net::tap::kernel_ip_param`): address, /31 netmask, gateway, name server. The TAP
//! lives in a network namespace of the test's own (`unshare --net`), so the host's
//! interfaces are never touched. IP autoconfiguration runs before the root file system
//! is mounted, so no disk is attached: the boot ends in the "no root" panic (a reboot,
//! `panic=-1`), or is stopped as soon as the serial log shows the configuration.
//! Runs under stall detection (`common::stall`): a try whose serial log stops growing is
//! killed and retried, and the test fails with the serial log when every try stalls.
//! Needs root, /dev/net/tun and /dev/kvm; fails, never skips, without them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::stall::{self, with_retries, Patience, Try};
use common::{collect, vmm_bin, Run};

/// flintd's `ip=` for the first address pair of 100.96.0.0/16 with one name server.
const IP_PARAM: &str = "ip=100.96.0.1::100.96.0.0:255.255.255.254::eth0:off:10.0.0.2";
/// The last line the kernel prints about a static configuration with a name server.
const CONFIGURED_MARKER: &str = "nameserver0=10.0.0.2";

fn kernel_path() -> PathBuf {
    let cache = std::env::var_os("FLINT_CACHE_DIR").unwrap_or_else(|| "/var/cache/flint".into());
    Path::new(&cache).join("kernel").join("vmlinux")
}

/// Fails unless the cached kernel was built with what this test needs, and without the
/// KVM PTP clock: its initcall's hypercall never returns on the nested kvm_pvm host, so
/// such a kernel would only stall (vmm/README.md, "The stall after the i8042 line").
fn check_kernel_config(kernel: &Path) {
    let real = std::fs::canonicalize(kernel).unwrap_or_else(|e| {
        panic!(
            "guest kernel {} is missing ({e}): build it with images/kernel/build.sh",
            kernel.display()
        )
    });
    let config = real.with_file_name("config");
    let text = std::fs::read_to_string(&config).unwrap_or_default();
    for opt in ["CONFIG_VIRTIO_NET=y", "CONFIG_IP_PNP=y"] {
        assert!(
            text.lines().any(|l| l == opt),
            "{} lacks {opt}: rebuild the guest kernel with images/kernel/build.sh",
            config.display()
        );
    }
    assert!(
        !text.lines().any(|l| l == "CONFIG_PTP_1588_CLOCK_KVM=y"),
        "{} has CONFIG_PTP_1588_CLOCK_KVM=y, whose init hangs in a hypercall on kvm_pvm: \
         rebuild the guest kernel with images/kernel/build.sh",
        config.display()
    );
}

/// One try: flint-vmm booting the kernel with a virtio-net device on `tap0` (the host
/// end, 100.96.0.0/31, up) in a new network namespace, watched until the marker.
fn boot_once(
    dir: &Path,
    n: u32,
    kernel: &Path,
    patience: Patience,
    until: std::time::Instant,
) -> Try<Run> {
    let serial = dir.join(format!("serial-{n}.log"));
    let cmdline = format!("{} {IP_PARAM}", flint_vmm::config::DEFAULT_CMDLINE);
    let script = "ip link set lo up && ip tuntap add dev tap0 mode tap && \
                  ip addr add 100.96.0.0/31 dev tap0 && ip link set tap0 up && exec \"$0\" \"$@\"";
    let mut child = Command::new("unshare")
        .args(["--net", "--", "sh", "-c", script])
        .arg(vmm_bin())
        .arg("--kernel")
        .arg(kernel)
        .args([
            "--mem-mib",
            "128",
            "--net-tap",
            "tap0",
            "--cmdline",
            &cmdline,
        ])
        .arg("--serial-log")
        .arg(&serial)
        .env("FLINT_VMM_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare runs (util-linux)");
    let watched = stall::watch(
        &mut child,
        &serial,
        Some(CONFIGURED_MARKER),
        patience.stall,
        until,
    );
    if let Some(why) = stall::stall_reason(&watched, patience.stall) {
        let serial = std::fs::read_to_string(&serial).unwrap_or_default();
        return Try::Stalled { why, serial };
    }
    let status = match watched {
        stall::Watched::Exited(status) => status,
        _ => {
            // The marker: everything asserted is in the log; the rest of the boot is
            // the other test's (linux_boot.rs).
            let _ = child.kill();
            child.wait().expect("wait after kill")
        }
    };
    Try::Done(collect(child, status, Some(&serial)))
}

#[test]
fn linux_configures_eth0_on_virtio_net_from_the_ip_parameter() {
    let kernel = kernel_path();
    check_kernel_config(&kernel);
    let dir = tempfile::tempdir().expect("tempdir");
    let patience = Patience::kernel_boot();
    let run = with_retries("linux net boot", patience, |n, until| {
        boot_once(dir.path(), n, &kernel, patience, until)
    });
    let log = &run.serial;
    let keep = std::env::temp_dir().join("flint-vmm-linux-net-boot-serial.log");
    let _ = std::fs::write(&keep, log);
    let context = format!(
        "serial log (also at {}):\n{log}\nstderr:\n{}",
        keep.display(),
        run.stderr
    );
    assert!(
        log.contains("virtio-mmio: Registering device virtio-mmio.0 at 0xd0001000-0xd0001fff"),
        "the virtio-net device was not announced; {context}"
    );
    assert!(
        log.contains("IP-Config: Complete:"),
        "eth0 was not configured (virtio_net not probed, or no carrier); {context}"
    );
    assert!(log.contains("device=eth0"), "{context}");
    assert!(
        log.contains("ipaddr=100.96.0.1, mask=255.255.255.254, gw=100.96.0.0"),
        "eth0 does not have flintd's address, netmask and gateway; {context}"
    );
    assert!(log.contains(CONFIGURED_MARKER), "{context}");
}
