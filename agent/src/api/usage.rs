//! The `flint.v1.Usage` service: metered usage and its cost, from the agent's meter.

use crate::core::Agent;
use crate::metering::MeterError;
use flint_proto::v1::usage_server::Usage;
use flint_proto::v1::{GetUsageRequest, UsageReport};
use std::sync::Arc;
use tonic::{Code, Request, Response, Status};

/// Serves usage reports.
pub struct UsageApi {
    pub agent: Arc<Agent>,
}

impl From<MeterError> for Status {
    fn from(e: MeterError) -> Status {
        let code = match &e {
            MeterError::FlushTimeout => Code::Unavailable,
            MeterError::Open { .. } | MeterError::Query(_) | MeterError::Thread(_) => {
                Code::Internal
            }
        };
        Status::new(code, e.to_string())
    }
}

#[tonic::async_trait]
impl Usage for UsageApi {
    async fn get_usage(
        &self,
        req: Request<GetUsageRequest>,
    ) -> Result<Response<UsageReport>, Status> {
        let r = req.into_inner();
        let meter = self.agent.meter().clone();
        let function = (!r.function_name.is_empty()).then_some(r.function_name);
        let report =
            tokio::task::spawn_blocking(move || meter.usage(function.as_deref(), r.since_unix_ms))
                .await
                .map_err(|e| Status::internal(format!("usage report task failed: {e}")))??;
        Ok(Response::new(report))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meter_errors_map_to_codes() {
        assert_eq!(
            Status::from(MeterError::FlushTimeout).code(),
            Code::Unavailable
        );
        let s = Status::from(MeterError::Query(rusqlite::Error::InvalidQuery));
        assert_eq!(s.code(), Code::Internal);
        assert!(s.message().contains("metering database"));
    }
}
