//! Placement: a cold start makes a sandbox, a warm hit reuses it, a pre-started
//! sandbox from the warm pool serves a cold start, a change of code or configuration
//! retires idle instances, and a sandbox that cannot be made says why.

use super::guest::{InitStep, Script};
use super::harness::{json, until, Harness, RUNTIME};
use crate::functions::ConfigChange;
use crate::invoke::InvokeError;
use crate::observe::RecordedOutcome;

#[tokio::test]
async fn cold_start_then_warm_hit_on_the_same_sandbox() {
    // Frozen as soon as it is idle, so each step shows in the lifecycle.
    let h = Harness::open(Script::echo(), &["--freeze-after-ms", "0"]);
    h.create("f", "v1");

    let first = h.invoke_ok("f", r#"{"n":1}"#).await;
    let created = h.backend.created();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].memory_mb, 128);
    assert!(created[0].rootfs.ends_with(format!("{RUNTIME}/rootfs")));
    let sbx = created[0].id.clone();
    let doc = json(&first);
    assert_eq!(doc["sandbox"], sbx.as_str());
    assert_eq!(doc["served"], 1);
    assert_eq!(doc["code"], "v1");
    assert_eq!(doc["event"]["n"], 1);
    assert_eq!(first.status_code, 200);
    assert_eq!(first.function_error, None);
    assert!(first.timings.cold_start && !first.timings.pool_hit);
    assert!(first.timings.init_duration_ns > 0);

    let second = h.invoke_ok("f", "  ").await;
    let doc = json(&second);
    assert_eq!(doc["sandbox"], sbx.as_str(), "the warm instance serves");
    assert_eq!(doc["served"], 2);
    assert_eq!(doc["event"], serde_json::json!({}), "blank payload is {{}}");
    assert!(!second.timings.cold_start);
    assert_eq!(second.timings.init_duration_ns, 0);
    assert_eq!(h.backend.created().len(), 1);
    assert!(h.backend.destroyed().is_empty());
    assert_eq!(
        h.backend.messages(&sbx),
        ["Configure", "Invoke", "Invoke"],
        "a cold start configures a fresh sandbox (no Prepare)"
    );
    assert_eq!(
        h.backend.lifecycle(&sbx),
        ["limit_cpu", "freeze", "thaw", "freeze"],
        "the CPU quota goes on after init; the idle instance is frozen, thawed to serve"
    );

    let recs = h.records();
    assert_eq!(recs.len(), 2);
    assert!(recs[0].cold_start && !recs[1].cold_start);
    assert!(recs[0].init_duration_ns > 0 && recs[1].init_duration_ns == 0);
    assert!(recs.iter().all(|r| r.outcome == RecordedOutcome::Success));
    assert_eq!(recs[0].request_id, first.request_id);
    assert_eq!(h.agent.capacity().sandboxes.unwrap().idle, 1);
}

#[tokio::test]
async fn with_a_freeze_delay_back_to_back_calls_skip_the_freezer() {
    let h = Harness::open(Script::echo(), &["--freeze-after-ms", "500"]);
    h.create("f", "v1");
    h.invoke_ok("f", "{}").await;
    h.invoke_ok("f", "{}").await;
    let sbx = h.backend.created()[0].id.clone();
    assert_eq!(
        h.backend.lifecycle(&sbx),
        ["limit_cpu"],
        "an instance used again within the delay is neither frozen nor thawed"
    );
    // Idle past the delay: frozen by the freezer task, thawed by the next call.
    until("the freezer task", || h.backend.lifecycle(&sbx).len() == 2).await;
    assert_eq!(h.backend.lifecycle(&sbx), ["limit_cpu", "freeze"]);
    h.invoke_ok("f", "{}").await;
    assert_eq!(h.backend.lifecycle(&sbx), ["limit_cpu", "freeze", "thaw"]);
    until("the freezer task again", || {
        h.backend.lifecycle(&sbx).len() == 4
    })
    .await;
    assert_eq!(
        h.backend.lifecycle(&sbx),
        ["limit_cpu", "freeze", "thaw", "freeze"]
    );
}

