//! The microVM backend through a real flintd: `auto` chooses with a reason, and
//! `--sandbox microvm` boots the real guest kernel with the python3.11 image as an
//! ext4 root on our virtio-blk and flint-init as /sbin/init.
//!
//! On hosts whose /dev/kvm is the nested kvm_pvm hypervisor (these CI machines) Linux
//! user space cannot run in a guest, so the invocation must fail cleanly after the
//! guest reached /sbin/init, and the test checks exactly that from the serial log. On
//! hardware KVM the same test expects the invocation to succeed.
//! Needs: images/kernel/build.sh, and images/build-ext4.sh python3.11 <static flint-init>
//! (test.sh does both).

use flint_integration::*;
use flint_proto::v1::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

#[tokio::test]
async fn auto_backend_choice_matches_the_host() {
    let agent = TestAgent::start_args(
        300,
        &["--sandbox", "auto", "--kernel", kernel().to_str().unwrap()],
    )
    .await;
    let cap = agent.capacity().await;
    if nested_pvm() {
        assert_eq!(
            cap.sandbox_backend, "namespace",
            "auto must not pick microvm on kvm_pvm"
        );
    } else if Path::new("/dev/kvm").exists() {
        assert_eq!(
            cap.sandbox_backend, "microvm",
            "hardware KVM and a kernel: auto picks microvm"
        );
    } else {
        assert_eq!(cap.sandbox_backend, "namespace");
    }
}

#[tokio::test]
async fn microvm_backend_boots_the_guest_kernel_to_flint_init() {
    let disk = images_dir().join("python3.11/rootfs.ext4");
    assert!(
        disk.is_file(),
        "{} is missing: run images/build-ext4.sh python3.11 <static flint-init>",
        disk.display()
    );
    let vm_dir = tempfile::tempdir().unwrap();
    let agent = TestAgent::start_args(
        300,
        &[
            "--sandbox",
            "microvm",
            "--kernel",
            kernel().to_str().unwrap(),
            "--vm-run-dir",
            vm_dir.path().to_str().unwrap(),
            "--vm-boot-timeout",
            "400",
            "--pool-max",
            "0",
        ],
    )
    .await;
    let mut c = agent.client().await;
    let cap = agent.capacity().await;
    assert_eq!(cap.sandbox_backend, "microvm");
    c.functions
        .create_function(python_function(
            "vm-hello",
            "def handler(e, c):\n    return 'from a microVM'\n",
        ))
        .await
        .unwrap();
    let result = tokio::time::timeout(
        Duration::from_secs(480),
        c.invocations.invoke(InvokeRequest {
            function_name: "vm-hello".into(),
            ..Default::default()
        }),
    )
    .await
    .expect("the invocation must end within the boot timeout");
    if nested_pvm() {
        let err = result.expect_err("user space cannot run in a guest on kvm_pvm");
        assert_eq!(err.code(), tonic::Code::Unavailable, "{}", err.message());
        assert!(
            err.message().contains("before flint-init connected"),
            "{}",
            err.message()
        );
        let failed: Vec<_> = std::fs::read_dir(vm_dir.path().join("failed"))
            .unwrap()
            .flatten()
            .collect();
        assert_eq!(failed.len(), 1, "the failed boot's serial log must be kept");
        let log = std::fs::read_to_string(failed[0].path()).unwrap();
        for needle in [
            "virtio-mmio",
            "[vda]",
            "VFS: Mounted root (ext4 filesystem) readonly",
            "Run /sbin/init as init process",
        ] {
            assert!(log.contains(needle), "serial log lacks {needle:?}:\n{log}");
        }
    } else {
        let r = result
            .expect("invoke over the microVM backend")
            .into_inner();
        assert_eq!(json(&r), "from a microVM");
    }
    // Nothing is left: no VMM process, cgroup or per-VM directory.
    let left = agent.wait_no_sandboxes(Duration::from_secs(10)).await;
    assert!(left.is_empty(), "{left:?}");
    let dirs: Vec<_> = std::fs::read_dir(vm_dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != "failed")
        .collect();
    assert!(dirs.is_empty(), "per-VM directories left: {dirs:?}");
}
