//! The invocation log: init output, START, the function's output, END and REPORT
//! with Lambda's fields, the same text in the log tail and the function's log file,
//! and the metering record the REPORT line agrees with. Event invocations run in the
//! background and are metered as asynchronous.

use super::guest::Script;
use super::harness::{until, Harness};
use crate::invoke::{InvocationType, InvokeInput};
use crate::observe::RecordedOutcome;

/// The value of a REPORT field ("Duration: 1.23 ms" -> "1.23").
fn field<'a>(report: &'a str, name: &str) -> Option<&'a str> {
    report.split('\t').find_map(|f| {
        f.strip_prefix(name)
            .and_then(|v| v.strip_prefix(": "))
            .map(|v| v.trim_end_matches(" ms").trim_end_matches(" MB"))
    })
}

#[tokio::test]
async fn log_tail_has_start_output_end_and_report_lines() {
    let script = Script {
        init_output: "init says hi\n".into(),
        invoke_output: "hello from the function\nsecond line".into(),
        ..Script::echo()
    };
    let h = Harness::open(script, &[]);
    h.backend.set_memory_peak(Some(41 * 1024 * 1024 + 1));
    h.create("f", "v1");

    let cold = h.invoke_ok("f", "{}").await;
    let id = &cold.request_id;
    let tail = cold.log_result.clone().unwrap();
    let lines: Vec<&str> = tail.lines().collect();
    assert_eq!(
        lines[..5],
        [
            "init says hi",
            &format!("START RequestId: {id} Version: $LATEST"),
            "hello from the function",
            // Output without a final newline is ended before END.
            "second line",
            &format!("END RequestId: {id}"),
        ],
        "{tail}"
    );
    assert_eq!(lines.len(), 6, "{tail}");
    let report = lines[5];
    assert!(
        report.starts_with(&format!("REPORT RequestId: {id}\t")),
        "{report}"
    );
    let duration: f64 = field(report, "Duration").unwrap().parse().unwrap();
    let billed: u64 = field(report, "Billed Duration").unwrap().parse().unwrap();
    // Billed is the exact duration rounded up to the millisecond; the printed one has
    // two decimals.
    assert!(
        billed as f64 >= duration.floor() && (billed as f64) < duration + 1.01,
        "{report}"
    );
    assert_eq!(field(report, "Memory Size"), Some("128"));
    assert_eq!(field(report, "Max Memory Used"), Some("42"), "rounded up");
    let init: f64 = field(report, "Init Duration").unwrap().parse().unwrap();
    assert!(init > 0.0, "{report}");

    let rec = h.records()[0].clone();
    assert_eq!(rec.billed_ms, billed);
    assert_eq!(rec.memory_mb, 128);
    assert_eq!(rec.outcome, RecordedOutcome::Success);
    assert!(!rec.asynchronous);

    let warm = h.invoke_ok("f", "{}").await;
    let tail2 = warm.log_result.clone().unwrap();
    assert!(
        tail2.starts_with(&format!("START RequestId: {}", warm.request_id)),
        "init output belongs to the first invocation only: {tail2}"
    );
    let report2 = tail2.lines().last().unwrap();
    assert_eq!(field(report2, "Init Duration"), None, "{report2}");
    assert_eq!(h.log_file("f"), format!("{tail}{tail2}"));
}

#[tokio::test]
async fn output_written_while_idle_opens_the_next_invocations_log() {
    let h = Harness::open(
        Script {
            idle_output: "background tick\n".into(),
            ..Script::echo()
        },
        &[],
    );
    h.create("f", "v1");
    let first = h.invoke_ok("f", "{}").await.log_result.unwrap();
    assert!(!first.contains("background tick"), "{first}");
    let second = h.invoke_ok("f", "{}").await;
    let tail = second.log_result.unwrap();
    assert!(
        tail.starts_with(&format!(
            "background tick\nSTART RequestId: {}",
            second.request_id
        )),
        "{tail}"
    );
}

#[tokio::test]
async fn an_event_invocation_is_accepted_at_once_and_metered_as_asynchronous() {
    let h = Harness::open(Script::echo(), &[]);
    h.create("f", "v1");
    let out = h
        .agent
        .invoke(InvokeInput {
            function_name: "f".into(),
            invocation_type: InvocationType::Event,
            log_tail: false,
            payload: b"{}".to_vec(),
            client_context: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(out.status_code, 202);
    assert!(out.payload.is_empty());
    until("the event to run", || h.records().len() == 1).await;
    let rec = h.records()[0].clone();
    assert!(rec.asynchronous);
    assert_eq!(rec.request_id, out.request_id);
    assert_eq!(rec.outcome, RecordedOutcome::Success);
    assert!(h
        .log_file("f")
        .contains(&format!("REPORT RequestId: {}", out.request_id)));

    let dry = h
        .agent
        .invoke(InvokeInput {
            function_name: "f".into(),
            invocation_type: InvocationType::DryRun,
            log_tail: false,
            payload: b"{}".to_vec(),
            client_context: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(dry.status_code, 204);
    assert_eq!(h.backend.created().len(), 1, "a dry run starts nothing");
}
