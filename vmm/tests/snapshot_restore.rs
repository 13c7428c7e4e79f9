//! Snapshot and restore against real /dev/kvm: a tiny guest counts in memory, in a
//! register and on COM1; flint-vmm snapshots it mid-run on SIGUSR1, and new flint-vmm
//! processes restored from the snapshot continue exactly where it stopped.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{elf_image, run_vmm, vmm_bin, Run};

const DEADLINE: Duration = Duration::from_secs(30);
/// Iterations of the counting guest.
const LIMIT: u32 = 60_000;
/// Serial bytes to wait for before asking for the snapshot.
const SNAPSHOT_AFTER: usize = 3_000;
/// The counting guest's exit byte when memory and register counters agree at the end.
const COUNT_OK: i32 = 0x2d;

/// 32-bit PVH code (assembled with `as --32`):
/// ```text
///     mov $0x3f8, %dx
///     xor %ecx, %ecx
/// 1:  incl 0x200000            # counter in guest memory
///     inc %ecx                 # the same counter in a register
///     mov %ecx, %eax
///     and $0x3f, %al
///     add $0x30, %al
///     out %al, %dx             # '0' + (count & 63) on COM1
///     cmp $60000, %ecx
///     jne 1b
///     cmp 0x200000, %ecx       # both counters agree?
///     jne 2f
///     mov $0x2d, %al
///     out %al, $0xf4           # yes: exit 45
/// 2:  mov $0x30, %al
///     out %al, $0xf4           # no: exit 48
/// 3:  hlt
///     jmp 3b
/// ```
const COUNTER: &[u8] = &[
    0x66, 0xba, 0xf8, 0x03, 0x31, 0xc9, 0xff, 0x05, 0x00, 0x00, 0x20, 0x00, 0x41, 0x89, 0xc8, 0x24,
    0x3f, 0x04, 0x30, 0xee, 0x81, 0xf9, 0x60, 0xea, 0x00, 0x00, 0x75, 0xea, 0x3b, 0x0d, 0x00, 0x00,
    0x20, 0x00, 0x75, 0x04, 0xb0, 0x2d, 0xe6, 0xf4, 0xb0, 0x30, 0xe6, 0xf4, 0xf4, 0xeb, 0xfd,
];

