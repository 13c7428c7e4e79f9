//! Invalid configurations end flint-vmm with status 1 and a message that says what to fix.

mod common;

use std::time::Duration;

use common::run_vmm;

fn fails_with(args: &[&str], needle: &str) {
    let run = run_vmm(args, None, Duration::from_secs(30));
    assert_eq!(run.status, Some(1), "{run:?}");
    assert!(
        run.stderr.contains(needle),
        "stderr lacks {needle:?}: {}",
        run.stderr
    );
    assert!(
        run.summary.is_none(),
        "no VM ran, so no summary: {}",
        run.stdout
    );
}

#[test]
fn missing_kernel_flag() {
    fails_with(&[], "pass --kernel PATH");
}

#[test]
fn kernel_file_missing() {
    fails_with(
        &["--kernel", "/nonexistent/vmlinux"],
        "kernel /nonexistent/vmlinux",
    );
}

#[test]
fn memory_out_of_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kernel = dir.path().join("k");
    std::fs::write(&kernel, common::elf_image(&[0xf4], true)).expect("write");
    let k = kernel.to_str().expect("utf8");
    fails_with(
        &["--kernel", k, "--mem-mib", "100000"],
        "memory 100000 MiB is out of range",
    );
    fails_with(&["--kernel", k, "--vcpus", "0"], "vcpus 0 is out of range");
}

#[test]
fn rootfs_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kernel = dir.path().join("k");
    std::fs::write(&kernel, common::elf_image(&[0xf4], true)).expect("write");
    fails_with(
        &[
            "--kernel",
            kernel.to_str().expect("utf8"),
            "--rootfs",
            "/nonexistent.ext4",
        ],
        "root file system /nonexistent.ext4",
    );
}

#[test]
fn unloadable_kernel_names_both_formats() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kernel = dir.path().join("junk");
    std::fs::write(&kernel, vec![0x55u8; 4096]).expect("write");
    fails_with(&["--kernel", kernel.to_str().expect("utf8")], "as bzImage");
}

#[test]
fn config_file_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    fails_with(
        &["--config", "/nonexistent/vm.json"],
        "cannot read config file",
    );
    let bad = dir.path().join("vm.json");
    std::fs::write(&bad, "{\"kernel\": 5}").expect("write");
    fails_with(
        &["--config", bad.to_str().expect("utf8")],
        "invalid config file",
    );
    fails_with(
        &["--config", bad.to_str().expect("utf8"), "--mem-mib", "64"],
        "either --config or VM flags",
    );
}

#[test]
fn config_file_boots_a_guest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kernel = dir.path().join("k");
    // 32-bit PVH code: mov $0x11, %al; out %al, $0xf4; hlt
    std::fs::write(
        &kernel,
        common::elf_image(&[0xb0, 0x11, 0xe6, 0xf4, 0xf4], true),
    )
    .expect("write");
    let config = dir.path().join("vm.json");
    let json = serde_json::json!({"kernel": kernel, "mem_mib": 64, "serial_log": dir.path().join("s.log")});
    std::fs::write(&config, json.to_string()).expect("write");
    let run = run_vmm(
        &["--config", config.to_str().expect("utf8")],
        None,
        Duration::from_secs(30),
    );
    assert_eq!(run.status, Some(0x11), "{run:?}");
}

#[test]
fn unknown_flag_exits_1_not_the_reset_status() {
    fails_with(&["--no-such-flag"], "--no-such-flag");
    fails_with(&["--mem-mib", "lots"], "invalid value 'lots'");
}

#[test]
fn help_succeeds() {
    let run = run_vmm(&["--help"], None, Duration::from_secs(30));
    assert_eq!(run.status, Some(0));
    assert!(run.stdout.contains("--vsock-uds"), "{}", run.stdout);
}

#[test]
fn restore_needs_a_snapshot_directory_with_a_state_file() {
    fails_with(
        &["--restore-from", "/nonexistent/snap"],
        "snapshot directory /nonexistent/snap does not exist",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf8");
    fails_with(&["--restore-from", d], "cannot read snapshot state");
    std::fs::write(dir.path().join("state.json"), "{\"version\": 1}").expect("write");
    fails_with(
        &["--restore-from", d],
        "is not a flint-vmm snapshot state file",
    );
    fails_with(
        &["--restore-from", d, "--config", "/x.json"],
        "cannot be used with",
    );
    fails_with(
        &[
            "--snapshot-to",
            "/nonexistent/dir/snap",
            "--restore-from",
            d,
        ],
        "snapshot directory: directory of /nonexistent/dir/snap does not exist",
    );
}
