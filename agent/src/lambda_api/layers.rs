//! Layer operations on Lambda's `/2018-10-31/layers` paths: PublishLayerVersion,
//! ListLayers, ListLayerVersions, GetLayerVersion, GetLayerVersionByArn,
//! DeleteLayerVersion, in Lambda's shapes (the two lists paginated:
//! [`super::layer_pages`]). Each calls the agent's own layer functions, as the gRPC
//! service does.

use super::errors::{layer_error, ApiError};
use super::layer_pages::{page, Order};
use super::request::{ApiRequest, ApiResponse, Outcome};
use super::shapes::{code_sha256_b64, last_modified};
use super::sigv4::percent_decode;
use super::LambdaApi;
use crate::access_policy::Caller;
use crate::core::Agent;
use crate::layers::{LayerError, NewLayer};
use crate::store::layers::LayerVersion;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// The path every layer operation starts with.
pub const PREFIX: &str = "/2018-10-31/layers";

/// PublishLayerVersion's body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Publish {
    content: Content,
    #[serde(default)]
    description: String,
    #[serde(default)]
    compatible_runtimes: Vec<String>,
    compatible_architectures: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Content {
    zip_file: Option<String>,
    s3_bucket: Option<String>,
}

/// The operation a layer path names: (operation, layer, version).
fn operation(req: &ApiRequest) -> Result<(&'static str, String, Option<u64>), ApiError> {
    let rest = req.path.strip_prefix(PREFIX).unwrap_or_default();
    let segs: Vec<String> = rest
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(&percent_decode(s)).into_owned())
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let version = |v: &str| {
        v.parse::<u64>()
            .map_err(|_| ApiError::invalid(format!("version {v:?} is not a number")))
    };
    Ok(match (req.method.as_str(), &segs[..]) {
        ("GET", []) if req.param("find").as_deref() == Some("LayerVersion") => {
            ("GetLayerVersionByArn", String::new(), None)
        }
        ("GET", []) => ("ListLayers", String::new(), None),
        ("POST", [name, "versions"]) => ("PublishLayerVersion", name.to_string(), None),
        ("GET", [name, "versions"]) => ("ListLayerVersions", name.to_string(), None),
        ("GET", [name, "versions", v]) => ("GetLayerVersion", name.to_string(), Some(version(v)?)),
        ("DELETE", [name, "versions", v]) => {
            ("DeleteLayerVersion", name.to_string(), Some(version(v)?))
        }
        _ => return Err(ApiError::unknown_operation(&req.method, &req.path)),
    })
}

/// Runs the layer operation `req` asks for, if `caller`'s key policy allows it.
pub async fn route(api: &LambdaApi, req: &ApiRequest, caller: Option<&Caller>) -> Outcome {
    let (op, given, version) = operation(req)?;
    if let Some(c) = caller {
        // IAM checks GetLayerVersionByArn as GetLayerVersion.
        let action = op.strip_suffix("ByArn").unwrap_or(op);
        super::key_auth::authorize(api, c, req, action, None)?;
    }
    tracing::debug!(operation = op, layer = %given, "REST layer operation");
    match op {
        "ListLayers" => {
            let all = blocking(api, |a| a.list_layers()).await?;
            let runtime = req.param("CompatibleRuntime");
            let matching: Vec<&LayerVersion> = all
                .iter()
                .filter(|l| matches_runtime(l, runtime.as_deref()))
                .collect();
            let (matching, next) = page(req, matching, Order::NamesAscending, |l| l.name.clone())?;
            let layers: Vec<Value> = matching
                .iter()
                .map(|l| {
                    json!({
                        "LayerName": l.name,
                        "LayerArn": api.agent.layer_arn(&l.name),
                        "LatestMatchingVersion": version_item(&api.agent, l),
                    })
                })
                .collect();
            let mut out = json!({ "Layers": layers });
            if let Some(m) = next {
                out["NextMarker"] = json!(m);
            }
            Ok(ApiResponse::json(200, &out))
        }
        "ListLayerVersions" => {
            let all = blocking(api, move |a| {
                let name = a.layer_name(&given)?;
                a.list_layer_versions(&name)
            })
            .await?;
            let runtime = req.param("CompatibleRuntime");
            let matching: Vec<&LayerVersion> = all
                .iter()
                .filter(|l| matches_runtime(l, runtime.as_deref()))
                .collect();
            let (matching, next) = page(req, matching, Order::VersionsDescending, |l| {
                l.version.to_string()
            })?;
            let items: Vec<Value> = matching
                .iter()
                .map(|l| version_item(&api.agent, l))
                .collect();
            let mut out = json!({ "LayerVersions": items });
            if let Some(m) = next {
                out["NextMarker"] = json!(m);
            }
            Ok(ApiResponse::json(200, &out))
        }
        "GetLayerVersion" | "GetLayerVersionByArn" => {
            let arn = req.param("Arn").unwrap_or_default();
            let l = blocking(api, move |a| {
                let (name, v) = match version {
                    Some(v) => (a.layer_name(&given)?, v),
                    None => {
                        let c = a.config();
                        crate::layers::arn::parse_version_arn(&arn, &c.region, &c.account_id)?
                    }
                };
                a.get_layer_version(&name, v)
            })
            .await?;
            Ok(ApiResponse::json(200, &full(&api.agent, &l)))
        }
        "DeleteLayerVersion" => {
            let v = version.unwrap_or_default();
            blocking(api, move |a| {
                let name = a.layer_name(&given)?;
                a.delete_layer_version(&name, v)
            })
            .await?;
            Ok(ApiResponse::empty(204))
        }
        _ => {
            let b: Publish = req.json()?;
            if b.content.s3_bucket.is_some() {
                return Err(ApiError::invalid(
                    "layer content from S3 (S3Bucket/S3Key) is not supported by Flint: pass the zip itself in Content.ZipFile",
                ));
            }
            if let Some(a) = b.compatible_architectures.as_deref() {
                if a.iter().any(|a| a != "x86_64") {
                    return Err(ApiError::invalid(format!(
                        "CompatibleArchitectures {a:?} is not offered here: this host runs x86_64"
                    )));
                }
            }
            let zip = decode(b.content.zip_file.as_deref().ok_or_else(|| {
                ApiError::invalid("Content.ZipFile is required: the layer's zip, base64-encoded")
            })?)?;
            let new = NewLayer {
                name: given,
                zip,
                description: b.description,
                compatible_runtimes: b.compatible_runtimes,
            };
            let l = blocking(api, move |a| a.publish_layer(new)).await?;
            Ok(ApiResponse::json(201, &full(&api.agent, &l)))
        }
    }
}

