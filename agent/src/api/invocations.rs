//! The `flint.v1.Invocations` service.

use crate::core::Agent;
use crate::invoke::{InvocationType as T, InvokeInput};
use flint_proto::v1::invocations_server::Invocations;
use flint_proto::v1::{InvocationType, InvokeRequest, InvokeResponse, LogType};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// Serves invocations.
pub struct InvocationsApi {
    pub agent: Arc<Agent>,
}

#[tonic::async_trait]
impl Invocations for InvocationsApi {
    async fn invoke(
        &self,
        req: Request<InvokeRequest>,
    ) -> Result<Response<InvokeResponse>, Status> {
        super::access::check(
            &self.agent,
            &req,
            "lambda:InvokeFunction",
            &req.get_ref().function_name,
        )?;
        let r = req.into_inner();
        let invocation_type = match InvocationType::try_from(r.invocation_type) {
            Ok(InvocationType::RequestResponse) => T::RequestResponse,
            Ok(InvocationType::Event) => T::Event,
            Ok(InvocationType::DryRun) => T::DryRun,
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "unknown invocation_type {}: use REQUEST_RESPONSE, EVENT or DRY_RUN",
                    r.invocation_type
                )))
            }
        };
        let log_tail = match LogType::try_from(r.log_type) {
            Ok(LogType::Tail) => true,
            Ok(LogType::LogNone) => false,
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "unknown log_type {}: use LOG_NONE or TAIL",
                    r.log_type
                )))
            }
        };
        let out = self
            .agent
            .invoke(InvokeInput {
                // NAME or NAME:QUALIFIER: the invocation path resolves it.
                function_name: r.function_name,
                invocation_type,
                log_tail,
                payload: r.payload,
                client_context: r.client_context,
            })
            .await?;
        Ok(Response::new(InvokeResponse {
            status_code: out.status_code,
            payload: out.payload,
            function_error: out.function_error.unwrap_or_default(),
            log_result: out.log_result.unwrap_or_default(),
            executed_version: out.executed_version,
            request_id: out.request_id,
            timings: Some(flint_proto::v1::InvokeTimings {
                cold_start: out.timings.cold_start,
                pool_hit: out.timings.pool_hit,
                sandbox_ns: out.timings.start.sandbox_ns,
                init_boot_ns: out.timings.start.init_boot_ns,
                code_load_ns: out.timings.start.code_load_ns,
                runtime_init_ns: out.timings.start.runtime_init_ns,
                init_duration_ns: out.timings.init_duration_ns,
                duration_ns: out.timings.duration_ns,
                billed_ms: out.timings.billed_ms,
            }),
        }))
    }
}
