//! Sandbox cgroups never outlive the agent (issue 14): after a SIGKILL of flintd with
//! many busy sandboxes, the next flintd removes every one of them, retrying until
//! their processes are gone; and a stopping flintd sweeps any sandbox cgroup still
//! under its parent.

use flint_integration::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Makes an empty cgroup `name` under the agent's parent in the hierarchies the
/// agent uses, as a sandbox whose removal failed would leave.
fn fake_leftover(agent: &TestAgent, name: &str) -> Vec<PathBuf> {
    let v2 = !std::path::Path::new("/sys/fs/cgroup/memory").exists();
    let roots: Vec<PathBuf> = if v2 {
        vec![PathBuf::from("/sys/fs/cgroup").join(&agent.cgroup_parent)]
    } else {
        ["memory", "pids"]
            .iter()
            .map(|c| {
                PathBuf::from("/sys/fs/cgroup")
                    .join(c)
                    .join(&agent.cgroup_parent)
            })
            .collect()
    };
    roots
        .into_iter()
        .map(|r| {
            let d = r.join(name);
            std::fs::create_dir_all(&d).expect("make a cgroup");
            d
        })
        .collect()
}

/// A process in the leftover cgroup `dirs` that survives SIGKILL for `hold`: it is
/// frozen (cgroup v1 freezer; a frozen task dies only when thawed), as a sandbox
/// process stuck in the kernel would. Thawed and reaped by the returned thread.
/// None on hosts without the v1 freezer.
fn slow_to_die(
    dirs: &[PathBuf],
    name: &str,
    hold: Duration,
) -> Option<std::thread::JoinHandle<()>> {
    let freezer = PathBuf::from("/sys/fs/cgroup/freezer");
    if !freezer.join("cgroup.procs").exists() {
        return None;
    }
    let frz = freezer.join(format!("flint-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&frz).expect("freezer cgroup");
    let mut child = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .expect("spawn sleep");
    let pid = child.id().to_string();
    for d in dirs.iter().chain([&frz]) {
        std::fs::write(d.join("cgroup.procs"), &pid).expect("join cgroup");
    }
    std::fs::write(frz.join("freezer.state"), "FROZEN").expect("freeze");
    Some(std::thread::spawn(move || {
        std::thread::sleep(hold);
        let _ = std::fs::write(frz.join("freezer.state"), "THAWED");
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir(&frz);
    }))
}

#[tokio::test]
async fn stop_sweeps_leftover_sandbox_cgroups() {
    let mut agent = TestAgent::start_args(300, &["--pool-max", "0"]).await;
    let dirs = fake_leftover(&agent, "sbx-leftover000");
    // Not a sandbox: a shared --cgroup-parent may hold other cgroups; never touched.
    let others = fake_leftover(&agent, "someone-else");
    assert!(dirs.iter().all(|d| d.is_dir()));
    let st = agent.stop();
    assert!(st.success(), "flintd exit status {st}");
    let left: Vec<_> = dirs.iter().filter(|d| d.exists()).collect();
    assert!(left.is_empty(), "a stopped agent left {left:?}");
    let kept = others.iter().filter(|d| d.is_dir()).count();
    for d in &others {
        let _ = std::fs::remove_dir(d);
    }
    assert_eq!(
        kept,
        others.len(),
        "the sweep removed a cgroup that is not a sandbox"
    );
}

#[tokio::test]
async fn restart_after_sigkill_with_busy_sandboxes_removes_them_all() {
    const BUSY: usize = 40;
    let mut agent = TestAgent::start_args(300, &["--pool-max", "0"]).await;
    let mut c = agent.client().await;
    let mut req = python_function(
        "sleepy",
        "import time\ndef handler(e, c):\n    time.sleep(60)\n    return 1\n",
    );
    req.timeout_s = 120;
    c.functions.create_function(req).await.unwrap();
    // BUSY concurrent calls: each holds a sandbox until the agent dies.
    let mut calls = Vec::new();
    for _ in 0..BUSY {
        let mut c = agent.client().await;
        calls.push(tokio::spawn(async move {
            let _ = c
                .invocations
                .invoke(flint_proto::v1::InvokeRequest {
                    function_name: "sleepy".into(),
                    payload: b"{}".to_vec(),
                    ..Default::default()
                })
                .await;
        }));
    }
    let t0 = Instant::now();
    while agent.instances_of("sleepy").await < BUSY as u32 {
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "only {} of {BUSY} sandboxes started",
            agent.instances_of("sleepy").await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let before = agent.sandbox_count();
    assert!(
        before >= BUSY,
        "{before} sandbox cgroups for {BUSY} busy calls"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent.pid() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    for call in calls {
        let _ = call.await;
    }
    // One more leftover whose process takes 2.5 s to die after SIGKILL: start-up
    // must keep retrying, not try once and give up.
    let stuck = fake_leftover(&agent, "sbx-slowtodie00");
    let thaw = slow_to_die(&stuck, "slow", Duration::from_millis(2500));
    agent.restart_after_kill().await;
    let left = agent.wait_no_sandboxes(Duration::from_secs(30)).await;
    assert!(
        left.is_empty(),
        "{} of {before} sandbox cgroups survived the restart: {left:?}",
        left.len()
    );
    if let Some(t) = thaw {
        t.join().unwrap();
    }
    let st = agent.stop();
    assert!(st.success(), "flintd exit status {st}");
    assert!(agent.sandbox_cgroups().is_empty());
}
