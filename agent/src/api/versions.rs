//! The `flint.v1.Versions` service: published versions and aliases.

use super::functions::to_proto;
use crate::core::Agent;
use crate::functions::FunctionError;
use crate::store::versions::{Alias as Stored, Routing, VersionError, LATEST};
use crate::store::Function;
use flint_proto::v1::versions_server::Versions;
use flint_proto::v1::*;
use std::sync::Arc;
use tonic::{Code, Request, Response, Status};

/// Serves versions and aliases.
pub struct VersionsApi {
    pub agent: Arc<Agent>,
}

impl From<VersionError> for Status {
    fn from(e: VersionError) -> Status {
        let code = match &e {
            VersionError::VersionNotFound { .. } | VersionError::AliasNotFound { .. } => {
                Code::NotFound
            }
            VersionError::AliasExists { .. } => Code::AlreadyExists,
            VersionError::InUse { .. } | VersionError::Precondition(_) => Code::FailedPrecondition,
            VersionError::Invalid(_) => Code::InvalidArgument,
            VersionError::Store(_) => {
                let VersionError::Store(s) = e else {
                    unreachable!("matched above")
                };
                return FunctionError::Store(s).into();
            }
        };
        Status::new(code, e.to_string())
    }
}

/// Runs blocking registry work off the async workers.
async fn blocking<T: Send + 'static>(
    agent: &Arc<Agent>,
    f: impl FnOnce(&Agent) -> Result<T, VersionError> + Send + 'static,
) -> Result<T, Status> {
    let agent = agent.clone();
    tokio::task::spawn_blocking(move || f(&agent).map_err(Status::from))
        .await
        .map_err(|e| Status::internal(format!("worker failed: {e}")))?
}

/// A version's configuration: its function_arn carries the version.
fn version_info(agent: &Agent, version: String, f: Function) -> VersionInfo {
    let mut configuration = to_proto(agent, f);
    if version != LATEST {
        configuration.function_arn = format!("{}:{version}", configuration.function_arn);
    }
    VersionInfo {
        version,
        configuration: Some(configuration),
        usage: None,
    }
}

fn alias_to_proto(agent: &Agent, a: Stored) -> Alias {
    let (additional_version, additional_weight) =
        a.routing.map(|r| (r.version, r.weight)).unwrap_or_default();
    Alias {
        alias_arn: format!("{}:{}", agent.arn(&a.function), a.name),
        function_name: a.function,
        name: a.name,
        function_version: a.version,
        additional_version,
        additional_weight,
        description: a.description,
        revision: a.revision,
    }
}

fn routing(version: String, weight: f64) -> Option<Routing> {
    (!version.is_empty()).then_some(Routing { version, weight })
}

#[tonic::async_trait]
impl Versions for VersionsApi {
    async fn publish_version(
        &self,
        req: Request<PublishVersionRequest>,
    ) -> Result<Response<VersionInfo>, Status> {
        super::access::check(
            &self.agent,
            &req,
            "lambda:PublishVersion",
            &req.get_ref().function_name,
        )?;
        let r = req.into_inner();
        let v = blocking(&self.agent, move |a| {
            a.publish_version(&r.function_name, &r.description, |f| {
                if !r.code_sha256.is_empty() && r.code_sha256 != f.code_sha256 {
                    return Err(VersionError::Precondition(format!(
                        "code_sha256 {} is not $LATEST's code ({}): publish what you tested, or leave it empty",
                        r.code_sha256, f.code_sha256
                    )));
                }
                Ok(())
            })
        })
        .await?;
        Ok(Response::new(version_info(
            &self.agent,
            v.number.to_string(),
            v.config,
        )))
    }

