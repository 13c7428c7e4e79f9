//! The `flint.v1.Functions` service.

use crate::core::Agent;
use crate::functions::{ConfigChange, NewFunction};
use crate::store::Function;
use flint_proto::v1::functions_server::Functions;
use flint_proto::v1::*;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// Serves function management.
pub struct FunctionsApi {
    pub agent: Arc<Agent>,
}

/// Converts a stored function to its API form.
pub fn to_proto(agent: &Agent, f: Function) -> FunctionConfiguration {
    FunctionConfiguration {
        function_arn: agent.arn(&f.name),
        name: f.name,
        runtime: f.runtime,
        handler: f.handler,
        memory_mb: f.memory_mb,
        timeout_s: f.timeout_s,
        environment: f.environment,
        description: f.description,
        code_sha256: f.code_sha256,
        code_size: f.code_size,
        last_modified: f.last_modified,
        revision: f.revision,
        reserved_concurrency: f.reserved_concurrency,
        network: f.network.as_str().to_string(),
        role: f.role.unwrap_or_default(),
        secret_environment_keys: f.secret_environment.into_keys().collect(),
        ephemeral_storage_mb: f.ephemeral_storage_mb,
        layers: f
            .layers
            .iter()
            .map(|l| FunctionLayer {
                arn: agent.layer_version_arn(&l.name, l.version),
                code_size: l.code_size,
            })
            .collect(),
    }
}

/// Runs blocking registry work off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("worker failed: {e}")))?
}

#[tonic::async_trait]
impl Functions for FunctionsApi {
    async fn create_function(
        &self,
        req: Request<CreateFunctionRequest>,
    ) -> Result<Response<FunctionConfiguration>, Status> {
        super::access::check(
            &self.agent,
            &req,
            "lambda:CreateFunction",
            &req.get_ref().name,
        )?;
        let r = req.into_inner();
        let agent = self.agent.clone();
        let f = blocking(move || {
            agent
                .create_function(NewFunction {
                    name: r.name,
                    runtime: r.runtime,
                    handler: r.handler,
                    memory_mb: r.memory_mb,
                    timeout_s: r.timeout_s,
                    environment: r.environment,
                    description: r.description,
                    code_zip: r.code_zip,
                    network: (!r.network.is_empty()).then_some(r.network),
                    role: Some(r.role),
                    secret_environment: r.secret_environment,
                    ephemeral_storage_mb: r.ephemeral_storage_mb,
                    layers: r.layers,
                })
                .map_err(Status::from)
        })
        .await?;
        Ok(Response::new(to_proto(&self.agent, f)))
    }

    async fn update_function_code(
        &self,
        req: Request<UpdateFunctionCodeRequest>,
    ) -> Result<Response<FunctionConfiguration>, Status> {
        super::access::check(
            &self.agent,
            &req,
            "lambda:UpdateFunctionCode",
            &req.get_ref().name,
        )?;
        let r = req.into_inner();
        let agent = self.agent.clone();
        let f = blocking(move || {
            agent
                .update_code(&r.name, &r.code_zip)
                .map_err(Status::from)
        })
        .await?;
        Ok(Response::new(to_proto(&self.agent, f)))
    }

    async fn update_function_configuration(
        &self,
        req: Request<UpdateFunctionConfigurationRequest>,
    ) -> Result<Response<FunctionConfiguration>, Status> {
        super::access::check(
            &self.agent,
            &req,
            "lambda:UpdateFunctionConfiguration",
            &req.get_ref().name,
        )?;
        let r = req.into_inner();
        let agent = self.agent.clone();
        let f = blocking(move || {
            agent
                .update_config(
                    &r.name,
                    ConfigChange {
                        runtime: r.runtime,
                        handler: r.handler,
                        memory_mb: r.memory_mb,
                        timeout_s: r.timeout_s,
                        environment: r.environment.map(|e| e.variables),
                        description: r.description,
                        network: r.network,
                        role: r.role,
                        secret_environment: r.secret_environment.map(|e| e.variables),
                        ephemeral_storage_mb: r.ephemeral_storage_mb,
                        layers: r.layers.map(|l| l.arns),
                    },
                )
                .map_err(Status::from)
        })
        .await?;
        Ok(Response::new(to_proto(&self.agent, f)))
    }

    async fn get_function(
        &self,
        req: Request<GetFunctionRequest>,
    ) -> Result<Response<FunctionConfiguration>, Status> {
        super::access::check(&self.agent, &req, "lambda:GetFunction", &req.get_ref().name)?;
        let name = req.into_inner().name;
        let agent = self.agent.clone();
        let f = blocking(move || agent.get_function(&name).map_err(Status::from)).await?;
        Ok(Response::new(to_proto(&self.agent, f)))
    }

    async fn list_functions(
        &self,
        req: Request<ListFunctionsRequest>,
    ) -> Result<Response<ListFunctionsResponse>, Status> {
        super::access::check_unscoped(&self.agent, &req, "lambda:ListFunctions")?;
        let agent = self.agent.clone();
        let all = blocking(move || agent.list_functions().map_err(Status::from)).await?;
        Ok(Response::new(ListFunctionsResponse {
            functions: all.into_iter().map(|f| to_proto(&self.agent, f)).collect(),
        }))
    }

    async fn put_function_concurrency(
        &self,
        req: Request<PutFunctionConcurrencyRequest>,
    ) -> Result<Response<FunctionConfiguration>, Status> {
        super::access::check(
            &self.agent,
            &req,
            "lambda:PutFunctionConcurrency",
            &req.get_ref().name,
        )?;
        let r = req.into_inner();
        let agent = self.agent.clone();
        let f = blocking(move || {
            agent
                .set_concurrency(&r.name, Some(r.reserved_concurrency))
                .map_err(Status::from)
        })
        .await?;
        Ok(Response::new(to_proto(&self.agent, f)))
    }

    async fn delete_function_concurrency(
        &self,
        req: Request<DeleteFunctionConcurrencyRequest>,
    ) -> Result<Response<FunctionConfiguration>, Status> {
        super::access::check(
            &self.agent,
            &req,
            "lambda:DeleteFunctionConcurrency",
            &req.get_ref().name,
        )?;
        let r = req.into_inner();
        let agent = self.agent.clone();
        let f =
            blocking(move || agent.set_concurrency(&r.name, None).map_err(Status::from)).await?;
        Ok(Response::new(to_proto(&self.agent, f)))
    }

    async fn delete_function(
        &self,
        req: Request<DeleteFunctionRequest>,
    ) -> Result<Response<DeleteFunctionResponse>, Status> {
        super::access::check(
            &self.agent,
            &req,
            "lambda:DeleteFunction",
            &req.get_ref().name,
        )?;
        let r = req.into_inner();
        let agent = self.agent.clone();
        blocking(move || {
            agent
                .delete_function(&r.name, r.force)
                .map_err(Status::from)
        })
        .await?;
        Ok(Response::new(DeleteFunctionResponse {}))
    }
}
