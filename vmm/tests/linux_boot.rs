//! The real guest kernel (built by images/kernel/build.sh) boots on flint-vmm with its root
//! file system on our virtio-blk (and a vsock device beside it): an ext4 image made here from a static busybox. Takes
//! minutes on a nested host (the guest runs about 100x slower); fails, never skips, when
//! the kernel or the tools are missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{run_vmm, vmm_bin};

const DEADLINE: Duration = Duration::from_secs(900);

fn kernel_path() -> PathBuf {
    let cache = std::env::var_os("FLINT_CACHE_DIR").unwrap_or_else(|| "/var/cache/flint".into());
    Path::new(&cache).join("kernel").join("vmlinux")
}

/// An ext4 image whose /sbin/init is a shell script that prints a marker and reboots.
fn make_rootfs(dir: &Path) -> PathBuf {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "static busybox missing at /bin/busybox: run `apt-get install -y busybox-static`"
    );
    let tree = dir.join("tree");
    for sub in ["bin", "sbin", "dev", "proc", "sys", "tmp"] {
        std::fs::create_dir_all(tree.join(sub)).expect("mkdir");
    }
    std::fs::copy(busybox, tree.join("bin/busybox")).expect("copy busybox");
    std::os::unix::fs::symlink("busybox", tree.join("bin/sh")).expect("symlink sh");
    let init = tree.join("sbin/init");
    std::fs::write(
        &init,
        "#!/bin/sh\n/bin/busybox echo FLINT-GUEST-INIT-RAN\n/bin/busybox reboot -f\n",
    )
    .expect("write init");
    let mut perm = std::fs::metadata(&init).expect("stat").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&init, perm).expect("chmod");
    let image = dir.join("root.ext4");
    let out = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-d"])
        .arg(&tree)
        .arg(&image)
        .arg("16M")
        .output()
        .unwrap_or_else(|e| panic!("mkfs.ext4 not runnable ({e}): apt-get install -y e2fsprogs"));
    assert!(
        out.status.success(),
        "mkfs.ext4 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    image
}

#[test]
fn linux_boots_to_init_with_ext4_root_on_virtio_blk() {
    let kernel = kernel_path();
    assert!(
        kernel.is_file(),
        "guest kernel {} is missing: build it with images/kernel/build.sh",
        kernel.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let rootfs = make_rootfs(dir.path());
    let serial = dir.path().join("serial.log");
    let vsock = dir.path().join("vsock.sock");
    let run = run_vmm(
        &[
            "--kernel",
            kernel.to_str().expect("utf8"),
            "--mem-mib",
            "128",
            "--rootfs",
            rootfs.to_str().expect("utf8"),
            "--vsock-uds",
            vsock.to_str().expect("utf8"),
            "--serial-log",
            serial.to_str().expect("utf8"),
        ],
        Some(&serial),
        DEADLINE,
    );
    let log = &run.serial;
    let keep = std::env::temp_dir().join("flint-vmm-linux-boot-serial.log");
    let _ = std::fs::write(&keep, log);
    let context = format!(
        "serial log saved at {}; stderr:\n{}",
        keep.display(),
        run.stderr
    );
    assert!(
        log.contains(
            "virtio-mmio: Registering device virtio-mmio.0 at 0xd0001000-0xd0001fff, IRQ 5"
        ),
        "virtio-mmio device not registered; {context}"
    );
    assert!(
        log.contains(
            "virtio-mmio: Registering device virtio-mmio.1 at 0xd0002000-0xd0002fff, IRQ 6"
        ),
        "second (vsock) virtio-mmio device not registered; {context}"
    );
    assert!(
        log.contains("serio: i8042 KBD port at 0x60,0x64 irq 1"),
        "i8042 not initialised; {context}"
    );
    assert!(
        log.contains("virtio_blk virtio0: [vda]"),
        "virtio-blk not probed; {context}"
    );
    assert!(
        log.contains("VFS: Mounted root (ext4 filesystem) readonly"),
        "ext4 root not mounted read-only; {context}"
    );
    assert!(
        log.contains("Run /sbin/init as init process"),
        "init not started; {context}"
    );
    // The guest ends through reboot=k / panic=-1: an i8042 reset, exit status 2.
    assert_eq!(run.status, Some(2), "{context}\nstdout: {}", run.stdout);
    let summary = run.summary.expect("JSON summary");
    assert!(summary["timings"]["first_serial_byte_us"]
        .as_u64()
        .is_some());
}

/// The serial line after which the snapshot is taken: virtio-blk is probed and active, the
/// root file system not mounted yet.
const SNAPSHOT_MARKER: &str = "virtio_blk virtio0: [vda]";

#[test]
fn linux_snapshotted_mid_boot_mounts_its_root_and_runs_init_after_restore() {
    let kernel = kernel_path();
    assert!(
        kernel.is_file(),
        "guest kernel {} is missing: build it with images/kernel/build.sh",
        kernel.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let rootfs = make_rootfs(dir.path());
    let before_log = dir.path().join("before.serial");
    let snap = dir.path().join("snap");
    let mut child = Command::new(vmm_bin())
        .arg("--kernel")
        .arg(&kernel)
        .args(["--mem-mib", "128", "--rootfs"])
        .arg(&rootfs)
        .arg("--vsock-uds")
        .arg(dir.path().join("before.sock"))
        .arg("--serial-log")
        .arg(&before_log)
        .arg("--snapshot-to")
        .arg(&snap)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("flint-vmm starts");
    let started = Instant::now();
    loop {
        let log = std::fs::read_to_string(&before_log).unwrap_or_default();
        if log.contains(SNAPSHOT_MARKER) {
            break;
        }
        if let Some(status) = child.try_wait().expect("wait") {
            panic!("the guest ended ({status}) before {SNAPSHOT_MARKER:?}; serial log:\n{log}");
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no {SNAPSHOT_MARKER:?} within {DEADLINE:?}; serial log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    // SAFETY: plain kill(2) of our own child process, which has not been reaped yet.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGUSR1) }, 0, "kill");
    let status = child.wait().expect("wait");
    assert_eq!(
        status.code(),
        Some(5),
        "a snapshot ends the VM with status 5"
    );
    let before = std::fs::read_to_string(&before_log).expect("serial log");

    let after_log = dir.path().join("after.serial");
    let new_sock = dir.path().join("after.sock");
    let run = run_vmm(
        &[
            "--restore-from",
            snap.to_str().expect("utf8"),
            "--vsock-uds",
            new_sock.to_str().expect("utf8"),
            "--serial-log",
            after_log.to_str().expect("utf8"),
        ],
        Some(&after_log),
        DEADLINE,
    );
    let keep = std::env::temp_dir().join("flint-vmm-linux-restore-serial.log");
    let _ = std::fs::write(&keep, format!("{before}{}", run.serial));
    let context = format!(
        "serial log (before + after the restore) saved at {}; stderr:\n{}",
        keep.display(),
        run.stderr
    );
    assert!(
        !run.serial.is_empty() && !run.serial.contains("Linux version"),
        "the restored guest continues instead of booting again; {context}"
    );
    let combined = format!("{before}{}", run.serial);
    assert!(
        combined.contains("VFS: Mounted root (ext4 filesystem) readonly"),
        "ext4 root not mounted; {context}"
    );
    assert!(
        run.serial.contains("Run /sbin/init as init process"),
        "init not started after the restore; {context}"
    );
    assert_eq!(run.status, Some(2), "{context}\nstdout: {}", run.stdout);
}
