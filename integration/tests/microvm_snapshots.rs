//! The microVM warm pool filled from snapshots, through a real flintd on this host's
//! /dev/kvm. The real guest kernel cannot run user space here (kvm_pvm), so the
//! "kernel" is a tiny guest that plays flint-init's part on the wire (tiny_guest/):
//! Hello, and Prepared, which the pool asks for next, again after each restore.
//!
//! Shown: the first pool sandbox comes from a boot + snapshot and the pool's sandboxes
//! from restores (`flint_microvm_starts_total`), every restored VM reconnected (`RCH`
//! on its serial log), a changed kernel file rebuilds the snapshot and deletes the old
//! one, and a corrupt snapshot falls back to a boot. Needs the python3.11 image's
//! rootfs.ext4 (attached, unread) and flint-vmm built (`cargo build --workspace`).

mod tiny_guest;

use flint_integration::*;
use std::path::Path;
use std::time::{Duration, Instant};
use tiny_guest::{guest_image, payload, serial_logs, snapshot_dirs, start_agent, starts};

/// Everything worth seeing when a wait fails.
fn diagnose(agent: &TestAgent, vm_dir: &Path, metrics: &str) -> String {
    let failed: Vec<String> = std::fs::read_dir(vm_dir.join("failed"))
        .map(|rd| {
            rd.flatten()
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    format!(
        "starts {:?}; serial logs {:?}; failed boots' logs {failed:?}; snapshots {:?}",
        starts(metrics),
        serial_logs(vm_dir),
        snapshot_dirs(&agent.data_dir)
    )
}

/// Waits (at most 30 s) until the 128 MB python3.11 pool holds `n` sandboxes.
async fn wait_pool(agent: &TestAgent, n: u32, vm_dir: &Path, metrics: &str) {
    let t0 = Instant::now();
    loop {
        let cap = agent.capacity().await;
        let ready = cap
            .pools
            .iter()
            .find(|p| p.runtime == "python3.11" && p.memory_mb == 128)
            .map_or(0, |p| p.ready);
        if ready >= n {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the pool never held {n} sandboxes: {cap:?}; {}",
            diagnose(agent, vm_dir, metrics)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_microvm_pool_is_filled_by_restoring_one_snapshot() {
    let disk = images_dir().join("python3.11/rootfs.ext4");
    assert!(
        disk.is_file(),
        "{} is missing: run images/build-ext4.sh python3.11 <static flint-init>",
        disk.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let (mut agent, vm_dir, metrics) =
        start_agent(tmp.path(), "tiny-1", &["--pool-warm", "python3.11:128=2"]).await;
    let kernel = tmp.path().join("hello-guest.elf");

    // One boot to Hello, snapshotted; both pool sandboxes restored from it.
    wait_pool(&agent, 2, &vm_dir, &metrics).await;
    let s = starts(&metrics);
    assert_eq!(
        s["snapshot_build"],
        1,
        "{}",
        diagnose(&agent, &vm_dir, &metrics)
    );
    assert_eq!(s["restore"], 2, "{s:?}");
    assert_eq!((s["boot"], s["restore_failed"]), (0, 0), "{s:?}");
    // The guest prints `H` only after its Hello is on the wire, so flintd may count the
    // VM ready before the letter reaches the serial log: give it a moment.
    let t0 = std::time::Instant::now();
    while serial_logs(&vm_dir).iter().any(|l| !l.ends_with('H'))
        && t0.elapsed() < Duration::from_secs(5)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for log in serial_logs(&vm_dir) {
        // Restored mid-idle: the reset seen, connected again, Hello sent again (an `H`
        // before it when the snapshot caught the guest between sending Hello and
        // printing so).
        assert!(
            log == "RCH" || log == "HRCH",
            "a restored VM must reconnect and say Hello again: {log:?}"
        );
    }
    let first = snapshot_dirs(&agent.data_dir);
    assert_eq!(first.len(), 1, "{first:?}");
    let name = first[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("python3.11-128mb-"), "{name}");
    let key = std::fs::read_to_string(first[0].join("flint-snapshot-key.txt")).unwrap();
    assert!(
        key.contains(&format!(
            "kernel={}",
            kernel.canonicalize().unwrap().display()
        )),
        "{key}"
    );
    assert!(first[0].join("state.json").is_file() && first[0].join("memory").is_file());

    // A restart keeps the snapshot: every start is a restore.
    agent.restart().await;
    wait_pool(&agent, 2, &vm_dir, &metrics).await;
    let s = starts(&metrics);
    assert_eq!(
        (s["snapshot_build"], s["restore"], s["boot"]),
        (0, 2, 0),
        "{s:?}"
    );
    assert_eq!(snapshot_dirs(&agent.data_dir), first);

    // Another kernel file: the snapshot is built again, the old one deleted.
    agent.stop();
    std::fs::write(&kernel, guest_image(&payload("tiny-2"))).unwrap();
    agent.restart_after_kill().await;
    wait_pool(&agent, 2, &vm_dir, &metrics).await;
    let s = starts(&metrics);
    assert_eq!(
        (s["snapshot_build"], s["restore"], s["boot"]),
        (1, 2, 0),
        "{s:?}"
    );
    let second = snapshot_dirs(&agent.data_dir);
    assert_eq!(second.len(), 1, "{second:?}");
    assert_ne!(second, first, "a changed kernel must give a new snapshot");

    // A corrupt snapshot: the restore fails, the VM is booted instead, counted.
    agent.stop();
    std::fs::write(second[0].join("state.json"), b"{ not a snapshot").unwrap();
    agent.restart_after_kill().await;
    wait_pool(&agent, 2, &vm_dir, &metrics).await;
    let s = starts(&metrics);
    assert!(s["restore_failed"] >= 1, "{s:?}");
    assert_eq!(
        s["boot"], s["restore_failed"],
        "each failed restore boots: {s:?}"
    );
    assert!(
        s["restore"] + s["boot"] >= 2,
        "both pool sandboxes started: {s:?}"
    );
    drop(agent);
}

#[tokio::test]
async fn with_vm_snapshots_off_every_microvm_boots() {
    let tmp = tempfile::tempdir().unwrap();
    let (agent, vm_dir, metrics) = start_agent(
        tmp.path(),
        "tiny-off",
        &["--vm-snapshots", "false", "--pool-warm", "python3.11:128=2"],
    )
    .await;
    wait_pool(&agent, 2, &vm_dir, &metrics).await;
    let s = starts(&metrics);
    assert_eq!(
        (s["boot"], s["snapshot_build"], s["restore"]),
        (2, 0, 0),
        "{s:?}"
    );
    for log in serial_logs(&vm_dir) {
        assert_eq!(log, "CH", "a booted VM connects once");
    }
    assert!(snapshot_dirs(&agent.data_dir).is_empty());
}