    async fn list_versions(
        &self,
        req: Request<ListVersionsRequest>,
    ) -> Result<Response<ListVersionsResponse>, Status> {
        super::access::check(
            &self.agent,
            &req,
            "lambda:ListVersionsByFunction",
            &req.get_ref().function_name,
        )?;
        let name = req.into_inner().function_name;
        let (latest, versions, usage) = blocking(&self.agent, move |a| {
            let latest = a.store().get(&name)?;
            let versions = a.list_versions(&name)?;
            // Usage is best effort: an unreadable metering database leaves it unset.
            let usage = a.meter().usage_by_version(&name).unwrap_or_default();
            Ok((latest, versions, usage))
        })
        .await?;
        let mut all = vec![version_info(&self.agent, LATEST.into(), latest)];
        all.extend(
            versions
                .into_iter()
                .map(|v| version_info(&self.agent, v.number.to_string(), v.config)),
        );
        for info in &mut all {
            if let Some(u) = usage.iter().find(|u| u.version == info.version) {
                info.usage = Some(VersionUsage {
                    requests: u.requests,
                    errors: u.errors,
                    gb_seconds: u.billed_ms_x_memory_mb as f64 / 1_024_000.0,
                });
            }
        }
        Ok(Response::new(ListVersionsResponse { versions: all }))
    }

    async fn delete_version(
        &self,
        req: Request<DeleteVersionRequest>,
    ) -> Result<Response<DeleteVersionResponse>, Status> {
        super::access::check(
            &self.agent,
            &req,
            "lambda:DeleteFunction",
            &req.get_ref().function_name,
        )?;
        let r = req.into_inner();
        blocking(&self.agent, move |a| {
            a.delete_version(&r.function_name, r.version)
        })
        .await?;
        Ok(Response::new(DeleteVersionResponse {}))
    }

    async fn create_alias(&self, req: Request<Alias>) -> Result<Response<Alias>, Status> {
        super::access::check(
            &self.agent,
            &req,
            "lambda:CreateAlias",
            &req.get_ref().function_name,
        )?;
        let r = req.into_inner();
        let a = Stored {
            function: r.function_name,
            name: r.name,
            version: r.function_version,
            routing: routing(r.additional_version, r.additional_weight),
            description: r.description,
            revision: 1,
        };
        let a = blocking(&self.agent, move |agent| agent.create_alias(&a).map(|()| a)).await?;
        Ok(Response::new(alias_to_proto(&self.agent, a)))
    }

    async fn get_alias(&self, req: Request<GetAliasRequest>) -> Result<Response<Alias>, Status> {
        super::access::check(
            &self.agent,
            &req,
            "lambda:GetAlias",
            &req.get_ref().function_name,
        )?;
        let r = req.into_inner();
        let a = blocking(&self.agent, move |a| a.get_alias(&r.function_name, &r.name)).await?;
        Ok(Response::new(alias_to_proto(&self.agent, a)))
    }

    async fn update_alias(
        &self,
        req: Request<UpdateAliasRequest>,
    ) -> Result<Response<Alias>, Status> {
        super::access::check(
            &self.agent,
            &req,
            "lambda:UpdateAlias",
            &req.get_ref().function_name,
        )?;
        let r = req.into_inner();
        let a = blocking(&self.agent, move |agent| {
            agent.update_alias(&r.function_name, &r.name, |a| {
                if let Some(v) = r.function_version {
                    a.version = v;
                }
                if let Some(d) = r.description {
                    a.description = d;
                }
                if r.set_routing {
                    a.routing = routing(r.additional_version, r.additional_weight);
                }
                Ok(())
            })
        })
        .await?;
        Ok(Response::new(alias_to_proto(&self.agent, a)))
    }

    async fn delete_alias(
        &self,
        req: Request<DeleteAliasRequest>,
    ) -> Result<Response<DeleteAliasResponse>, Status> {
        super::access::check(
            &self.agent,
            &req,
            "lambda:DeleteAlias",
            &req.get_ref().function_name,
        )?;
        let r = req.into_inner();
        blocking(&self.agent, move |a| {
            a.delete_alias(&r.function_name, &r.name)
        })
        .await?;
        Ok(Response::new(DeleteAliasResponse {}))
    }

    async fn list_aliases(
        &self,
        req: Request<ListAliasesRequest>,
    ) -> Result<Response<ListAliasesResponse>, Status> {
        super::access::check(
            &self.agent,
            &req,
            "lambda:ListAliases",
            &req.get_ref().function_name,
        )?;
        let name = req.into_inner().function_name;
        let list = blocking(&self.agent, move |a| a.list_aliases(&name)).await?;
        Ok(Response::new(ListAliasesResponse {
            aliases: list
                .into_iter()
                .map(|a| alias_to_proto(&self.agent, a))
                .collect(),
        }))
    }
}
