//! An agent restart keeps every function; stopping the agent leaves no sandbox,
//! cgroup, process or mount behind.

use flint_integration::*;
use flint_proto::v1::*;
use std::time::Duration;

fn host_mounts_mentioning(path: &str) -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(path))
        .count()
}

#[tokio::test]
async fn restart_keeps_functions_and_stop_leaves_nothing() {
    let images = images_dir();
    let mounts_before = host_mounts_mentioning(images.to_str().unwrap());
    // No warm pool: the test counts the function's own instances.
    let mut agent = TestAgent::start_args(300, &["--pool-max", "0"]).await;
    let mut c = agent.client().await;
    let mut req = python_function(
        "keeper",
        "import os\ndef handler(e, c):\n    return os.environ['K']\n",
    );
    req.environment.insert("K".into(), "v1".into());
    req.description = "kept across restarts".into();
    c.functions.create_function(req).await.unwrap();
    c.functions
        .create_function(python_function(
            "other",
            "def handler(e, c):\n    return 2\n",
        ))
        .await
        .unwrap();
    assert_eq!(json(&invoke(&mut c, "keeper", "{}").await), "v1");
    assert_eq!(agent.sandbox_count(), 1, "one warm instance expected");
    assert_eq!(
        host_mounts_mentioning(images.to_str().unwrap()),
        mounts_before,
        "sandbox mounts leaked into the host mount namespace"
    );

    let before = c
        .functions
        .list_functions(ListFunctionsRequest {})
        .await
        .unwrap()
        .into_inner();
    drop(c);
    agent.restart().await;
    let mut c = agent.client().await;
    let after = c
        .functions
        .list_functions(ListFunctionsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(before, after, "functions changed across a restart");
    assert_eq!(json(&invoke(&mut c, "keeper", "{}").await), "v1");
    assert_eq!(json(&invoke(&mut c, "other", "{}").await), 2);

    drop(c);
    let st = agent.stop();
    assert!(st.success(), "flintd exit status {st}");
    let left = agent.wait_no_sandboxes(Duration::from_secs(5)).await;
    assert!(left.is_empty(), "a stopped agent left sandboxes: {left:?}");
    let procs = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("cgroup")).ok())
        .filter(|cg| cg.contains(&agent.cgroup_parent))
        .count();
    assert_eq!(procs, 0, "processes left in the agent's cgroups");
}

#[tokio::test]
async fn killed_agent_sandboxes_are_removed_by_the_next_one() {
    let mut agent = TestAgent::start_args(300, &["--pool-max", "0"]).await;
    let mut c = agent.client().await;
    c.functions
        .create_function(python_function(
            "warm",
            "def handler(e, c):\n    return 1\n",
        ))
        .await
        .unwrap();
    invoke(&mut c, "warm", "{}").await;
    assert_eq!(agent.sandbox_count(), 1);
    // SIGKILL: the agent cannot clean up; its sandbox survives until the next agent on
    // the same cgroup parent removes it at start-up.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent.pid() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    agent.restart_after_kill().await;
    let left = agent.wait_no_sandboxes(Duration::from_secs(5)).await;
    assert!(
        left.is_empty(),
        "stale sandboxes survived a new agent: {left:?}"
    );
    let mut c = agent.client().await;
    assert_eq!(json(&invoke(&mut c, "warm", "{}").await), 1);
}

/// The data directory the release before schema versioning wrote (flintd at 0a838de:
/// agent/tests/fixtures/release-0a838de) opens with this flintd: its functions are
/// listed as they were, they run, and their metered usage is kept.
#[tokio::test]
async fn a_data_directory_from_before_schema_versioning_opens_and_runs() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../agent/tests/fixtures/release-0a838de");
    let mut agent = TestAgent::start_args(300, &["--pool-max", "0"]).await;
    assert!(agent.stop().success());
    // Replace the new agent's data with the release's (copies: opening migrates them).
    for db in ["flint.db", "metering.db"] {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(agent.data_dir.join(format!("{db}{suffix}")));
        }
        std::fs::copy(fixture.join(db), agent.data_dir.join(db)).unwrap();
    }
    let code = agent.data_dir.join("code");
    for e in std::fs::read_dir(fixture.join("code")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), code.join(e.file_name())).unwrap();
    }
    agent.restart_after_kill().await;

    let mut c = agent.client().await;
    let fs = c
        .functions
        .list_functions(ListFunctionsRequest {})
        .await
        .unwrap()
        .into_inner()
        .functions;
    let seen: Vec<_> = fs
        .iter()
        .map(|f| {
            (
                f.name.as_str(),
                f.memory_mb,
                f.timeout_s,
                f.revision,
                f.reserved_concurrency,
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("fixture-a", 256, 10, 1, Some(7)),
            ("fixture-b", 128, 5, 2, None)
        ]
    );
    assert_eq!(fs[0].environment["QUOTED"], "a \"b\" = c");
    assert_eq!(fs[0].description, "fixture written by flintd 0a838de");

    let r = invoke_ok(&mut c, "fixture-a", r#"{"n": 3}"#).await;
    assert_eq!(
        json(&r),
        serde_json::json!({"fixture": "a", "got": {"n": 3}})
    );
    let r = invoke_ok(&mut c, "fixture-b", "{}").await;
    assert_eq!(json(&r), "b");

    // The release's four metered invocations plus these two.
    let report = c
        .usage()
        .get_usage(GetUsageRequest::default())
        .await
        .unwrap()
        .into_inner();
    let requests: Vec<_> = report
        .functions
        .iter()
        .map(|u| (u.function_name.as_str(), u.requests, u.errors))
        .collect();
    assert_eq!(requests, vec![("fixture-a", 3, 0), ("fixture-b", 3, 1)]);
}
