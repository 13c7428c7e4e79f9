//! Code and /tmp outside the memory limit (issue 14, item 3), through a real flintd
//! with the namespace sandbox: a 49 MB bundle of incompressible data runs at 128 MB;
//! its unpacked directory on the host is shared by every instance, read-only, and
//! removed once the function is deleted and its instances are gone; /tmp is a disk
//! of its own (512 MB) that takes more than the memory size without an OOM and says
//! ENOSPC just past its size; nothing (mounts, loop devices, image files) remains
//! after flintd stops or after a kill -9 and a restart.

use flint_integration::*;
use flint_proto::v1::{CreateFunctionRequest, DeleteFunctionRequest};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const APP: &str = r#"
import os, time
def handler(event, context):
    op = event.get("op")
    if op == "info":
        time.sleep(event.get("sleep", 0))
        st = os.stat("/var/task/blob.bin")
        try:
            open("/var/task/new", "w")
            ro = 0
        except OSError as e:
            ro = e.errno
        with open("/dev/shm/probe", "w") as f:
            f.write("shm")
        shm = os.path.exists("/tmp/probe")
        return {"ino": st.st_ino, "dev": st.st_dev, "size": st.st_size, "ro_errno": ro, "shm_in_tmp": shm}
    if op == "fill":
        fd = os.open("/tmp/fill", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        chunk = b"\x5a" * (1 << 20)
        written, err = 0, 0
        try:
            while written < (2 << 30):
                written += os.write(fd, chunk)
            os.fsync(fd)
        except OSError as e:
            err = e.errno
        os.close(fd)
        os.unlink("/tmp/fill")
        return {"written": written, "errno": err}
"#;

/// Bytes of the blob in the bundle: with the zip's own overhead, just under
/// Lambda's 50 MB (52,428,800 bytes) zipped limit.
const BLOB: usize = 49 * 1024 * 1024;

/// A zip holding app.py and `BLOB` bytes of pseudo-random (incompressible) data,
/// stored uncompressed.
fn big_bundle() -> Vec<u8> {
    let mut data = vec![0u8; BLOB];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file("app.py", stored).unwrap();
    w.write_all(APP.as_bytes()).unwrap();
    w.start_file("blob.bin", stored).unwrap();
    w.write_all(&data).unwrap();
    w.finish().unwrap().into_inner()
}

fn unpacked_dirs(agent: &TestAgent) -> Vec<PathBuf> {
    match std::fs::read_dir(agent.data_dir.join("unpacked")) {
        // Names starting with a dot are the cache's own (`.empty`, the overlay's
        // second layer; directories being made or removed), not bundles.
        Ok(rd) => rd
            .map(|e| e.unwrap().path())
            .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// What a sandbox's /tmp or code could leave on the host: loop devices backed by a
/// file of the agent's data directory, mounts naming it, image files.
fn leftovers(data_dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let needle = data_dir.to_str().unwrap();
    if let Ok(rd) = std::fs::read_dir("/sys/block") {
        for e in rd.flatten() {
            if let Ok(b) = std::fs::read_to_string(e.path().join("loop/backing_file")) {
                if b.starts_with(needle) {
                    out.push(format!("loop device {:?} -> {}", e.file_name(), b.trim()));
                }
            }
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    out.extend(
        mounts
            .lines()
            .filter(|l| l.contains(needle))
            .map(|l| format!("mount {l}")),
    );
    if let Ok(rd) = std::fs::read_dir(data_dir.join("ephemeral")) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with("template-") {
                out.push(format!("file {name}"));
            }
        }
    }
    out
}

/// Waits until nothing is left (loop devices clear asynchronously).
fn wait_clean(data_dir: &Path, within: Duration) {
    let t0 = Instant::now();
    loop {
        let left = leftovers(data_dir);
        if left.is_empty() {
            return;
        }
        assert!(t0.elapsed() < within, "left behind: {left:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn create_big(name: &str) -> CreateFunctionRequest {
    let mut req = python_function(name, APP);
    req.code_zip = big_bundle();
    req.memory_mb = 128;
    req.timeout_s = 60;
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_49_mb_bundle_runs_at_128_mb_shared_read_only_and_collected() {
    let agent = TestAgent::start().await;
    let mut c = agent.client().await;
    let req = create_big("big");
    assert!(req.code_zip.len() > 49_000_000 && req.code_zip.len() <= 52_428_800);
    c.functions.create_function(req).await.expect("create");

    // Two instances at once (each call sleeps): one host directory serves both.
    let (mut c1, mut c2) = (agent.client().await, agent.client().await);
    let payload = r#"{"op":"info","sleep":1.5}"#;
    let (a, b) = tokio::join!(
        invoke_ok(&mut c1, "big", payload),
        invoke_ok(&mut c2, "big", payload)
    );
    assert_eq!(agent.instances_of("big").await, 2, "two instances expected");
    let dirs = unpacked_dirs(&agent);
    assert_eq!(dirs.len(), 1, "one unpacked directory: {dirs:?}");
    let host = std::fs::metadata(dirs[0].join("blob.bin")).unwrap();
    for r in [json(&a), json(&b)] {
        assert_eq!(r["size"], BLOB as u64, "{r}");
        assert_eq!(
            r["ino"],
            host.ino(),
            "instance sees the host directory: {r}"
        );
        // Through an overlay of its own (no host path in its mountinfo): the same
        // inode of the same host file system, shown on the overlay's device.
        assert_ne!(r["dev"], host.dev(), "{r}");
        assert_eq!(r["ro_errno"], 30, "/var/task must be read-only: {r}");
        assert_eq!(r["shm_in_tmp"], true, "/dev/shm must lead into /tmp: {r}");
    }

    // Deleted: the directory goes once the instances are gone.
    c.functions
        .delete_function(DeleteFunctionRequest {
            name: "big".into(),
            ..Default::default()
        })
        .await
        .expect("delete");
    let t0 = Instant::now();
    while !unpacked_dirs(&agent).is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "unpacked code still there after delete: {:?}",
            unpacked_dirs(&agent)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tmp_is_a_512_mb_disk_not_memory() {
    let agent = TestAgent::start().await;
    let mut c = agent.client().await;
    let mut req = python_function("filler", APP);
    req.memory_mb = 128;
    req.timeout_s = 60;
    c.functions.create_function(req).await.expect("create");
    let r = json(&invoke_ok(&mut c, "filler", r#"{"op":"fill"}"#).await);
    let written = r["written"].as_u64().unwrap();
    let mb = 1024 * 1024;
    assert_eq!(r["errno"], 28, "{r}");
    assert!(written > 128 * mb, "more than the memory size fits: {r}");
    assert!(
        written >= 512 * mb && written < 512 * mb + 24 * mb,
        "ENOSPC just past 512 MB, not at {written}"
    );
    // The same instance again (no OOM killed it).
    let r2 = json(&invoke_ok(&mut c, "filler", r#"{"op":"fill"}"#).await);
    assert_eq!(r2["errno"], 28, "{r2}");
    assert_eq!(agent.instances_of("filler").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_remains_after_stop_or_kill_and_restart() {
    let mut agent = TestAgent::start().await;
    let data = agent.data_dir.clone();
    let mut c = agent.client().await;
    let mut req = python_function("f", APP);
    req.timeout_s = 30;
    c.functions.create_function(req).await.expect("create");
    invoke_ok(&mut c, "f", "{}").await;
    // An instance and pool sandboxes hold /tmp disks now.
    assert!(
        !leftovers(&data).is_empty(),
        "expected live loop devices while instances run"
    );
    let pid = nix::unistd::Pid::from_raw(agent.pid() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    agent.restart_after_kill().await;
    let mut c = agent.client().await;
    invoke_ok(&mut c, "f", "{}").await;
    let st = agent.stop();
    assert!(st.success(), "flintd exited with {st}");
    wait_clean(&data, Duration::from_secs(10));
}