fn matches_runtime(l: &LayerVersion, runtime: Option<&str>) -> bool {
    runtime.is_none_or(|r| l.compatible_runtimes.iter().any(|c| c == r))
}

/// A `LayerVersionsListItem`.
fn version_item(agent: &Agent, l: &LayerVersion) -> Value {
    json!({
        "LayerVersionArn": agent.layer_version_arn(&l.name, l.version),
        "Version": l.version,
        "Description": l.description,
        "CreatedDate": last_modified(&l.created),
        "CompatibleRuntimes": l.compatible_runtimes,
        "CompatibleArchitectures": ["x86_64"],
    })
}

/// PublishLayerVersion's and GetLayerVersion's answer.
fn full(agent: &Agent, l: &LayerVersion) -> Value {
    let mut v = version_item(agent, l);
    v["LayerArn"] = json!(agent.layer_arn(&l.name));
    v["Content"] = json!({
        "CodeSha256": code_sha256_b64(&l.code_sha256),
        "CodeSize": l.code_size,
    });
    v
}

fn decode(b64: &str) -> Result<Vec<u8>, ApiError> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| {
            ApiError::invalid(format!(
                "ZipFile is not valid base64 ({e}): send the zip's bytes base64-encoded"
            ))
        })
}

/// Runs layer work off the async workers; errors in Lambda's shapes.
async fn blocking<T: Send + 'static>(
    api: &LambdaApi,
    f: impl FnOnce(&Agent) -> Result<T, LayerError> + Send + 'static,
) -> Result<T, ApiError> {
    let agent: Arc<Agent> = api.agent.clone();
    tokio::task::spawn_blocking(move || f(&agent).map_err(layer_error))
        .await
        .map_err(|e| ApiError::service(format!("worker failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, path: &str, query: &str) -> ApiRequest {
        ApiRequest {
            method: method.into(),
            path: path.into(),
            query: query.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    #[test]
    fn paths_name_lambdas_operations() {
        let op = |m: &str, p: &str, q: &str| operation(&req(m, p, q)).unwrap();
        assert_eq!(op("GET", PREFIX, ""), ("ListLayers", String::new(), None));
        assert_eq!(
            op("GET", PREFIX, "find=LayerVersion&Arn=x").0,
            "GetLayerVersionByArn"
        );
        assert_eq!(
            op("POST", "/2018-10-31/layers/deps/versions", ""),
            ("PublishLayerVersion", "deps".into(), None)
        );
        assert_eq!(
            op("GET", "/2018-10-31/layers/deps/versions/3", ""),
            ("GetLayerVersion", "deps".into(), Some(3))
        );
        assert_eq!(
            op("DELETE", "/2018-10-31/layers/deps/versions/3", "").0,
            "DeleteLayerVersion"
        );
        assert_eq!(
            op("GET", "/2018-10-31/layers/deps/versions", "").0,
            "ListLayerVersions"
        );
        assert!(operation(&req("GET", "/2018-10-31/layers/deps/versions/x", "")).is_err());
    }
}
