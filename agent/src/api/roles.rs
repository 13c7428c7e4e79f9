//! The `flint.v1.Roles` service: execution roles and named secrets.

use crate::core::Agent;
use crate::roles::{role_arn, Policy, Role};
use flint_proto::v1::roles_server::Roles;
use flint_proto::v1::*;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// Serves role and secret management.
pub struct RolesApi {
    pub agent: Arc<Agent>,
}

fn to_proto(agent: &Agent, r: Role) -> flint_proto::v1::Role {
    flint_proto::v1::Role {
        arn: role_arn(&agent.config().account_id, &r.name),
        name: r.name,
        invoke_functions: r.policy.invoke_functions,
        read_secrets: r.policy.read_secrets,
        description: r.description,
        created: r.created,
    }
}

fn from_proto(r: Option<flint_proto::v1::Role>) -> Result<Role, Status> {
    let r = r.ok_or_else(|| Status::invalid_argument("role is required"))?;
    Ok(Role {
        name: r.name,
        policy: Policy {
            invoke_functions: r.invoke_functions,
            read_secrets: r.read_secrets,
        },
        description: r.description,
        created: String::new(),
    })
}

/// Runs blocking registry work off the async workers.
async fn blocking<T: Send + 'static>(
    agent: &Arc<Agent>,
    f: impl FnOnce(&Agent) -> Result<T, crate::roles::RoleError> + Send + 'static,
) -> Result<T, Status> {
    let agent = agent.clone();
    tokio::task::spawn_blocking(move || f(&agent))
        .await
        .map_err(|e| Status::internal(format!("worker failed: {e}")))?
        .map_err(Status::from)
}

#[tonic::async_trait]
impl Roles for RolesApi {
    async fn create_role(
        &self,
        req: Request<CreateRoleRequest>,
    ) -> Result<Response<flint_proto::v1::Role>, Status> {
        let r = from_proto(req.into_inner().role)?;
        let r = blocking(&self.agent, move |a| a.create_role(r)).await?;
        Ok(Response::new(to_proto(&self.agent, r)))
    }

    async fn update_role(
        &self,
        req: Request<UpdateRoleRequest>,
    ) -> Result<Response<flint_proto::v1::Role>, Status> {
        let r = from_proto(req.into_inner().role)?;
        let r = blocking(&self.agent, move |a| a.update_role(r)).await?;
        Ok(Response::new(to_proto(&self.agent, r)))
    }

    async fn get_role(
        &self,
        req: Request<GetRoleRequest>,
    ) -> Result<Response<flint_proto::v1::Role>, Status> {
        let name = req.into_inner().name;
        let r = blocking(&self.agent, move |a| a.get_role(&name)).await?;
        Ok(Response::new(to_proto(&self.agent, r)))
    }

    async fn list_roles(
        &self,
        _req: Request<ListRolesRequest>,
    ) -> Result<Response<ListRolesResponse>, Status> {
        let all = blocking(&self.agent, |a| a.list_roles()).await?;
        Ok(Response::new(ListRolesResponse {
            roles: all.into_iter().map(|r| to_proto(&self.agent, r)).collect(),
        }))
    }

    async fn delete_role(
        &self,
        req: Request<DeleteRoleRequest>,
    ) -> Result<Response<DeleteRoleResponse>, Status> {
        let name = req.into_inner().name;
        blocking(&self.agent, move |a| a.delete_role(&name)).await?;
        Ok(Response::new(DeleteRoleResponse {}))
    }

    async fn put_secret(
        &self,
        req: Request<PutSecretRequest>,
    ) -> Result<Response<SecretInfo>, Status> {
        let r = req.into_inner();
        let name = r.name.clone();
        let updated = blocking(&self.agent, move |a| a.put_secret(&r.name, &r.value)).await?;
        Ok(Response::new(SecretInfo { name, updated }))
    }

    async fn list_secrets(
        &self,
        _req: Request<ListSecretsRequest>,
    ) -> Result<Response<ListSecretsResponse>, Status> {
        let all = blocking(&self.agent, |a| a.list_secrets()).await?;
        Ok(Response::new(ListSecretsResponse {
            secrets: all
                .into_iter()
                .map(|(name, updated)| SecretInfo { name, updated })
                .collect(),
        }))
    }

    async fn delete_secret(
        &self,
        req: Request<DeleteSecretRequest>,
    ) -> Result<Response<DeleteSecretResponse>, Status> {
        let name = req.into_inner().name;
        blocking(&self.agent, move |a| a.delete_secret(&name)).await?;
        Ok(Response::new(DeleteSecretResponse {}))
    }
}
