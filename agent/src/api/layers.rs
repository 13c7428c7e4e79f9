//! The `flint.v1.Layers` service: publish, list, read and delete layer versions.

use crate::core::Agent;
use crate::layers::{LayerError, NewLayer};
use crate::store::layers::LayerVersion as Stored;
use flint_proto::v1::layers_server::Layers;
use flint_proto::v1::*;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// Serves layers.
pub struct LayersApi {
    pub agent: Arc<Agent>,
}

/// A stored layer version in its API form.
pub fn to_proto(agent: &Agent, l: Stored) -> LayerVersion {
    LayerVersion {
        layer_arn: agent.layer_arn(&l.name),
        layer_version_arn: agent.layer_version_arn(&l.name, l.version),
        layer_name: l.name,
        version: l.version,
        description: l.description,
        compatible_runtimes: l.compatible_runtimes,
        code_sha256: l.code_sha256,
        code_size: l.code_size,
        unpacked_size: l.unpacked_size,
        created: l.created,
    }
}

/// Runs blocking registry work off the async workers.
async fn blocking<T: Send + 'static>(
    agent: &Arc<Agent>,
    f: impl FnOnce(&Agent) -> Result<T, LayerError> + Send + 'static,
) -> Result<T, Status> {
    let agent = agent.clone();
    tokio::task::spawn_blocking(move || f(&agent).map_err(Status::from))
        .await
        .map_err(|e| Status::internal(format!("worker failed: {e}")))?
}

#[tonic::async_trait]
impl Layers for LayersApi {
    async fn publish_layer_version(
        &self,
        req: Request<PublishLayerVersionRequest>,
    ) -> Result<Response<LayerVersion>, Status> {
        super::access::check_unscoped(&self.agent, &req, "lambda:PublishLayerVersion")?;
        let r = req.into_inner();
        let l = blocking(&self.agent, move |a| {
            a.publish_layer(NewLayer {
                name: r.layer_name,
                zip: r.zip,
                description: r.description,
                compatible_runtimes: r.compatible_runtimes,
            })
        })
        .await?;
        Ok(Response::new(to_proto(&self.agent, l)))
    }

    async fn list_layers(
        &self,
        req: Request<ListLayersRequest>,
    ) -> Result<Response<ListLayersResponse>, Status> {
        super::access::check_unscoped(&self.agent, &req, "lambda:ListLayers")?;
        let all = blocking(&self.agent, |a| a.list_layers()).await?;
        Ok(Response::new(ListLayersResponse {
            layers: all.into_iter().map(|l| to_proto(&self.agent, l)).collect(),
        }))
    }

    async fn list_layer_versions(
        &self,
        req: Request<ListLayerVersionsRequest>,
    ) -> Result<Response<ListLayerVersionsResponse>, Status> {
        super::access::check_unscoped(&self.agent, &req, "lambda:ListLayerVersions")?;
        let given = req.into_inner().layer_name;
        let all = blocking(&self.agent, move |a| {
            let name = a.layer_name(&given)?;
            a.list_layer_versions(&name)
        })
        .await?;
        Ok(Response::new(ListLayerVersionsResponse {
            versions: all.into_iter().map(|l| to_proto(&self.agent, l)).collect(),
        }))
    }

    async fn get_layer_version(
        &self,
        req: Request<GetLayerVersionRequest>,
    ) -> Result<Response<LayerVersion>, Status> {
        super::access::check_unscoped(&self.agent, &req, "lambda:GetLayerVersion")?;
        let r = req.into_inner();
        let l = blocking(&self.agent, move |a| {
            let name = a.layer_name(&r.layer_name)?;
            a.get_layer_version(&name, r.version)
        })
        .await?;
        Ok(Response::new(to_proto(&self.agent, l)))
    }

    async fn delete_layer_version(
        &self,
        req: Request<DeleteLayerVersionRequest>,
    ) -> Result<Response<DeleteLayerVersionResponse>, Status> {
        super::access::check_unscoped(&self.agent, &req, "lambda:DeleteLayerVersion")?;
        let r = req.into_inner();
        blocking(&self.agent, move |a| {
            let name = a.layer_name(&r.layer_name)?;
            a.delete_layer_version(&name, r.version)
        })
        .await?;
        Ok(Response::new(DeleteLayerVersionResponse {}))
    }
}
