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
//!
//! Also: the microVM backend's limits are checked where they are known (a memory size
//! flint-vmm refuses is refused at CreateFunction/UpdateFunctionConfiguration and in
//! `--pool-warm`), and a flint-vmm that refuses to start says why in the invocation's
//! error (its stderr tail).

use flint_integration::*;
use flint_proto::v1::*;
use std::os::unix::fs::PermissionsExt;
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

#[tokio::test]
async fn memory_beyond_flint_vmm_is_refused_at_create_and_update() {
    let agent = TestAgent::start_args(
        300,
        &[
            "--sandbox",
            "microvm",
            "--kernel",
            kernel().to_str().unwrap(),
            "--pool-max",
            "0",
        ],
    )
    .await;
    let mut c = agent.client().await;
    let mut big = python_function("big", "def handler(e, c):\n    return 1\n");
    big.memory_mb = 4096;
    let e = c
        .functions
        .create_function(big.clone())
        .await
        .expect_err("4096 MB accepted on microvm");
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{}", e.message());
    assert!(
        e.message()
            .contains("memory size 4096 MB exceeds the microvm sandbox backend's limit of 3328 MB"),
        "{}",
        e.message()
    );
    big.memory_mb = 3328;
    c.functions.create_function(big).await.unwrap();
    let e = c
        .functions
        .update_function_configuration(UpdateFunctionConfigurationRequest {
            name: "big".into(),
            memory_mb: Some(3329),
            ..Default::default()
        })
        .await
        .expect_err("3329 MB accepted on microvm");
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{}", e.message());
    assert!(e.message().contains("limit of 3328 MB"), "{}", e.message());
    let f = c
        .functions
        .get_function(GetFunctionRequest { name: "big".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (f.memory_mb, f.revision),
        (3328, 1),
        "the refused update changed nothing"
    );
}

#[test]
fn flintd_refuses_a_warm_pool_the_microvm_backend_cannot_start() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(binary("flintd"))
        .args(["--sandbox", "microvm", "--kernel"])
        .arg(kernel())
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .arg("--socket")
        .arg(tmp.path().join("flintd.sock"))
        .arg("--images-dir")
        .arg(images_dir())
        .arg("--init-path")
        .arg(binary("flint-init"))
        .arg("--vm-run-dir")
        .arg(tmp.path().join("vm"))
        .args(["--cgroup-parent", "flint-test-poolwarm"])
        .args(["--pool-warm", "python3.11:4096=1"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn flintd");
    let t0 = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "flintd started with a pool it cannot fill; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("--pool-warm python3.11:4096: memory size 4096 MB exceeds the microvm sandbox backend's limit of 3328 MB"),
        "{err}"
    );
}

#[tokio::test]
async fn a_vmm_that_refuses_to_start_says_why_in_the_invocation_error() {
    let disk = images_dir().join("python3.11/rootfs.ext4");
    assert!(
        disk.is_file(),
        "{} is missing: run images/build-ext4.sh python3.11 <static flint-init>",
        disk.display()
    );
    // A stand-in for flint-vmm that refuses the way flint-vmm does: a reason on stderr,
    // exit status 1.
    let tmp = tempfile::tempdir().unwrap();
    let vmm = tmp.path().join("refusing-vmm");
    std::fs::write(
        &vmm,
        "#!/bin/sh\necho 'flint-vmm: booting' >&2\necho 'flint-vmm: invalid configuration: refused for the test' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&vmm, std::fs::Permissions::from_mode(0o755)).unwrap();
    let agent = TestAgent::start_args(
        300,
        &[
            "--sandbox",
            "microvm",
            "--kernel",
            kernel().to_str().unwrap(),
            "--vmm-path",
            vmm.to_str().unwrap(),
            "--vm-run-dir",
            tmp.path().join("vm").to_str().unwrap(),
            "--pool-max",
            "0",
        ],
    )
    .await;
    let mut c = agent.client().await;
    c.functions
        .create_function(python_function(
            "refused",
            "def handler(e, c):\n    return 1\n",
        ))
        .await
        .unwrap();
    let e = tokio::time::timeout(
        Duration::from_secs(20),
        c.invocations.invoke(InvokeRequest {
            function_name: "refused".into(),
            ..Default::default()
        }),
    )
    .await
    .expect("the invocation must fail fast")
    .expect_err("a VMM that exits cannot run the function");
    assert_eq!(e.code(), tonic::Code::Unavailable, "{}", e.message());
    assert!(
        e.message().contains(
            "flint-vmm stderr: flint-vmm: booting | flint-vmm: invalid configuration: refused for the test"
        ),
        "{}",
        e.message()
    );
    let left = agent.wait_no_sandboxes(Duration::from_secs(10)).await;
    assert!(left.is_empty(), "{left:?}");
}
