//! The `flint.v1.Node` service for cluster schedulers.

use crate::core::Agent;
use flint_proto::v1::node_server::Node;
use flint_proto::v1::*;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// Serves the Node API.
pub struct NodeApi {
    pub agent: Arc<Agent>,
}

/// Longest drain wait a caller may ask for.
const DRAIN_WAIT_MAX_S: u32 = 900;

/// Watchers get at most this many updates per second.
const WATCH_MIN_INTERVAL: Duration = Duration::from_millis(50);

#[tonic::async_trait]
impl Node for NodeApi {
    async fn get_capacity(
        &self,
        _req: Request<GetCapacityRequest>,
    ) -> Result<Response<Capacity>, Status> {
        Ok(Response::new(self.agent.capacity()))
    }

    type WatchCapacityStream = Pin<Box<dyn Stream<Item = Result<Capacity, Status>> + Send>>;

    async fn watch_capacity(
        &self,
        _req: Request<WatchCapacityRequest>,
    ) -> Result<Response<Self::WatchCapacityStream>, Status> {
        let agent = self.agent.clone();
        let mut changes = agent.capacity_changes();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            loop {
                let cap = agent.capacity();
                if tx.send(Ok(cap)).await.is_err() {
                    return;
                }
                tokio::time::sleep(WATCH_MIN_INTERVAL).await;
                tokio::select! {
                    r = changes.changed() => if r.is_err() { return },
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn drain(&self, req: Request<DrainRequest>) -> Result<Response<DrainResponse>, Status> {
        let r = req.into_inner();
        if r.timeout_s > DRAIN_WAIT_MAX_S {
            return Err(Status::invalid_argument(format!(
                "timeout_s {} is too long: at most {DRAIN_WAIT_MAX_S}",
                r.timeout_s
            )));
        }
        let in_flight = self
            .agent
            .drain(r.wait, Duration::from_secs(u64::from(r.timeout_s)))
            .await;
        Ok(Response::new(DrainResponse { in_flight }))
    }

    async fn resume(
        &self,
        _req: Request<ResumeRequest>,
    ) -> Result<Response<ResumeResponse>, Status> {
        self.agent.resume();
        Ok(Response::new(ResumeResponse {}))
    }
}
