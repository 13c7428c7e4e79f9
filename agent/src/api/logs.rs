//! The `flint.v1.Logs` service: a function's log lines from its log files
//! (log_tail.rs reads, log_query.rs selects; `follow` polls every
//! [`FOLLOW_POLL`]) and its invocation history from the metering database.

use crate::core::Agent;
use crate::log_query::{BlockFilter, LogFilter};
use crate::log_tail::LogReader;
use crate::metering::history;
use flint_proto::v1::logs_server::Logs;
use flint_proto::v1::*;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// How often a follower looks for new lines.
pub const FOLLOW_POLL: Duration = Duration::from_millis(100);
/// Text in one streamed message at most (more lines go in the next).
const CHUNK_BYTES: usize = 256 * 1024;

/// Serves logs and history.
pub struct LogsApi {
    pub agent: Arc<Agent>,
}

type Sender = tokio::sync::mpsc::Sender<Result<LogLines, Status>>;

/// Sends `lines` in messages of at most [`CHUNK_BYTES`]; false once the client is gone.
async fn send(tx: &Sender, lines: Vec<String>) -> bool {
    let mut chunk = Vec::new();
    let mut size = 0;
    for l in lines {
        size += l.len();
        chunk.push(l);
        if size >= CHUNK_BYTES {
            let lines = std::mem::take(&mut chunk);
            if tx.send(Ok(LogLines { lines })).await.is_err() {
                return false;
            }
            size = 0;
        }
    }
    chunk.is_empty() || tx.send(Ok(LogLines { lines: chunk })).await.is_ok()
}

/// Reads what is new in the files off the async workers.
async fn poll(reader: LogReader) -> (LogReader, std::io::Result<Vec<String>>) {
    match tokio::task::spawn_blocking(move || {
        let mut reader = reader;
        let lines = reader.poll();
        (reader, lines)
    })
    .await
    {
        Ok(r) => r,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Streams the selected lines of `function`'s log; with `follow`, new ones as they
/// come, until the client leaves (or the single request asked for has ended).
async fn stream(
    mut reader: LogReader,
    filter: LogFilter,
    version: Option<String>,
    follow: bool,
    tx: Sender,
) {
    let single = matches!(filter, LogFilter::Request(_));
    let since = matches!(filter, LogFilter::Requests(_));
    let mut blocks = BlockFilter::new(filter).with_version(version.clone());
    let mut first = true;
    loop {
        let (r, lines) = poll(reader).await;
        reader = r;
        let lines = match lines {
            Ok(l) => l,
            Err(e) => {
                let _ = tx
                    .send(Err(Status::internal(format!(
                        "reading the function's log: {e}"
                    ))))
                    .await;
                return;
            }
        };
        let kept: Vec<String> = lines.iter().flat_map(|l| blocks.push(l)).collect();
        if !send(&tx, kept).await || !follow || (single && blocks.done()) {
            return;
        }
        if first && since {
            // Everything written from now on started after `since`.
            blocks = BlockFilter::new(LogFilter::All).with_version(version.clone());
        }
        first = false;
        tokio::select! {
            _ = tokio::time::sleep(FOLLOW_POLL) => {}
            _ = tx.closed() => return,
        }
    }
}

fn to_proto(p: history::Past) -> InvocationSummary {
    InvocationSummary {
        request_id: p.request_id,
        started_unix_ms: p.started_unix_ms,
        duration_ns: p.duration_ns,
        billed_ms: p.billed_ms,
        outcome: p.outcome,
        error_type: p.error_type,
        cold_start: p.cold_start,
        init_duration_ns: p.init_duration_ns,
        asynchronous: p.asynchronous,
        memory_mb: p.memory_mb,
    }
}

impl LogsApi {
    async fn history(
        &self,
        function: String,
        since: u64,
        limit: u32,
    ) -> Result<Vec<history::Past>, Status> {
        let meter = self.agent.meter().clone();
        tokio::task::spawn_blocking(move || meter.history(&function, since, limit))
            .await
            .map_err(|e| Status::internal(format!("history task failed: {e}")))?
            .map_err(Status::from)
    }
}

#[tonic::async_trait]
impl Logs for LogsApi {
    type GetLogsStream = Pin<Box<dyn Stream<Item = Result<LogLines, Status>> + Send>>;

    async fn get_logs(
        &self,
        req: Request<GetLogsRequest>,
    ) -> Result<Response<Self::GetLogsStream>, Status> {
        super::access::check(
            &self.agent,
            &req,
            "flint:GetLogs",
            &req.get_ref().function_name,
        )?;
        let r = req.into_inner();
        let name = r.function_name.clone();
        self.agent
            .blocking(move |a| a.get_function(&name).map(|_| ()))
            .await
            .map_err(Status::from)?;
        let filter = if !r.request_id.is_empty() {
            LogFilter::Request(r.request_id)
        } else if r.since_unix_ms > 0 {
            let ids = self
                .history(r.function_name.clone(), r.since_unix_ms, history::LIMIT_MAX)
                .await?;
            LogFilter::Requests(ids.into_iter().map(|p| p.request_id).collect())
        } else {
            LogFilter::All
        };
        let version = Some(r.version).filter(|v| !v.is_empty());
        tracing::debug!(function = %r.function_name, follow = r.follow, ?filter, ?version, "streaming function log");
        let reader = LogReader::new(&self.agent.config().data_dir.join("logs"), &r.function_name);
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(stream(reader, filter, version, r.follow, tx));
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn get_invocation_history(
        &self,
        req: Request<GetInvocationHistoryRequest>,
    ) -> Result<Response<GetInvocationHistoryResponse>, Status> {
        super::access::check(
            &self.agent,
            &req,
            "flint:GetInvocationHistory",
            &req.get_ref().function_name,
        )?;
        let r = req.into_inner();
        if r.function_name.is_empty() {
            return Err(Status::invalid_argument(
                "function_name is empty: name the function whose history to read",
            ));
        }
        let rows = self
            .history(r.function_name, r.since_unix_ms, r.limit)
            .await?;
        Ok(Response::new(GetInvocationHistoryResponse {
            invocations: rows.into_iter().map(to_proto).collect(),
        }))
    }
}
