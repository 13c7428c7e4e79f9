//! `flint logs` (a function's log lines, optionally followed) and `flint history`
//! (its finished invocations, newest first), over the `flint.v1.Logs` service.

use crate::{since, status_err};
use flint_agent::client::Client;
use flint_proto::v1::{GetInvocationHistoryRequest, GetLogsRequest, InvocationSummary};
use std::io::Write;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// `--since` as Unix milliseconds (0 when absent).
fn since_ms(s: Option<&str>) -> anyhow::Result<u64> {
    Ok(match s {
        Some(s) => since::parse(s, now_ms())?,
        None => 0,
    })
}

/// Prints the selected lines as they arrive (until the stream ends, or Ctrl-C with
/// `follow`).
pub async fn logs(
    c: &Client,
    name: String,
    follow: bool,
    since: Option<String>,
    request_id: Option<String>,
    version: Option<String>,
) -> anyhow::Result<i32> {
    let mut stream = c
        .logs()
        .get_logs(GetLogsRequest {
            function_name: name,
            follow,
            since_unix_ms: since_ms(since.as_deref())?,
            request_id: request_id.unwrap_or_default(),
            version: version.unwrap_or_default(),
        })
        .await
        .map_err(status_err)?
        .into_inner();
    let mut out = std::io::stdout();
    while let Some(msg) = stream.message().await.map_err(status_err)? {
        for l in msg.lines {
            out.write_all(l.as_bytes())?;
        }
        out.flush()?;
    }
    Ok(0)
}

fn row_json(i: &InvocationSummary) -> serde_json::Value {
    serde_json::json!({
        "request_id": i.request_id,
        "started": flint_agent::timefmt::rfc3339_millis(i.started_unix_ms / 1000, (i.started_unix_ms % 1000) as u32),
        "started_unix_ms": i.started_unix_ms,
        "duration_ms": i.duration_ns as f64 / 1e6,
        "billed_ms": i.billed_ms,
        "outcome": i.outcome,
        "error_type": i.error_type,
        "cold_start": i.cold_start,
        "init_duration_ms": i.init_duration_ns as f64 / 1e6,
        "asynchronous": i.asynchronous,
        "memory_mb": i.memory_mb,
    })
}

/// Prints the function's invocations, newest first: a table, or one JSON object a line.
pub async fn history(
    c: &Client,
    name: String,
    since: Option<String>,
    limit: u32,
    json: bool,
) -> anyhow::Result<i32> {
    let rows = c
        .logs()
        .get_invocation_history(GetInvocationHistoryRequest {
            function_name: name,
            since_unix_ms: since_ms(since.as_deref())?,
            limit,
        })
        .await
        .map_err(status_err)?
        .into_inner()
        .invocations;
    if json {
        for r in &rows {
            println!("{}", row_json(r));
        }
        return Ok(0);
    }
    println!(
        "{:<36}  {:<24}  {:>11}  {:<14}  {:<24}  COLD",
        "REQUEST ID", "STARTED", "DURATION", "OUTCOME", "ERROR TYPE"
    );
    for r in &rows {
        let started = flint_agent::timefmt::rfc3339_millis(
            r.started_unix_ms / 1000,
            (r.started_unix_ms % 1000) as u32,
        );
        println!(
            "{:<36}  {:<24}  {:>8.2} ms  {:<14}  {:<24}  {}",
            r.request_id,
            started,
            r.duration_ns as f64 / 1e6,
            r.outcome,
            if r.error_type.is_empty() {
                "-"
            } else {
                &r.error_type
            },
            if r.cold_start { "yes" } else { "no" }
        );
    }
    Ok(0)
}
