//! Function logs on the host are bounded (issue 14): one invocation printing 20 MB
//! keeps 1 MiB with a marker line, and the log file rotates at
//! --function-log-max-bytes, so a function never takes more than twice that on disk.

use flint_integration::*;

const CAP: u64 = 256 * 1024;

#[tokio::test]
async fn a_chatty_function_cannot_fill_the_disk() {
    let cap = CAP.to_string();
    let agent = TestAgent::start_args(300, &["--function-log-max-bytes", &cap]).await;
    let mut c = agent.client().await;
    c.functions
        .create_function(python_function(
            "chatty",
            "import sys\n\
             def handler(e, c):\n    \
                 line = 'x' * 1023 + '\\n'\n    \
                 for _ in range(e['mb'] * 1024):\n        \
                     sys.stdout.write(line)\n    \
                 sys.stdout.flush()\n    \
                 return 'done'\n",
        ))
        .await
        .unwrap();
    let r = invoke(&mut c, "chatty", r#"{"mb": 20}"#).await;
    assert_eq!(
        r.function_error,
        "",
        "{}",
        String::from_utf8_lossy(&r.payload)
    );
    assert_eq!(json(&r), "done");
    assert!(
        r.log_result.contains("the rest is dropped") && r.log_result.contains("REPORT RequestId"),
        "tail lacks the marker or the REPORT line: {}",
        r.log_result
    );
    let logs = agent.data_dir.join("logs");
    let size = |name: &str| std::fs::metadata(logs.join(name)).map_or(0, |m| m.len());
    assert!(
        size("chatty.log") <= CAP,
        "log is {} bytes",
        size("chatty.log")
    );
    // More invocations rotate the file; neither file passes the cap and nothing else
    // is kept.
    let mut last = String::new();
    for _ in 0..3 {
        let r = invoke(&mut c, "chatty", r#"{"mb": 1}"#).await;
        assert_eq!(json(&r), "done");
        last = r.request_id;
    }
    // The log writer thread appends after the call returns: wait for the last END.
    let end = format!("END RequestId: {last}");
    let t0 = std::time::Instant::now();
    while !std::fs::read_to_string(logs.join("chatty.log")).is_ok_and(|l| l.contains(&end)) {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(10),
            "the last invocation's log never reached chatty.log"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(size("chatty.log") <= CAP && size("chatty.log") > 0);
    assert!(size("chatty.log.1") <= CAP && size("chatty.log.1") > 0);
    let files: Vec<_> = std::fs::read_dir(&logs)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    // Deleting the function removes both.
    c.functions
        .delete_function(flint_proto::v1::DeleteFunctionRequest {
            name: "chatty".into(),
            force: false,
        })
        .await
        .unwrap();
    assert_eq!(std::fs::read_dir(&logs).unwrap().count(), 0);
}
