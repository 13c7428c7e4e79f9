//! Snapshot and restore against real /dev/kvm: tiny guests count in memory, in a register
//! and on COM1 (one of them reading a virtio-blk disk per count, one driving virtio-vsock);
//! flint-vmm snapshots them mid-run on SIGUSR1, and new flint-vmm processes restored from
//! the snapshot continue exactly where they stopped.

mod common;

use std::io::Read;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::snapshot_guests::*;
use common::{elf_image, run_vmm, vmm_bin, Run};

const DEADLINE: Duration = Duration::from_secs(20);
/// Serial bytes to wait for before asking for the snapshot.
const SNAPSHOT_AFTER: usize = 3_000;

/// What a guest counting to `limit` prints: `'0' + (count & 63)` per count.
fn expected_output(limit: u32) -> String {
    (1..=limit)
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

/// Boots `code` (with `extra` flags) and `--snapshot-to dir/snap`, sends SIGUSR1 once it
/// has printed [`SNAPSHOT_AFTER`] bytes, and returns the snapshot directory and what the
/// guest printed before it.
fn snapshot_mid_run(dir: &Path, code: &[u8], extra: &[&str]) -> (PathBuf, String) {
    let kernel = dir.join("guest.elf");
    std::fs::write(&kernel, elf_image(code, true)).expect("write guest");
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
        .args(extra)
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
            panic!("the guest ended ({status}) before the snapshot: raise its count");
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
        before.len() >= SNAPSHOT_AFTER,
        "snapshot taken mid-run: {} bytes printed",
        before.len()
    );
    (snap, before)
}

fn restore(snap: &Path, dir: &Path, name: &str, extra: &[&str]) -> Run {
    let serial = dir.join(format!("{name}.serial"));
    let timings = dir.join(format!("{name}.timings.json"));
    let mut args = vec![
        "--restore-from",
        path_str(snap),
        "--serial-log",
        path_str(&serial),
        "--timings",
        path_str(&timings),
    ];
    args.extend_from_slice(extra);
    run_vmm(&args, Some(&serial), DEADLINE)
}

#[test]
fn counting_guest_continues_exactly_where_the_snapshot_stopped_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (snap, before) = snapshot_mid_run(dir.path(), COUNTER, &[]);
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

    let expected = expected_output(COUNTER_LIMIT);
    // Two restores from the same files: the first one's writes must not reach the
    // snapshot (the memory file is mapped privately).
    for name in ["first", "second"] {
        let run = restore(&snap, dir.path(), name, &[]);
        assert_eq!(
            run.status,
            Some(COUNTER_OK),
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

#[test]
fn two_vcpus_pause_and_restore_with_the_second_one_waiting_for_sipi() {
    // vCPU 1 never gets a SIPI: it sits in KVM_RUN inside the kernel, and only the kick
    // signal gets it out to pause.
    let dir = tempfile::tempdir().expect("tempdir");
    let (snap, before) = snapshot_mid_run(dir.path(), COUNTER, &["--vcpus", "2"]);
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(snap.join("state.json")).expect("state file"),
    )
    .expect("state JSON");
    assert_eq!(state["vcpus"].as_array().map(Vec::len), Some(2));
    let run = restore(&snap, dir.path(), "smp", &[]);
    assert_eq!(run.status, Some(COUNTER_OK), "{run:?}");
    assert!(format!("{before}{}", run.serial) == expected_output(COUNTER_LIMIT));
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
    let (snap, _) = snapshot_mid_run(dir.path(), COUNTER, &[]);

    let other_version = edited_copy(&snap, dir.path(), |s| s["version"] = 2.into());
    let run = restore(&other_version, dir.path(), "version", &[]);
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
    let run = restore(&other_cpu, dir.path(), "cpu", &[]);
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

#[test]
fn virtio_blk_reads_continue_with_the_queue_where_the_snapshot_left_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = dir.path().join("disk.img");
    let content: Vec<u8> = (0..2048u32)
        .flat_map(|s| std::iter::repeat_n((s & 0xff) as u8, 512))
        .collect();
    std::fs::write(&disk, content).expect("disk");
    let (snap, before) = snapshot_mid_run(dir.path(), BLK_READER, &["--rootfs", path_str(&disk)]);
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(snap.join("state.json")).expect("state file"),
    )
    .expect("state JSON");
    let virtio = &state["virtio"][0];
    assert_eq!(virtio["device_type"], 2, "{virtio}");
    assert_eq!(virtio["activated"], true);
    let used = virtio["positions"][0]["next_used"]
        .as_u64()
        .expect("position");
    let printed = before.len() as u64;
    assert!(
        used == printed || used == printed + 1,
        "one request completed per printed count (the last one may not be printed yet): \
         {used} used, {printed} printed"
    );

    let run = restore(&snap, dir.path(), "blk", &[]);
    assert_eq!(
        run.status,
        Some(BLK_OK),
        "every read after the restore returned its sector: {run:?}"
    );
    let combined = format!("{before}{}", run.serial);
    assert_eq!(
        combined.len(),
        BLK_READS as usize,
        "no request lost or repeated"
    );
    assert!(combined == expected_output(BLK_READS));
}

