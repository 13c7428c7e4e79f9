//! Parked launchers (`--parked-launchers`, issue 15 item 1): an empty-pool cold start
//! takes a flint-init launcher that already waits in a cgroup of its own; the sandbox
//! it becomes has the function's memory cap and the pid limit, and parked launchers
//! leave nothing behind when flintd stops or is killed.

use flint_integration::*;
use flint_proto::v1::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Allocates `mb` MB (touched), returns how much it held.
const HOG: &str = "def handler(e, c):\n    hog = [bytearray(1024 * 1024) for _ in range(e['mb'])]\n    for b in hog:\n        b[0] = 1\n    return len(hog)\n";

fn v1() -> bool {
    Path::new("/sys/fs/cgroup/memory").is_dir()
}

/// The directory of cgroup `name` (a file name under the agent's parent) for `controller`.
fn dir(agent: &TestAgent, controller: &str, name: &str) -> PathBuf {
    let root = Path::new("/sys/fs/cgroup");
    if v1() {
        root.join(controller).join(&agent.cgroup_parent).join(name)
    } else {
        root.join(&agent.cgroup_parent).join(name)
    }
}

fn names(dirs: &[PathBuf]) -> BTreeSet<String> {
    dirs.iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect()
}

fn procs(d: &Path) -> Vec<i32> {
    std::fs::read_to_string(d.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn alive(pid: i32) -> bool {
    // A zombie has no memory map left: count it as gone.
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|s| {
            !s.lines()
                .any(|l| l.starts_with("State:") && l.contains('Z'))
        })
        .unwrap_or(false)
}

/// Waits until the running flintd has `n` launchers parked (their cgroups exist and
/// each holds one process); returns their names and pids. Fails after 10 s.
async fn wait_parked(agent: &TestAgent, n: usize) -> Vec<(String, i32)> {
    let t0 = Instant::now();
    loop {
        let parked: Vec<(String, i32)> = names(&agent.parked_cgroups())
            .into_iter()
            .filter_map(|name| {
                let p = procs(&dir(agent, "pids", &name));
                (p.len() == 1).then(|| (name, p[0]))
            })
            .collect();
        if parked.len() == n {
            return parked;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{n} parked launchers expected, have {parked:?} (cgroups: {:?})",
            agent.all_cgroups()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_cold_start_from_a_parked_launcher_has_the_functions_limits() {
    if test_backend() != "namespace" {
        eprintln!(
            "parked launchers are a namespace-sandbox feature; backend here: {}",
            test_backend()
        );
        return;
    }
    let agent = TestAgent::start_args(300, &["--pool-max", "0", "--parked-launchers", "2"]).await;
    let parked = wait_parked(&agent, 2).await;
    let mut c = agent.client().await;
    let req = CreateFunctionRequest {
        memory_mb: 256,
        timeout_s: 30,
        ..python_function("hog", HOG)
    };
    c.functions.create_function(req).await.unwrap();
    let before = names(&agent.sandbox_cgroups());
    // More than the parked cgroup's 128 MB: the function's own cap was written.
    let r = invoke_ok(&mut c, "hog", r#"{"mb": 150}"#).await;
    assert_eq!(json(&r), 150);
    let after = names(&agent.sandbox_cgroups());
    let new: Vec<&String> = after.difference(&before).collect();
    assert_eq!(
        new.len(),
        1,
        "one new sandbox expected: {before:?} -> {after:?}"
    );
    let id = new[0];
    assert!(id.starts_with("sbx-") && !id.contains("parked"), "{id}");
    // The sandbox's launcher is one of the launchers that were parked.
    let launcher_pids: Vec<i32> = parked.iter().map(|(_, p)| *p).collect();
    let in_sandbox = procs(&dir(&agent, "pids", id));
    assert!(
        in_sandbox.iter().any(|p| launcher_pids.contains(p)),
        "the sandbox's processes {in_sandbox:?} include none of the parked launchers {parked:?}"
    );
    let read = |controller: &str, file: &str| {
        let f = dir(&agent, controller, id).join(file);
        std::fs::read_to_string(&f)
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()))
            .trim()
            .to_string()
    };
    if v1() {
        assert_eq!(
            read("memory", "memory.limit_in_bytes"),
            (256u64 << 20).to_string()
        );
    } else {
        assert_eq!(read("memory", "memory.max"), (256u64 << 20).to_string());
    }
    assert_eq!(read("pids", "pids.max"), "1024");
    // Beyond the cap: the kernel's OOM killer, reported as on Lambda.
    let r = invoke(&mut c, "hog", r#"{"mb": 1000}"#).await;
    assert_eq!(r.function_error, "Unhandled");
    assert_eq!(
        json(&r)["errorType"],
        "Runtime.OutOfMemory",
        "{:?}",
        json(&r)
    );
    // The refill parks another in place of the one taken.
    let now = wait_parked(&agent, 2).await;
    assert!(
        now.iter().any(|p| !parked.contains(p)),
        "no launcher parked after one was taken: {parked:?} -> {now:?}"
    );
    let leaked = agent.wait_all_accounted(Duration::from_secs(10)).await;
    assert_eq!(leaked, 0, "sandboxes the agent does not account for");
}

#[tokio::test]
async fn parked_launchers_leave_nothing_after_stop_or_kill() {
    if test_backend() != "namespace" {
        eprintln!(
            "parked launchers are a namespace-sandbox feature; backend here: {}",
            test_backend()
        );
        return;
    }
    let mut agent =
        TestAgent::start_args(300, &["--pool-max", "0", "--parked-launchers", "3"]).await;
    let parked = wait_parked(&agent, 3).await;
    let st = agent.stop();
    assert!(st.success(), "flintd exit status {st}");
    let left = agent.all_cgroups();
    assert!(left.is_empty(), "cgroups left after stop: {left:?}");
    for (name, pid) in &parked {
        assert!(
            !alive(*pid),
            "parked launcher {pid} ({name}) survived the stop"
        );
    }

    // Killed: the parked launchers see end of file and exit by themselves; the next
    // flintd removes their cgroups.
    agent.restart_after_kill().await;
    let parked = wait_parked(&agent, 3).await;
    let pid = nix::unistd::Pid::from_raw(agent.pid() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    let t0 = Instant::now();
    while parked.iter().any(|(_, p)| alive(*p)) {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "parked launchers outlived their killed flintd: {parked:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    agent.restart_after_kill().await;
    let old: BTreeSet<String> = parked.into_iter().map(|(n, _)| n).collect();
    let t0 = Instant::now();
    loop {
        let stale: Vec<String> = names(&agent.all_cgroups())
            .intersection(&old)
            .cloned()
            .collect();
        if stale.is_empty() {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "a killed flintd's parked cgroups were not swept: {stale:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let st = agent.stop();
    assert!(st.success(), "flintd exit status {st}");
    let left = agent.all_cgroups();
    assert!(left.is_empty(), "cgroups left after stop: {left:?}");
}
