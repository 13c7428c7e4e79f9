//! The real guest kernel (built by images/kernel/build.sh) boots on flint-vmm with its root
//! file system on our virtio-blk (and a vsock device beside it): an ext4 image made here from a static busybox. Takes
//! minutes on a nested host (the guest runs about 100x slower); fails, never skips, when
//! the kernel or the tools are missing. Every boot runs under stall detection
//! (`common::stall`): a try whose serial log stops growing for 120 s is killed and retried,
//! at most three tries within 25 minutes, and the test fails with the serial log's tail
//! when every try stalls.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::stall::{self, with_retries, Patience, Try, Watched};
use common::{run_vmm_watched, vmm_bin, Run};

/// One real-kernel boot at a time: two at once on this 2-core nested host stalled both
/// (twice, with the old kernel as with the new, after `io scheduler kyber registered`),
/// where one after the other each boots.
static ONE_BOOT: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_boot() -> std::sync::MutexGuard<'static, ()> {
    ONE_BOOT.lock().unwrap_or_else(|e| e.into_inner())
}

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
    let _one = one_boot();
    let kernel = kernel_path();
    assert!(
        kernel.is_file(),
        "guest kernel {} is missing: build it with images/kernel/build.sh",
        kernel.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let rootfs = make_rootfs(dir.path());
    let patience = Patience::kernel_boot();
    let run = with_retries("linux boot", patience, |n, until| {
        let serial = dir.path().join(format!("serial-{n}.log"));
        let vsock = dir.path().join(format!("vsock-{n}.sock"));
        run_vmm_watched(
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
            &serial,
            patience.stall,
            until,
        )
    });
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
    let _one = one_boot();
    let kernel = kernel_path();
    assert!(
        kernel.is_file(),
        "guest kernel {} is missing: build it with images/kernel/build.sh",
        kernel.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let rootfs = make_rootfs(dir.path());
    let patience = Patience::kernel_boot();
    let (before, run) = with_retries("linux snapshot mid-boot", patience, |n, until| {
        snapshot_then_restore(
            &kernel,
            &rootfs,
            &dir.path().join(format!("try-{n}")),
            patience,
            until,
        )
    });
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

/// One try of the snapshot test: boots until [`SNAPSHOT_MARKER`], snapshots (SIGUSR1),
/// restores in a new process and runs it to its end; both runs under stall detection.
/// Returns the serial log before the snapshot and the restored run.
fn snapshot_then_restore(
    kernel: &Path,
    rootfs: &Path,
    dir: &Path,
    patience: Patience,
    until: std::time::Instant,
) -> Try<(String, Run)> {
    std::fs::create_dir_all(dir).expect("mkdir");
    let before_log = dir.join("before.serial");
    let snap = dir.join("snap");
    let mut child = Command::new(vmm_bin())
        .arg("--kernel")
        .arg(kernel)
        .args(["--mem-mib", "128", "--rootfs"])
        .arg(rootfs)
        .arg("--vsock-uds")
        .arg(dir.join("before.sock"))
        .arg("--serial-log")
        .arg(&before_log)
        .arg("--snapshot-to")
        .arg(&snap)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("flint-vmm starts");
    let watched = stall::watch(
        &mut child,
        &before_log,
        Some(SNAPSHOT_MARKER),
        patience.stall,
        until,
    );
    let log = std::fs::read_to_string(&before_log).unwrap_or_default();
    if let Some(why) = stall::stall_reason(&watched, patience.stall) {
        return Try::Stalled {
            why: format!("before {SNAPSHOT_MARKER:?}: {why}"),
            serial: log,
        };
    }
    if let Watched::Exited(status) = watched {
        panic!("the guest ended ({status}) before {SNAPSHOT_MARKER:?}; serial log:\n{log}");
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

    let after_log = dir.join("after.serial");
    let new_sock = dir.join("after.sock");
    let run = run_vmm_watched(
        &[
            "--restore-from",
            snap.to_str().expect("utf8"),
            "--vsock-uds",
            new_sock.to_str().expect("utf8"),
            "--serial-log",
            after_log.to_str().expect("utf8"),
        ],
        &after_log,
        patience.stall,
        until,
    );
    match run {
        Try::Done(run) => Try::Done((before, run)),
        Try::Stalled { why, serial } => Try::Stalled {
            why: format!("after the restore: {why}"),
            serial: format!("{before}{serial}"),
        },
    }
}

/// The stall detection itself, on a stand-in for the VMM (a shell that writes a "serial
/// log"): a run that stops printing is killed after the stall limit and retried, and the
/// failure names every try and shows the log's tail; a run that keeps printing for longer
/// than the stall limit is not cut. Seconds, no kernel needed.
#[test]
fn stall_detection_kills_a_silent_run_retries_and_fails_with_the_log_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let patience = Patience {
        stall: Duration::from_secs(1),
        tries: 2,
        budget: Duration::from_secs(30),
    };
    let started = Instant::now();
    let mut tries = 0;
    let failure = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        with_retries("stand-in boot", patience, |n, until| {
            tries += 1;
            let log = dir.path().join(format!("silent-{n}.log"));
            let mut child = Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "echo 'NET: Registered PF_NETLINK/PF_ROUTE protocol family (try {n})' > {}; exec sleep 600",
                    log.display()
                ))
                .spawn()
                .expect("sh starts");
            let w = stall::watch(&mut child, &log, None, patience.stall, until);
            match stall::stall_reason(&w, patience.stall) {
                Some(why) => Try::Stalled {
                    why,
                    serial: std::fs::read_to_string(&log).unwrap_or_default(),
                },
                None => Try::Done(()),
            }
        })
    }))
    .expect_err("every try stalls");
    let message = failure
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert_eq!(tries, 2, "two tries: {message}");
    assert!(started.elapsed() < Duration::from_secs(10), "{message}");
    assert!(message.contains("every try stalled"), "{message}");
    assert!(message.contains("try 1: no new serial output"), "{message}");
    assert!(
        message.contains("PF_ROUTE protocol family (try 2)"),
        "the last try's serial tail is in the failure: {message}"
    );

    // A run that prints every 0.2 s for 2.5 s (longer than the 1 s stall limit) finishes.
    let log = dir.path().join("busy.log");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo line $i >> {}; sleep 0.2; done",
            log.display()
        ))
        .spawn()
        .expect("sh starts");
    let w = stall::watch(
        &mut child,
        &log,
        None,
        patience.stall,
        Instant::now() + patience.budget,
    );
    assert!(
        matches!(w, Watched::Exited(s) if s.success()),
        "a printing run is not a stall: {w:?}"
    );
}
