//! flintd refuses new work before its disk is full (issue 14, bounded disks): a real
//! flintd whose data directory is a 16 MiB tmpfs, mounted in a private mount namespace
//! this test creates (`unshare -m --propagation private`, so nothing changes on the
//! host and the mount disappears with flintd). Filled below `--min-free-disk-mb`,
//! CreateFunction, UpdateFunctionCode and Event invocations are refused with
//! RESOURCE_EXHAUSTED naming the directory, the free and the required space, while
//! synchronous invocations keep running; the disk metrics say the same; freeing the
//! space lifts the refusal.

use flint_agent::client::{connect, Client};
use flint_integration::*;
use flint_proto::v1::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// flintd in its own mount namespace with the data directory on a small tmpfs.
struct TmpfsAgent {
    child: Child,
    data_dir: PathBuf,
    socket: PathBuf,
    cgroup_parent: String,
    _tmp: tempfile::TempDir,
}

impl TmpfsAgent {
    async fn start(size_mb: u64, extra: &[&str]) -> TmpfsAgent {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data_dir = tmp.path().join("data");
        std::fs::create_dir(&data_dir).expect("mkdir data");
        let socket = tmp.path().join("flintd.sock");
        let cgroup_parent = format!("flint-test-disk-{}", std::process::id());
        // unshare execs sh, sh execs flintd: the child is flintd itself.
        let script = format!(
            "mount -t tmpfs -o size={size_mb}m flint-disk-test \"$1\" && shift && exec \"$@\""
        );
        let child = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &script, "sh"])
            .arg(&data_dir)
            .arg(binary("flintd"))
            .arg("--sandbox")
            .arg(test_backend())
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--socket")
            .arg(&socket)
            .arg("--images-dir")
            .arg(images_dir())
            .arg("--init-path")
            .arg(binary("flint-init"))
            .arg("--cgroup-parent")
            .arg(&cgroup_parent)
            .args(extra)
            .env(
                "FLINT_LOG",
                std::env::var("FLINT_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("unshare runs (util-linux)");
        let mut a = TmpfsAgent {
            child,
            data_dir,
            socket,
            cgroup_parent,
            _tmp: tmp,
        };
        let t0 = Instant::now();
        loop {
            if let Some(st) = a.child.try_wait().expect("wait") {
                panic!("flintd (in its mount namespace) exited during start-up: {st}");
            }
            if a.socket.exists() && connect(a.socket.to_str().unwrap()).await.is_ok() {
                return a;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "flintd did not start within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn client(&self) -> Client {
        connect(self.socket.to_str().unwrap())
            .await
            .expect("connect")
    }

    /// A path inside the data directory as flintd sees it (its mount namespace's
    /// tmpfs), reached through /proc/PID/root.
    fn inside(&self, rel: &str) -> PathBuf {
        Path::new(&format!("/proc/{}/root", self.child.id()))
            .join(self.data_dir.strip_prefix("/").unwrap())
            .join(rel)
    }
}

impl Drop for TmpfsAgent {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let t0 = Instant::now();
        while self.child.try_wait().ok().flatten().is_none() {
            if t0.elapsed() > Duration::from_secs(20) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // flintd removed its sandboxes' cgroups; the parents are left.
        for root in ["memory", "pids", "cpu", "cpuacct", "freezer", "unified"] {
            let _ = std::fs::remove_dir(
                Path::new("/sys/fs/cgroup")
                    .join(root)
                    .join(&self.cgroup_parent),
            );
        }
        let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(&self.cgroup_parent));
    }
}

async fn scrape(port: u16) -> String {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the metrics port");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
        .await
        .expect("scrape answered within 5 s")
        .unwrap();
    out
}

fn value(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in:\n{body}"))
}

const APP: &str = "def handler(e, c):\n    return {'ok': True}\n";

#[tokio::test]
async fn new_code_and_events_are_refused_below_the_disk_floor_and_sync_invokes_still_run() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let listen = format!("127.0.0.1:{port}");
    let agent = TmpfsAgent::start(
        16,
        &["--min-free-disk-mb", "6", "--metrics-listen", &listen],
    )
    .await;
    let mut c = agent.client().await;
    c.functions
        .create_function(python_function("steady", APP))
        .await
        .expect("create with room on the disk");
    invoke_ok(&mut c, "steady", "{}").await;

    // The metrics see the tmpfs: 16 MiB in all, flintd's own files in their parts.
    let m = scrape(port).await;
    let free = value(&m, "flint_disk_free_bytes");
    assert!(
        free > 6.0 * 1048576.0 && free <= 16.0 * 1048576.0,
        "free {free}\n{m}"
    );
    assert_eq!(value(&m, "flint_disk_min_free_bytes"), 6.0 * 1048576.0);
    assert!(
        value(&m, "flint_disk_used_bytes{part=\"code\"}") > 0.0,
        "{m}"
    );
    assert!(
        value(&m, "flint_disk_used_bytes{part=\"registry\"}") > 0.0,
        "{m}"
    );
    assert!(
        value(&m, "flint_disk_used_bytes{part=\"metering\"}") > 0.0,
        "{m}"
    );
    assert!(
        value(&m, "flint_disk_used_bytes{part=\"events\"}") > 0.0,
        "{m}"
    );
    assert_eq!(value(&m, "flint_disk_refusals_total"), 0.0);

    // Something else fills the file system until less than 6 MB is free.
    let filler = agent.inside("filler");
    let fill = (free as usize).saturating_sub(4 << 20);
    std::fs::write(&filler, vec![1u8; fill]).expect("fill the tmpfs through /proc/PID/root");
    let dir = agent.data_dir.display().to_string();
    let refused = |e: &tonic::Status, what: &str| {
        assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{what}: {e:?}");
        let msg = e.message();
        assert!(msg.starts_with(&format!("{what} refused")), "{msg}");
        assert!(msg.contains(&dir), "names the data directory: {msg}");
        assert!(msg.contains("MB free, below the 6 MB"), "{msg}");
        assert!(msg.contains("--min-free-disk-mb"), "{msg}");
    };
    let e = c
        .functions
        .create_function(python_function("late", APP))
        .await
        .unwrap_err();
    refused(&e, "CreateFunction");
    let e = c
        .functions
        .update_function_code(UpdateFunctionCodeRequest {
            name: "steady".into(),
            code_zip: zip_files(&[("app.py", APP)]),
        })
        .await
        .unwrap_err();
    refused(&e, "UpdateFunctionCode");
    let e = c
        .invocations
        .invoke(InvokeRequest {
            function_name: "steady".into(),
            invocation_type: InvocationType::Event as i32,
            payload: b"{}".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    refused(&e, "an Event invocation");
    // Nothing half-made: the refused function does not exist.
    let e = c
        .functions
        .get_function(GetFunctionRequest {
            name: "late".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    // Synchronous invocations keep working, warm and cold.
    let r = invoke_ok(&mut c, "steady", "{}").await;
    assert_eq!(json(&r)["ok"], true);
    let m = scrape(port).await;
    assert!(value(&m, "flint_disk_free_bytes") < 6.0 * 1048576.0, "{m}");
    assert_eq!(value(&m, "flint_disk_refusals_total"), 3.0, "{m}");

    // Space given back: new work is accepted again.
    std::fs::remove_file(&filler).unwrap();
    c.functions
        .create_function(python_function("late", APP))
        .await
        .expect("create once the space is back");
    let r = c
        .invocations
        .invoke(InvokeRequest {
            function_name: "late".into(),
            invocation_type: InvocationType::Event as i32,
            payload: b"{}".to_vec(),
            ..Default::default()
        })
        .await
        .expect("event accepted once the space is back")
        .into_inner();
    assert_eq!(r.status_code, 202);
}
