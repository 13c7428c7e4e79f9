//! flint-vmm's jail (`--jail`) against real /dev/kvm: a jailed VMM runs its guest, reads
//! its disk, snapshots and is restored jailed, while it sees only its own files, runs as
//! an unprivileged user without capabilities, under seccomp, in namespaces of its own.
//! Needs root (as flintd does); fails, never skips, without it.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::snapshot_guests::{BLK_OK, BLK_READER, COUNTER, COUNTER_LIMIT, COUNTER_OK};
use common::{elf_image, vmm_bin};

const DEADLINE: Duration = Duration::from_secs(30);
const NOBODY: &str = "65534";

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

/// A fresh, empty jail directory and a world-traversable work directory (the jailed user
/// must reach the files flint-vmm gives it; tempdirs are 0700).
fn dirs() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let jail = tmp.path().join("jail");
    let work = tmp.path().join("work");
    std::fs::create_dir(&jail).expect("mkdir jail");
    std::fs::create_dir(&work).expect("mkdir work");
    (tmp, jail, work)
}

fn spawn(args: &[&str]) -> Child {
    Command::new(vmm_bin())
        .args(args)
        .env("FLINT_VMM_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("flint-vmm starts")
}

/// Waits for the end; returns (status, stdout, stderr), or panics with the serial log.
fn finish(mut child: Child, serial: &Path) -> (Option<i32>, String, String) {
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "flint-vmm did not finish within {DEADLINE:?}; stderr: {}; serial: {:?}",
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(serial).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn status_field(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

/// The only child of the process `pid` (the jailed VMM forks into its PID namespace).
fn vmm_of(pid: u32) -> u32 {
    let started = Instant::now();
    loop {
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        let all: Vec<u32> = children
            .split_whitespace()
            .map(|c| c.parse().expect("pid"))
            .collect();
        match all[..] {
            [one] => return one,
            [] if started.elapsed() < DEADLINE => std::thread::sleep(Duration::from_millis(2)),
            _ => panic!("flint-vmm {pid} has children {all:?}, not one VMM"),
        }
    }
}

/// Every path under `root` (relative), depth first.
fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            out.push(
                p.strip_prefix(root)
                    .expect("under root")
                    .display()
                    .to_string(),
            );
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_jailed_vmm_is_confined_snapshots_and_is_restored_jailed() {
    let (_tmp, jail, work) = dirs();
    let kernel = work.join("guest.elf");
    std::fs::write(&kernel, elf_image(COUNTER, true)).expect("write guest");
    std::fs::set_permissions(&kernel, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let serial = work.join("before.serial");
    let snap = work.join("snap");
    let child = spawn(&[
        "--jail",
        s(&jail),
        "--kernel",
        s(&kernel),
        "--serial-log",
        s(&serial),
        "--snapshot-to",
        s(&snap),
    ]);
    let started_pid = child.id();
    let started = Instant::now();
    while std::fs::metadata(&serial).map(|m| m.len()).unwrap_or(0) < 2_000 {
        assert!(
            started.elapsed() < DEADLINE,
            "the jailed guest never counted"
        );
        std::thread::sleep(Duration::from_millis(2));
    }

    // The VMM is the started process's only child, PID 1 of a PID namespace of its
    // own; the started process (what flintd signals and waits for) is outside it.
    let pid = vmm_of(started_pid);
    assert_eq!(
        status_field(pid, "NSpid"),
        format!("{pid}\t1"),
        "the VMM must be PID 1 of a namespace of its own"
    );
    let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/pid")).expect("pid ns");
    assert_ne!(ns("self"), ns(&pid.to_string()));
    assert_eq!(ns("self"), ns(&started_pid.to_string()));
    // Confined while it runs.
    assert_eq!(
        status_field(pid, "Uid"),
        format!("{NOBODY}\t{NOBODY}\t{NOBODY}\t{NOBODY}")
    );
    assert_eq!(
        status_field(pid, "Gid"),
        format!("{NOBODY}\t{NOBODY}\t{NOBODY}\t{NOBODY}")
    );
    assert_eq!(status_field(pid, "Groups"), "");
    assert_eq!(status_field(pid, "CapEff"), "0000000000000000");
    assert_eq!(status_field(pid, "CapPrm"), "0000000000000000");
    assert_eq!(status_field(pid, "NoNewPrivs"), "1");
    assert_eq!(status_field(pid, "Seccomp"), "2", "filter mode");
    for ns in ["mnt", "ipc", "uts", "net"] {
        let mine = std::fs::read_link(format!("/proc/self/ns/{ns}")).expect("ns");
        let its = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).expect("ns");
        assert_ne!(mine, its, "{ns} namespace must be the VMM's own");
    }
    // Its root holds the guest, the serial log, the snapshot directory and /dev/kvm only.
    let seen = tree(Path::new(&format!("/proc/{pid}/root")));
    let rel = |p: &Path| p.strip_prefix("/").expect("absolute").display().to_string();
    for want in [
        rel(&kernel),
        rel(&serial),
        rel(&snap),
        "dev/kvm".to_string(),
    ] {
        assert!(
            seen.contains(&want),
            "{want} missing from the jail: {seen:?}"
        );
    }
    let files: Vec<&String> = seen
        .iter()
        .filter(|p| {
            !work
                .join("x")
                .strip_prefix("/")
                .expect("abs")
                .starts_with(p.as_str())
        })
        .filter(|p| !Path::new("/").join(p.as_str()).starts_with(&work) && p.as_str() != "dev")
        .collect();
    assert_eq!(files, vec!["dev/kvm"], "nothing else in the jail: {seen:?}");

    // Sent to the started process, as flintd does: it forwards it to the VMM.
    // SAFETY: kill(2) of our own child, not reaped yet.
    let rc = unsafe { libc::kill(started_pid as libc::pid_t, libc::SIGUSR1) };
    assert_eq!(rc, 0);
    let (status, stdout, stderr) = finish(child, &serial);
    assert_eq!(
        status,
        Some(5),
        "snapshot written by the jailed VMM; stdout {stdout}; stderr {stderr}"
    );
    let before = std::fs::read_to_string(&serial).expect("serial");
    assert!(snap.join("state.json").is_file() && snap.join("memory").is_file());

    // Restored in a new jailed process, it continues where it stopped.
    let (_tmp2, jail2, _) = dirs();
    let after = work.join("after.serial");
    let child = spawn(&[
        "--jail",
        s(&jail2),
        "--restore-from",
        s(&snap),
        "--serial-log",
        s(&after),
    ]);
    let (status, stdout, stderr) = finish(child, &after);
    assert_eq!(status, Some(COUNTER_OK), "stdout {stdout}; stderr {stderr}");
    let combined = before + &std::fs::read_to_string(&after).expect("serial");
    assert_eq!(
        combined.len(),
        COUNTER_LIMIT as usize,
        "no count lost or repeated"
    );
}

#[test]
fn a_jailed_vcpu_serves_its_disk() {
    let (_tmp, jail, work) = dirs();
    let kernel = work.join("guest.elf");
    std::fs::write(&kernel, elf_image(BLK_READER, true)).expect("write guest");
    // Every byte of sector s is s & 0xff, as BLK_READER checks.
    let content: Vec<u8> = (0..2048u32)
        .flat_map(|sector| std::iter::repeat_n((sector & 0xff) as u8, 512))
        .collect();
    let disk = work.join("disk.img");
    std::fs::write(&disk, content).expect("disk");
    for f in [&kernel, &disk] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    let serial = work.join("serial");
    let child = spawn(&[
        "--jail",
        s(&jail),
        "--jail-uid",
        "4242",
        "--jail-gid",
        "4242",
        "--kernel",
        s(&kernel),
        "--rootfs",
        s(&disk),
        "--serial-log",
        s(&serial),
    ]);
    let (status, stdout, stderr) = finish(child, &serial);
    assert_eq!(
        status,
        Some(BLK_OK),
        "every read right; stdout {stdout}; stderr {stderr}"
    );
    // The jail left nothing in the caller's directory: the mounts were the VMM's own.
    assert_eq!(std::fs::read_dir(&jail).expect("jail dir").count(), 0);
}

#[test]
fn bad_jail_settings_are_refused_before_anything_runs() {
    let (_tmp, jail, work) = dirs();
    let kernel = work.join("guest.elf");
    std::fs::write(&kernel, elf_image(COUNTER, true)).expect("write guest");
    std::fs::write(jail.join("leftover"), b"x").expect("write");
    let (status, _, stderr) = finish(
        spawn(&["--jail", s(&jail), "--kernel", s(&kernel)]),
        &kernel,
    );
    assert_eq!(status, Some(1));
    assert!(
        stderr.contains("must be an existing, empty directory"),
        "{stderr}"
    );
    std::fs::remove_file(jail.join("leftover")).expect("rm");
    let (status, _, stderr) = finish(
        spawn(&[
            "--jail",
            s(&jail),
            "--jail-uid",
            "0",
            "--kernel",
            s(&kernel),
        ]),
        &kernel,
    );
    assert_eq!(status, Some(1));
    assert!(stderr.contains("--jail-uid 0"), "{stderr}");
    let (status, _, stderr) = finish(
        spawn(&["--jail", s(&jail), "--kernel", "guest.elf"]),
        &kernel,
    );
    assert_eq!(status, Some(1), "{stderr}");
}

/// Waits until `pid` is gone (reaped by its parent), or panics.
fn wait_gone(pid: u32) {
    let started = Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(
            started.elapsed() < DEADLINE,
            "the VMM {pid} outlived its parent"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_jailed_vmm_ends_with_the_process_flintd_started() {
    use std::os::unix::process::ExitStatusExt;
    for signal in [libc::SIGTERM, libc::SIGKILL] {
        let (_tmp, jail, work) = dirs();
        let kernel = work.join("guest.elf");
        std::fs::write(&kernel, elf_image(COUNTER, true)).expect("write guest");
        std::fs::set_permissions(&kernel, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let serial = work.join("serial");
        let mut child = spawn(&[
            "--jail",
            s(&jail),
            "--kernel",
            s(&kernel),
            "--serial-log",
            s(&serial),
        ]);
        let vmm = vmm_of(child.id());
        // Once the guest runs, the VMM has dropped its privileges (which clears a
        // parent-death signal: it must have been armed again after).
        let started = Instant::now();
        while std::fs::metadata(&serial).map(|m| m.len()).unwrap_or(0) < 100 {
            assert!(
                started.elapsed() < DEADLINE,
                "the jailed guest never counted"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(status_field(vmm, "Uid").split('\t').next(), Some(NOBODY));
        // The waiting parent, in the host's namespaces, holds no privilege either.
        let parent = child.id();
        assert_eq!(
            status_field(parent, "Uid"),
            format!("{NOBODY}\t{NOBODY}\t{NOBODY}\t{NOBODY}")
        );
        assert_eq!(status_field(parent, "CapEff"), "0000000000000000");
        assert_eq!(status_field(parent, "NoNewPrivs"), "1");
        assert_eq!(status_field(parent, "Seccomp"), "2", "filter mode");
        // SAFETY: kill(2) of our own child, not reaped yet.
        assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
        let status = child.wait().expect("wait");
        assert_eq!(status.signal(), Some(signal), "{status:?}");
        // SIGTERM: the parent killed the VMM before dying of it; SIGKILL: the VMM's
        // parent-death signal did.
        wait_gone(vmm);
        // Ended by the kill, not by running its guest to the end (60,000 bytes).
        let written = std::fs::metadata(&serial).map(|m| m.len()).unwrap_or(0);
        assert!(
            written < 60_000,
            "the VMM ran on after its parent died ({written} bytes)"
        );
    }
}
