//! The Node API for cluster schedulers: capacity, its watch stream, drain and resume.

use flint_integration::*;
use flint_proto::v1::*;
use std::time::Duration;
use tonic::Code;

#[tokio::test]
async fn capacity_reports_instances_and_watch_follows_changes() {
    let agent = TestAgent::start().await;
    let mut c = agent.client().await;
    let cap = agent.capacity().await;
    assert_eq!(cap.sandbox_backend, test_backend());
    assert!(
        cap.memory_total_mb > 1000 && cap.vcpus_total >= 1,
        "{cap:?}"
    );
    assert_eq!(cap.memory_reserved_mb, 0);
    assert_eq!(cap.concurrency_limit, 1000);
    let mut watch = c
        .node
        .watch_capacity(WatchCapacityRequest {})
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert!(!first.draining);

    let mut req = python_function("sized", "def handler(e, c):\n    return 1\n");
    req.memory_mb = 512;
    c.functions.create_function(req).await.unwrap();
    invoke(&mut c, "sized", "{}").await;
    // The watch stream reports the new idle instance.
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let cap = watch.message().await.unwrap().unwrap();
            if cap
                .functions
                .iter()
                .any(|f| f.function_name == "sized" && f.idle == 1)
            {
                return cap;
            }
        }
    })
    .await
    .expect("watch never showed the idle instance");
    assert!(seen.sequence > first.sequence);
    assert!(seen.memory_reserved_mb >= 512, "{seen:?}");
    assert!(seen.sandboxes.unwrap().idle >= 1);
    assert!(
        seen.pools
            .iter()
            .any(|p| p.runtime == "python3.11" && p.memory_mb == 512),
        "demand creates a pool: {:?}",
        seen.pools
    );
}

#[tokio::test]
async fn drain_lets_running_invocations_finish_and_refuses_new_ones() {
    let agent = TestAgent::start().await;
    let mut c = agent.client().await;
    c.functions
        .create_function(python_function(
            "long",
            "import time\ndef handler(e, c):\n    time.sleep(1.5)\n    return 'finished'\n",
        ))
        .await
        .unwrap();
    let mut c2 = c.clone();
    let running = tokio::spawn(async move { invoke(&mut c2, "long", "{}").await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut c3 = c.clone();
    let drained = tokio::spawn(async move {
        c3.node
            .drain(DrainRequest {
                wait: true,
                timeout_s: 30,
            })
            .await
            .unwrap()
            .into_inner()
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let err = c
        .invocations
        .invoke(InvokeRequest {
            function_name: "long".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(err.message().contains("draining"), "{}", err.message());
    let r = running.await.unwrap();
    assert_eq!(
        json(&r),
        "finished",
        "a running invocation finishes during a drain"
    );
    let d = drained.await.unwrap();
    assert_eq!(d.in_flight, 0);
    let cap = agent.capacity().await;
    assert!(cap.draining);
    c.node.resume(ResumeRequest {}).await.unwrap();
    assert_eq!(json(&invoke(&mut c, "long", "{}").await), "finished");
}

#[tokio::test]
async fn settings_come_from_a_config_file_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flintd.json");
    std::fs::write(
        &file,
        r#"{"concurrency_limit": 7, "function_rate_limit": 3, "pool_warm": ["python3.11:256=1"]}"#,
    )
    .unwrap();
    let agent = TestAgent::start_args(
        300,
        &[
            "--config",
            file.to_str().unwrap(),
            "--function-rate-limit",
            "500",
        ],
    )
    .await;
    let cap = agent.capacity().await;
    assert_eq!(cap.concurrency_limit, 7, "from the file");
    assert!(
        cap.pools.iter().any(|p| p.memory_mb == 256),
        "pool_warm from the file: {:?}",
        cap.pools
    );
    // The command line's rate (500/s) replaced the file's (3/s): a burst of 5 passes.
    let mut c = agent.client().await;
    c.functions
        .create_function(python_function(
            "rated",
            "def handler(e, c):\n    return 1\n",
        ))
        .await
        .unwrap();
    for _ in 0..5 {
        invoke(&mut c, "rated", "{}").await;
    }
}
