//! Failures in Lambda's words: timeouts (Sandbox.Timedout), the OOM killer
//! (Runtime.OutOfMemory), crashes (Runtime.ExitError with "Runtime exited with error:
//! ..."), function errors and init failures, each with its log lines, its metering
//! outcome and the fate of its sandbox. Timeouts run on tokio's paused clock, so a
//! 1 s (or 10 s init) deadline passes in no real time. A test pauses the clock only
//! after its last invocation that must succeed: the agent computes invocation
//! deadlines from std's clock, which the paused clock runs ahead of once it advances.

use super::guest::{Answer, InitStep, Script};
use super::harness::{json, until, Harness};
use crate::invoke::InvokeOutput;
use crate::observe::RecordedOutcome;
use flint_proto::lambda;

/// The error document of a failed invocation: (errorType, errorMessage).
fn error_of(out: &InvokeOutput) -> (String, String) {
    assert_eq!(out.function_error.as_deref(), Some("Unhandled"), "{out:?}");
    let doc = json(out);
    (
        doc["errorType"].as_str().unwrap().to_string(),
        doc["errorMessage"].as_str().unwrap().to_string(),
    )
}

/// The sandbox the last `created` call made.
fn last_created(h: &Harness) -> String {
    h.backend.created_ids().last().unwrap().clone()
}

#[tokio::test]
async fn a_timed_out_invocation_is_sandbox_timedout_and_its_sandbox_destroyed() {
    let h = Harness::open(Script::echo(), &[]);
    h.backend
        .script_for("slow", Script::answering(Answer::Hang));
    h.create("ok", "v1");
    h.create("slow", "v1");
    let ok = json(&h.invoke_ok("ok", "{}").await)["sandbox"]
        .as_str()
        .unwrap()
        .to_string();

    // From here the clock is tokio's: the 1 s deadline passes as soon as all is idle.
    tokio::time::pause();
    let out = h.invoke_ok("slow", "{}").await;
    let slow = last_created(&h);
    let (t, m) = error_of(&out);
    assert_eq!(t, lambda::TIMED_OUT);
    assert_eq!(
        m,
        format!(
            "RequestId: {} Error: Task timed out after 1.00 seconds",
            out.request_id
        )
    );
    let tail = out.log_result.clone().unwrap();
    assert!(
        tail.contains(&format!(
            " {} Task timed out after 1.00 seconds\n",
            out.request_id
        )),
        "{tail}"
    );
    assert!(tail.contains(&format!("REPORT RequestId: {}", out.request_id)));
    until("the timed-out sandbox to be destroyed", || {
        h.backend.destroyed() == [slow.clone()]
    })
    .await;
    assert!(!h.backend.destroyed().contains(&ok));
    assert_eq!(
        h.records().last().unwrap().outcome,
        RecordedOutcome::Timeout
    );

    // The next invocation gets a new sandbox (and times out the same way).
    let again = h.invoke_ok("slow", "{}").await;
    assert_eq!(error_of(&again).0, lambda::TIMED_OUT);
    assert!(again.timings.cold_start);
    assert_ne!(last_created(&h), slow);
}

#[tokio::test]
async fn an_init_that_never_finishes_times_out_with_an_init_report() {
    let h = Harness::open(Script::init(InitStep::Hang), &[]);
    h.create("f", "v1");
    tokio::time::pause();
    let out = h.invoke_ok("f", "{}").await;
    let (t, m) = error_of(&out);
    assert_eq!(t, lambda::TIMED_OUT);
    assert_eq!(
        m,
        format!(
            "RequestId: {} Error: Init timed out after {}.00 seconds",
            out.request_id,
            crate::limits::INIT_TIMEOUT_S
        )
    );
    assert!(out.log_result.unwrap().ends_with(&format!(
        "INIT_REPORT RequestId: {} Status: error\tError Type: Sandbox.Timedout\n",
        out.request_id
    )));
    let sbx = last_created(&h);
    until("the sandbox to be destroyed", || {
        h.backend.destroyed() == [sbx.clone()]
    })
    .await;
    assert_eq!(
        h.records()[0].outcome,
        RecordedOutcome::InitError(lambda::TIMED_OUT.into())
    );
}

#[tokio::test]
async fn an_oom_kill_is_runtime_out_of_memory() {
    let h = Harness::open(
        Script::answering(Answer::Exit {
            code: -1,
            signal: 9,
        }),
        &[],
    );
    h.create("f", "v1");
    h.backend.set_oom_killed(true);
    let out = h.invoke_ok("f", "{}").await;
    let (t, m) = error_of(&out);
    assert_eq!(t, "Runtime.OutOfMemory");
    assert_eq!(
        m,
        format!(
            "RequestId: {} Error: Runtime exited with error: signal: killed",
            out.request_id
        )
    );
    let tail = out.log_result.unwrap();
    assert!(
        tail.contains(&format!("{m}\nRuntime.OutOfMemory\nEND RequestId:")),
        "{tail}"
    );
    let sbx = last_created(&h);
    until("the killed sandbox to be destroyed", || {
        h.backend.destroyed() == [sbx.clone()]
    })
    .await;
    assert_eq!(h.records()[0].outcome, RecordedOutcome::OutOfMemory);
}