#[tokio::test]
async fn code_and_configuration_changes_retire_idle_instances() {
    let h = Harness::open(Script::echo(), &[]);
    h.create("f", "v1");
    let a = json(&h.invoke_ok("f", "{}").await)["sandbox"]
        .as_str()
        .unwrap()
        .to_string();

    h.agent
        .update_code("f", &super::harness::bundle("v2"))
        .unwrap();
    until("the v1 instance to be destroyed", || {
        h.backend.destroyed() == [a.clone()]
    })
    .await;
    assert_eq!(h.backend.messages(&a)[..2], ["Configure", "Invoke"]);
    let out = h.invoke_ok("f", "{}").await;
    let doc = json(&out);
    let b = doc["sandbox"].as_str().unwrap().to_string();
    assert_ne!(b, a, "a new sandbox serves the new code");
    assert_eq!(doc["code"], "v2");
    assert!(out.timings.cold_start);

    h.agent
        .update_config(
            "f",
            ConfigChange {
                timeout_s: Some(2),
                ..Default::default()
            },
        )
        .unwrap();
    until("the old-configuration instance to be destroyed", || {
        h.backend.destroyed().contains(&b)
    })
    .await;
    let c = json(&h.invoke_ok("f", "{}").await)["sandbox"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(c != a && c != b);
    assert_eq!(h.backend.created().len(), 3);

    h.agent.delete_function("f", false).unwrap();
    until("the deleted function's instance to be destroyed", || {
        h.backend.destroyed().contains(&c)
    })
    .await;
    match h.invoke("f", "{}").await {
        Err(InvokeError::Store(e)) => assert!(e.to_string().contains("f"), "{e}"),
        other => panic!("a deleted function must be unknown: {other:?}"),
    }
}

#[tokio::test]
async fn an_instance_whose_runtime_died_while_idle_is_not_reused() {
    let h = Harness::open(
        Script {
            exit_when_idle: Some((-1, 9)),
            ..Script::echo()
        },
        &[],
    );
    h.create("f", "v1");
    let first = h.invoke_ok("f", "{}").await;
    assert_eq!(first.function_error, None);
    let a = json(&first)["sandbox"].as_str().unwrap().to_string();
    until("the dead instance to be destroyed", || {
        h.backend.destroyed() == [a.clone()]
    })
    .await;
    let second = h.invoke_ok("f", "{}").await;
    assert_eq!(second.function_error, None, "a dead instance never serves");
    assert_ne!(json(&second)["sandbox"], a.as_str());
    assert!(second.timings.cold_start);
}

#[tokio::test]
async fn prestarted_sandbox_serves_the_cold_start_and_the_pool_refills() {
    let warm = format!("{RUNTIME}:128=1");
    let h = Harness::open(Script::echo(), &["--pool-max", "2", "--pool-warm", &warm]);
    h.create("f", "v1");
    until("the warm pool to pre-start a sandbox", || {
        h.agent.capacity().pools.iter().any(|p| p.ready == 1)
    })
    .await;
    let pre = h.backend.created_ids();
    assert_eq!(pre.len(), 1);
    assert_eq!(h.backend.messages(&pre[0]), ["Prepare"]);

    let out = h.invoke_ok("f", "{}").await;
    assert_eq!(json(&out)["sandbox"], pre[0].as_str());
    assert!(out.timings.cold_start && out.timings.pool_hit);
    assert_eq!(
        h.backend.messages(&pre[0]),
        ["Prepare", "Configure", "Invoke"]
    );
    assert!(h.records()[0].pool_hit);

    until("the pool to refill to its floor", || {
        let ids = h.backend.created_ids();
        ids.len() == 2 && h.backend.messages(&ids[1]) == ["Prepare"]
    })
    .await;
    assert!(h.backend.destroyed().is_empty());
}

#[tokio::test]
async fn a_pool_sandbox_that_fails_to_prepare_is_destroyed_and_not_used() {
    let warm = format!("{RUNTIME}:128=1");
    let script = Script {
        prepare: InitStep::Fail {
            error_type: "Runtime.SandboxSetupError".into(),
            message: "mounting /tmp: permission denied".into(),
        },
        ..Script::echo()
    };
    let h = Harness::open(script, &["--pool-max", "2", "--pool-warm", &warm]);
    h.create("f", "v1");
    until("the failed pool sandbox to be destroyed", || {
        !h.backend.destroyed().is_empty()
    })
    .await;
    let failed = h.backend.created_ids()[0].clone();
    assert_eq!(h.backend.destroyed(), [failed.as_str()]);

    // Backing off: no pool sandbox ready, so the invocation starts its own.
    let out = h.invoke_ok("f", "{}").await;
    let served = json(&out)["sandbox"].as_str().unwrap().to_string();
    assert_ne!(served, failed);
    assert!(out.timings.cold_start && !out.timings.pool_hit);
    assert_eq!(h.backend.messages(&served), ["Configure", "Invoke"]);

    // The pool backs off (1 s) after a failure: its manager runs every 250 ms and the
    // invocation asked for a sandbox, yet none is started meanwhile.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(h.backend.created_ids(), [failed, served]);
}

#[tokio::test]
async fn a_sandbox_that_cannot_be_made_fails_the_invocation_with_the_reason() {
    let h = Harness::open(Script::echo(), &[]);
    h.create("f", "v1");
    h.backend.fail_creates(Some("cgroup v2 is not mounted"));
    let e = h.invoke("f", "{}").await.unwrap_err();
    assert!(matches!(e, InvokeError::Sandbox { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "could not start an instance of f: could not create a sandbox: \
         starting sandbox process fake-flint-init: cgroup v2 is not mounted"
    );
    assert!(h.records().is_empty(), "nothing ran, nothing is metered");

    h.backend.fail_creates(None);
    h.backend.set_script(Script {
        protocol_version: 1,
        ..Script::echo()
    });
    let e = h.invoke("f", "{}").await.unwrap_err();
    assert!(
        e.to_string().contains(&format!(
            "flint-init speaks protocol 1, the agent {}: rebuild flint-init",
            flint_proto::init::PROTOCOL_VERSION
        )),
        "{e}"
    );
    let ids = h.backend.created_ids();
    until("the mismatched sandbox to be destroyed", || {
        h.backend.destroyed() == ids
    })
    .await;

    h.backend.set_script(Script::echo());
    assert_eq!(json(&h.invoke_ok("f", "{}").await)["served"], 1);

    // A flint-init that never says Hello: given up after 10 s (of tokio's paused clock).
    h.backend.set_script(Script {
        hello: false,
        ..Script::echo()
    });
    h.create("g", "v1");
    tokio::time::pause();
    let e = h.invoke("g", "{}").await.unwrap_err();
    assert!(
        e.to_string()
            .contains("no Hello from flint-init within 10 s"),
        "{e}"
    );
    let silent = h.backend.created_ids().last().unwrap().clone();
    assert!(h.backend.destroyed().contains(&silent));
}
