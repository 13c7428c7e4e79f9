//! A full disk through a real flintd: its data directory is a small tmpfs mounted in
//! a private mount namespace that this test creates for flintd alone (`unshare -m
//! --propagation private`; the host's mounts are never touched, and the tmpfs goes
//! with flintd's last process). The disk is filled; an asynchronous invoke then fails
//! with RESOURCE_EXHAUSTED naming the disk instead of a 202, and every event
//! accepted before is still in the queue. Freed, the disk takes events again, and
//! every accepted event runs.

mod events_support;

use events_support::*;
use flint_integration::*;
use flint_proto::v1::*;
use std::io::Write;
use std::path::Path;

/// flintd under `unshare`: a private mount namespace with a 32 MB tmpfs on its data
/// directory (room for the databases and the sandboxes' /tmp disks, which live there
/// too, once the filler is gone).
fn on_small_tmpfs(data: &Path) -> Vec<String> {
    [
        "unshare",
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        r#"mkdir -p "$0" && mount -t tmpfs -o size=32m flint-test-disk "$0" && exec "$@""#,
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([data.display().to_string()])
    .collect()
}

async fn try_event(
    c: &mut flint_agent::client::Client,
    payload: &[u8],
) -> Result<String, tonic::Status> {
    c.invocations
        .invoke(InvokeRequest {
            function_name: "full".into(),
            invocation_type: InvocationType::Event as i32,
            payload: payload.to_vec(),
            ..Default::default()
        })
        .await
        .map(|r| {
            let r = r.into_inner();
            assert_eq!(r.status_code, 202);
            r.request_id
        })
}

#[tokio::test]
async fn a_full_disk_refuses_events_and_keeps_every_accepted_one() {
    let agent = TestAgent::start_wrapped(
        on_small_tmpfs,
        300,
        // The free-space floor off: this test is about a disk that really fills
        // (integration/tests/disk_floor.rs tests the floor).
        &["--event-retry-base-ms", BASE_MS, "--min-free-disk-mb", "0"],
    )
    .await;
    let pid = agent.pid();
    let data = agent.data_dir.display().to_string();
    // The tmpfs is flintd's alone: mounted in its namespace, not in the host's.
    let theirs = std::fs::read_to_string(format!("/proc/{pid}/mounts")).unwrap();
    assert!(
        theirs
            .lines()
            .any(|l| l.starts_with("flint-test-disk ") && l.contains(&data)),
        "no tmpfs on {data} in flintd's namespace:\n{theirs}"
    );
    let ours = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(
        !ours.contains("flint-test-disk"),
        "the tmpfs leaked to the host"
    );

    let mut c = agent.client().await;
    c.functions
        .create_function(python_function(
            "full",
            "def handler(e, c):\n    return 1\n",
        ))
        .await
        .unwrap();
    // Reserved concurrency 0: accepted events stay in the queue, where the test
    // can count them.
    c.functions
        .put_function_concurrency(PutFunctionConcurrencyRequest {
            name: "full".into(),
            reserved_concurrency: 0,
        })
        .await
        .unwrap();
    let mut accepted = Vec::new();
    for i in 0..20 {
        accepted.push(
            try_event(&mut c, format!(r#"{{"i": {i}}}"#).as_bytes())
                .await
                .expect("accepted while the disk has room"),
        );
    }

    // Fill the disk through flintd's own view of it.
    let fill = format!("/proc/{pid}/root{data}/fill");
    let mut f = std::fs::File::create(&fill).expect("create the filler");
    let chunk = vec![0xa5u8; 64 * 1024];
    let mut written = 0usize;
    let full = loop {
        match f.write_all(&chunk) {
            Ok(()) => written += chunk.len(),
            Err(e) => break e,
        }
        assert!(written < 64 << 20, "a 32 MB tmpfs took 64 MB");
    };
    assert_eq!(
        full.raw_os_error(),
        Some(nix::errno::Errno::ENOSPC as i32),
        "filling stopped for another reason: {full}"
    );
    let _ = f.sync_all();
    drop(f);
    eprintln!("disk filled after {} KiB more", written / 1024);

    // Large events need new pages: the queue cannot keep them. (A small one may still
    // fit in pages SQLite already has; each that does is accepted and counted.)
    let big = format!(r#"{{"pad": "{}"}}"#, "x".repeat(200 * 1024));
    let mut refused = None;
    for _ in 0..10 {
        match try_event(&mut c, big.as_bytes()).await {
            Ok(id) => accepted.push(id),
            Err(s) => {
                refused = Some(s);
                break;
            }
        }
    }
    let refused = refused.unwrap_or_else(|| panic!("10 events of 200 KiB accepted on a full disk"));
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted, "{refused}");
    assert!(
        refused.message().contains("disk is full") && refused.message().contains("data directory"),
        "the error names the disk: {}",
        refused.message()
    );
    assert!(
        !refused.message().contains(&data),
        "no host path in a client's error: {}",
        refused.message()
    );

    // Nothing accepted before is lost.
    let q = list(&agent, "full", &[]).await;
    let have: std::collections::HashSet<_> =
        q.events.iter().map(|e| e.request_id.as_str()).collect();
    let lost: Vec<_> = accepted
        .iter()
        .filter(|id| !have.contains(id.as_str()))
        .collect();
    assert!(lost.is_empty(), "accepted then lost: {lost:?}\n{q:?}");
    eprintln!("{} events accepted, all still queued", accepted.len());

    // Freed, the disk takes events again.
    std::fs::remove_file(&fill).unwrap();
    let again = try_event(&mut c, big.as_bytes())
        .await
        .expect("accepted once the disk has room");
    accepted.push(again);
    let q = list(&agent, "full", &[]).await;
    assert_eq!(q.events.len(), accepted.len(), "{q:?}");

    // And every accepted event runs once the function may run: none was left in
    // flight by a write the full disk refused.
    c.functions
        .delete_function_concurrency(DeleteFunctionConcurrencyRequest {
            name: "full".into(),
        })
        .await
        .unwrap();
    let log_path = format!("/proc/{pid}/root{data}/logs/full.log");
    let t0 = std::time::Instant::now();
    loop {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let s = starts(&log);
        let missing = accepted.iter().filter(|id| !s.contains_key(*id)).count();
        if missing == 0 {
            let twice: Vec<_> = s.iter().filter(|(_, n)| **n > 1).collect();
            assert!(
                twice.is_empty(),
                "ran more than once without any restart: {twice:?}"
            );
            break;
        }
        if t0.elapsed() > std::time::Duration::from_secs(30) {
            panic!(
                "{missing} of {} accepted events did not run within 30 s\n{}\n--- log ---\n{}",
                accepted.len(),
                evidence(&agent, &[]).await,
                &log[log.len().saturating_sub(3000)..]
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    eprintln!(
        "all {} accepted events ran after the disk was freed",
        accepted.len()
    );
}