#[tokio::test]
async fn crashes_are_runtime_exit_errors_in_lambdas_words() {
    let h = Harness::open(Script::echo(), &[]);
    let cases = [
        ("exits", 3, 0, "exit status 3"),
        ("segfaults", -1, 11, "signal: segmentation fault"),
        // SIGKILL without the OOM killer: a crash, not Runtime.OutOfMemory.
        ("killed", -1, 9, "signal: killed"),
    ];
    for (name, code, signal, words) in cases {
        h.backend
            .script_for(name, Script::answering(Answer::Exit { code, signal }));
        h.create(name, "v1");
        let out = h.invoke_ok(name, "{}").await;
        let (t, m) = error_of(&out);
        assert_eq!(t, lambda::EXIT_ERROR, "{name}");
        assert_eq!(
            m,
            format!(
                "RequestId: {} Error: Runtime exited with error: {words}",
                out.request_id
            ),
            "{name}"
        );
        assert!(
            out.log_result
                .unwrap()
                .contains(&format!("{m}\nRuntime.ExitError\n")),
            "{name}"
        );
    }
    until("every crashed sandbox to be destroyed", || {
        h.backend.destroyed().len() == 3
    })
    .await;
    let outcomes: Vec<_> = h.records().into_iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [
            RecordedOutcome::Crash,
            RecordedOutcome::Crash,
            RecordedOutcome::Crash
        ]
    );
}

#[tokio::test]
async fn a_function_error_is_passed_through_and_the_instance_kept() {
    let h = Harness::open(
        Script::answering(Answer::Error {
            error_type: "ValueError".into(),
            message: "bad input".into(),
        }),
        &[],
    );
    h.create("f", "v1");
    let first = h.invoke_ok("f", "{}").await;
    assert_eq!(first.payload, lambda::error_doc("ValueError", "bad input"));
    assert_eq!(first.function_error.as_deref(), Some("Unhandled"));
    let second = h.invoke_ok("f", "{}").await;
    assert!(!second.timings.cold_start, "the instance is reused");
    assert_eq!(h.backend.created().len(), 1);
    assert!(h.backend.destroyed().is_empty());
    let outcomes: Vec<_> = h.records().into_iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [
            RecordedOutcome::FunctionError("ValueError".into()),
            RecordedOutcome::FunctionError("ValueError".into())
        ]
    );
}

#[tokio::test]
async fn an_init_error_is_returned_with_its_output_and_init_report() {
    let script = Script {
        init: InitStep::Fail {
            error_type: "Runtime.ImportModuleError".into(),
            message: "Unable to import module 'main': No module named 'requests'".into(),
        },
        init_output: "Traceback (most recent call last):\n  File \"main.py\"\n".into(),
        ..Script::echo()
    };
    let h = Harness::open(script, &[]);
    h.create("f", "v1");
    let out = h.invoke_ok("f", "{}").await;
    assert_eq!(
        out.payload,
        lambda::error_doc(
            "Runtime.ImportModuleError",
            "Unable to import module 'main': No module named 'requests'"
        )
    );
    assert_eq!(out.function_error.as_deref(), Some("Unhandled"));
    assert!(out.timings.cold_start);
    let expected = format!(
        "Traceback (most recent call last):\n  File \"main.py\"\n\
         INIT_REPORT RequestId: {} Status: error\tError Type: Runtime.ImportModuleError\n",
        out.request_id
    );
    assert_eq!(out.log_result.as_deref(), Some(expected.as_str()));
    assert_eq!(h.log_file("f"), expected);
    let sbx = last_created(&h);
    until("the failed sandbox to be destroyed", || {
        h.backend.destroyed() == [sbx.clone()]
    })
    .await;
    let rec = &h.records()[0];
    assert_eq!(
        rec.outcome,
        RecordedOutcome::InitError("Runtime.ImportModuleError".into())
    );
    assert!(rec.cold_start);
    assert_eq!(rec.billed_ms, 0, "a failed init is not billed");
}

#[tokio::test]
async fn a_runtime_that_exits_during_init_is_an_exit_error() {
    let h = Harness::open(Script::init(InitStep::Exit { code: 1, signal: 0 }), &[]);
    h.create("f", "v1");
    let out = h.invoke_ok("f", "{}").await;
    let (t, m) = error_of(&out);
    assert_eq!(t, lambda::EXIT_ERROR);
    assert!(
        m.ends_with("Runtime exited with error: exit status 1"),
        "{m}"
    );
    assert!(out
        .log_result
        .unwrap()
        .contains("Status: error\tError Type: Runtime.ExitError\n"));
    assert_eq!(
        h.records()[0].outcome,
        RecordedOutcome::InitError(lambda::EXIT_ERROR.into())
    );
}