/// Everything the counting guest prints in a full run.
fn expected_output() -> String {
    (1..=LIMIT)
        .map(|c| char::from(b'0' + (c & 0x3f) as u8))
        .collect()
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

/// Waits for `child` to end within `deadline`; kills it and panics with `log` otherwise.
fn wait(child: &mut Child, deadline: Duration, log: &Path) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "flint-vmm did not finish within {deadline:?}; serial log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Boots the counting guest with `--snapshot-to dir/snap`, sends SIGUSR1 once it has
/// printed [`SNAPSHOT_AFTER`] bytes, and returns the snapshot directory and what the
/// guest printed before it.
fn snapshot_mid_run(dir: &Path) -> (PathBuf, String) {
    let kernel = dir.join("counter.elf");
    std::fs::write(&kernel, elf_image(COUNTER, true)).expect("write guest");
    let serial = dir.join("before.serial");
    let snap = dir.join("snap");
    let mut child = Command::new(vmm_bin())
        .args([
            "--kernel",
            path_str(&kernel),
            "--mem-mib",
            "128",
            "--serial-log",
            path_str(&serial),
            "--snapshot-to",
            path_str(&snap),
        ])
        .env("FLINT_VMM_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("flint-vmm starts");
    let started = Instant::now();
    loop {
        let printed = std::fs::metadata(&serial).map(|m| m.len()).unwrap_or(0);
        if printed as usize >= SNAPSHOT_AFTER {
            break;
        }
        if let Some(status) = child.try_wait().expect("wait") {
            panic!("the guest ended ({status}) before the snapshot: raise LIMIT");
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the guest printed only {printed} bytes within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    // SAFETY: plain kill(2) of our own child process, which has not been reaped yet.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGUSR1) }, 0, "kill");
    let status = wait(&mut child, DEADLINE, &serial);
    let output = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        status.code(),
        Some(5),
        "a snapshot ends the VM with status 5; stdout: {stdout}; stderr: {stderr}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("summary JSON");
    assert_eq!(summary["reason"], "snapshot", "{summary}");
    let before = std::fs::read_to_string(&serial).expect("serial log");
    assert!(
        before.len() >= SNAPSHOT_AFTER && before.len() < LIMIT as usize,
        "snapshot taken mid-run: {} bytes printed",
        before.len()
    );
    (snap, before)
}

fn restore(snap: &Path, dir: &Path, name: &str) -> (Run, PathBuf) {
    let serial = dir.join(format!("{name}.serial"));
    let timings = dir.join(format!("{name}.timings.json"));
    let run = run_vmm(
        &[
            "--restore-from",
            path_str(snap),
            "--serial-log",
            path_str(&serial),
            "--timings",
            path_str(&timings),
        ],
        Some(&serial),
        DEADLINE,
    );
    (run, serial)
}

#[test]
fn counting_guest_continues_exactly_where_the_snapshot_stopped_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (snap, before) = snapshot_mid_run(dir.path());
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(snap.join("state.json")).expect("state file"),
    )
    .expect("state JSON");
    assert_eq!(state["format"], "flint-vmm-snapshot");
    assert_eq!(state["version"], 1);
    assert_eq!(
        std::fs::metadata(snap.join("memory"))
            .expect("memory")
            .len(),
        128 << 20
    );

    let expected = expected_output();
    // Two restores from the same files: the first one's writes must not reach the
    // snapshot (the memory file is mapped privately).
    for name in ["first", "second"] {
        let (run, _) = restore(&snap, dir.path(), name);
        assert_eq!(
            run.status,
            Some(COUNT_OK),
            "{name} restore: memory and register counters agree at the end: {run:?}"
        );
        let combined = format!("{before}{}", run.serial);
        assert_eq!(
            combined.len(),
            expected.len(),
            "{name}: no byte lost or repeated"
        );
        assert!(combined == expected, "{name}: the count continues in order");
        let summary = run.summary.as_ref().expect("summary");
        assert!(summary["timings"]["first_guest_instruction_us"]
            .as_u64()
            .is_some());
    }
}

fn edited_copy(snap: &Path, dir: &Path, edit: impl Fn(&mut serde_json::Value)) -> PathBuf {
    let copy = dir.join("edited");
    std::fs::create_dir_all(&copy).expect("mkdir");
    std::fs::copy(snap.join("memory"), copy.join("memory")).expect("copy memory");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(snap.join("state.json")).expect("state"))
            .expect("JSON");
    edit(&mut state);
    std::fs::write(copy.join("state.json"), state.to_string()).expect("write");
    copy
}

#[test]
fn snapshots_of_another_version_or_cpu_model_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (snap, _) = snapshot_mid_run(dir.path());

    let other_version = edited_copy(&snap, dir.path(), |s| s["version"] = 2.into());
    let (run, _) = restore(&other_version, dir.path(), "version");
    assert_eq!(run.status, Some(1), "{run:?}");
    assert!(
        run.stderr
            .contains("snapshot format version 2 cannot be restored"),
        "{}",
        run.stderr
    );

    let other_cpu = edited_copy(&snap, dir.path(), |s| {
        s["host_cpu"]["signature"] = 0x1234_5678u32.into()
    });
    let (run, _) = restore(&other_cpu, dir.path(), "cpu");
    assert_eq!(run.status, Some(1), "{run:?}");
    assert!(
        run.stderr.contains("taken on CPU model") && run.stderr.contains("0x12345678"),
        "{}",
        run.stderr
    );

    let run = run_vmm(
        &["--restore-from", path_str(&snap), "--mem-mib", "256"],
        None,
        DEADLINE,
    );
    assert_eq!(run.status, Some(1), "{run:?}");
    assert!(run.stderr.contains("only --serial-log"), "{}", run.stderr);
}