#[test]
fn restored_vsock_tells_the_guest_its_connections_are_gone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let uds = dir.path().join("v.sock");
    let (snap, before) = snapshot_mid_run(
        dir.path(),
        VSOCK_RESET_WAITER,
        &["--vsock-uds", path_str(&uds)],
    );
    let new_uds = dir.path().join("restored.sock");
    let run = restore(
        &snap,
        dir.path(),
        "vsock",
        &["--vsock-uds", path_str(&new_uds)],
    );
    assert_eq!(
        run.status,
        Some(VSOCK_RESET_SEEN),
        "the guest saw TRANSPORT_RESET with its counters intact: {run:?}"
    );
    let combined = format!("{before}{}", run.serial);
    assert!(
        expected_output(COUNTER_LIMIT).starts_with(&combined),
        "the count continued in order"
    );
    assert!(
        new_uds.exists(),
        "the restored device listened on the socket given to the restore"
    );
}

/// Accepts one connection on `listener` and reads it to its end, within [`DEADLINE`].
fn read_one_connection(listener: UnixListener) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let started = Instant::now();
        listener.set_nonblocking(true).expect("nonblocking");
        let mut stream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(started.elapsed() < DEADLINE, "no vsock connection came");
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        stream.set_nonblocking(false).expect("blocking");
        stream
            .set_read_timeout(Some(DEADLINE))
            .expect("read timeout");
        let mut data = Vec::new();
        stream
            .read_to_end(&mut data)
            .expect("read the guest's stream");
        data
    })
}

#[test]
fn vsock_stream_reconnects_after_restore_and_goes_on_from_where_it_was() {
    let dir = tempfile::tempdir().expect("tempdir");
    let uds = dir.path().join("before.sock");
    let new_uds = dir.path().join("after.sock");
    let listen = |uds: &Path| {
        let mut path = uds.as_os_str().to_owned();
        path.push(format!("_{VSOCK_STREAM_PORT}"));
        UnixListener::bind(PathBuf::from(path)).expect("listen for the guest")
    };
    let first = read_one_connection(listen(&uds));
    let second = read_one_connection(listen(&new_uds));
    let (snap, before) =
        snapshot_mid_run(dir.path(), VSOCK_STREAMER, &["--vsock-uds", path_str(&uds)]);
    let run = restore(
        &snap,
        dir.path(),
        "stream",
        &["--vsock-uds", path_str(&new_uds)],
    );
    assert_eq!(
        run.status,
        Some(VSOCK_STREAM_OK),
        "the guest reconnected after the reset and sent everything: {run:?}"
    );
    let expected = expected_output(VSOCK_STREAM_LEN);
    assert!(
        format!("{before}{}", run.serial) == expected,
        "the count continued in order on the serial port"
    );
    let first = String::from_utf8(first.join().expect("first reader")).expect("ascii");
    let second = String::from_utf8(second.join().expect("second reader")).expect("ascii");
    assert!(
        !first.is_empty() && expected.starts_with(&first),
        "the first connection carried the start of the stream ({} bytes)",
        first.len()
    );
    assert!(
        !second.is_empty() && expected.ends_with(&second),
        "the connection made after the restore carried the rest to the end ({} bytes)",
        second.len()
    );
    let lost = expected
        .len()
        .checked_sub(first.len() + second.len())
        .expect("no byte reached the host twice");
    assert!(
        lost <= 4,
        "at most the packets in flight at the snapshot are lost with the old connection: \
         {lost} bytes lost ({} + {} of {})",
        first.len(),
        second.len(),
        expected.len()
    );
}
