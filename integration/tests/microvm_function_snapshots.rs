//! A function's own microVM snapshot, taken with its runtime started and waiting for
//! the function (java17's manifest allows it: `snapshot_runtime`), through a real
//! flintd on this host's /dev/kvm. The guest is the tiny one of tiny_guest/ (a real
//! Linux guest cannot run user space here): it answers Hello and Prepared, so the
//! build's Prepare is answered, and it never answers Configure, so every invocation
//! ends in the init timeout; what is shown is how flintd starts the VMs:
//!
//! - the function's first cold start boots one VM, sends it the runtime's Prepare,
//!   snapshots it once Prepared, and restores it; its next cold start only restores
//!   (`flint_microvm_starts_total{how="restore_runtime_waiting"}`);
//! - the snapshot is the function's (`java17-128mb-fn-...`), its key names the function
//!   and the Prepare;
//! - a function that sets JAVA_TOOL_OPTIONS (a start option: the runtime must start
//!   with it) restores the runtime's Hello snapshot instead, and the two snapshots
//!   stay side by side.
//!
//! The images directory is a temporary one: java17 there is python3.11's root disk
//! (attached, unread) under java17's manifest from the recipe. Needs python3.11's
//! rootfs.ext4 and flint-vmm built (`cargo build --workspace`).

mod tiny_guest;

use flint_agent::client::Client;
use flint_integration::*;
use flint_proto::v1::{CreateFunctionRequest, InvocationType, InvokeRequest, LogType};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tiny_guest::{snapshot_dirs, start_agent, starts};

/// An images directory with python3.11 (the real one) and java17 (python3.11's root
/// disk, java17's manifest).
fn images_with_java(dir: &Path) -> PathBuf {
    let real = images_dir();
    let images = dir.join("images");
    let java = images.join("java17");
    std::fs::create_dir_all(&java).unwrap();
    std::os::unix::fs::symlink(real.join("python3.11"), images.join("python3.11")).unwrap();
    let python = real.join("python3.11");
    std::os::unix::fs::symlink(python.join("rootfs"), java.join("rootfs")).unwrap();
    std::os::unix::fs::symlink(python.join("rootfs.ext4"), java.join("rootfs.ext4")).unwrap();
    let recipe = Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/runtimes/java17");
    std::fs::copy(recipe.join("runtime.json"), java.join("runtime.json")).unwrap();
    images
}

fn java_function(name: &str, env: &[(&str, &str)]) -> CreateFunctionRequest {
    CreateFunctionRequest {
        name: name.into(),
        runtime: "java17".into(),
        handler: "example.Handler::handleRequest".into(),
        memory_mb: 128,
        timeout_s: 3,
        code_zip: zip_files(&[("example/Handler.class", "not run")]),
        environment: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

/// Invokes `name` once; the tiny guest never gets the runtime ready, so the start
/// fails. Returns what flintd said.
async fn invoke_failing(c: &mut Client, name: &str) -> String {
    let r = c
        .invocations
        .invoke(InvokeRequest {
            function_name: name.into(),
            invocation_type: InvocationType::RequestResponse as i32,
            log_type: LogType::Tail as i32,
            payload: b"{}".to_vec(),
            client_context: String::new(),
        })
        .await;
    match r {
        Ok(r) => {
            let r = r.into_inner();
            assert_ne!(
                r.function_error,
                "",
                "the tiny guest has no runtime, yet {name} answered {:?}",
                String::from_utf8_lossy(&r.payload)
            );
            String::from_utf8_lossy(&r.payload).into_owned()
        }
        Err(status) => status.message().to_string(),
    }
}

#[tokio::test]
async fn a_functions_cold_starts_restore_its_runtime_waiting() {
    let tmp = tempfile::tempdir().unwrap();
    let images = images_with_java(tmp.path());
    // This binary's only test: the variable names its images directory.
    std::env::set_var("FLINT_IMAGES_DIR", &images);
    let (agent, _vm_dir, metrics) = start_agent(tmp.path(), "tiny-fn", &["--pool-max", "0"]).await;
    let mut c = agent.client().await;
    for f in [
        java_function("orders", &[]),
        java_function("tuned", &[("JAVA_TOOL_OPTIONS", "-Xss512k")]),
    ] {
        c.functions.create_function(f).await.expect("create");
    }

    let t0 = Instant::now();
    let said = invoke_failing(&mut c, "orders").await;
    let s = starts(&metrics);
    assert_eq!(
        (s["snapshot_build"], s["restore_runtime_waiting"], s["restore"], s["boot"]),
        (1, 1, 0, 0),
        "the first cold start builds the function's snapshot and restores it: {s:?}; flintd said {said:?}"
    );
    let dirs = snapshot_dirs(&agent.data_dir);
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let name = dirs[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("java17-128mb-fn-"), "{name}");
    let key = std::fs::read_to_string(dirs[0].join("flint-snapshot-key.txt")).unwrap();
    assert!(key.contains("function=\"orders\""), "{key}");
    assert!(
        key.contains("runtime_waiting bootstrap=[\"/var/runtime/bootstrap\"] runtime=\"java17\" memory_mb=128"),
        "{key}"
    );

    invoke_failing(&mut c, "orders").await;
    let s = starts(&metrics);
    assert_eq!(
        (
            s["snapshot_build"],
            s["restore_runtime_waiting"],
            s["restore"]
        ),
        (1, 2, 0),
        "the next cold start only restores: {s:?}"
    );

    // A start option: the runtime starts after the restore, from the Hello snapshot.
    invoke_failing(&mut c, "tuned").await;
    let s = starts(&metrics);
    assert_eq!(
        (
            s["snapshot_build"],
            s["restore_runtime_waiting"],
            s["restore"]
        ),
        (2, 2, 1),
        "{s:?}"
    );
    let dirs = snapshot_dirs(&agent.data_dir);
    let names: Vec<String> = dirs
        .iter()
        .map(|d| d.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "both snapshots kept: {names:?}");
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("java17-128mb-") && !n.contains("-fn-")),
        "{names:?}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(100),
        "three starts of at most the 10 s init timeout each"
    );
    drop(agent);
}
