//! Function operations: CreateFunction, GetFunction, GetFunctionConfiguration,
//! ListFunctions, UpdateFunctionCode, UpdateFunctionConfiguration, DeleteFunction.
//! Each calls the agent's own management functions, as the gRPC service does.

use super::dead_letter;
use super::errors::{function_error, ApiError};
use super::request::{ApiRequest, ApiResponse, Outcome};
use super::shapes::{self, configuration, revision_id};
use super::{versions, LambdaApi};
use crate::core::Agent;
use crate::functions::{ConfigChange, FunctionError, NewFunction};
use crate::store::Function;
use serde_json::json;
use std::sync::Arc;

/// Largest `MaxItems` of ListFunctions; 50 when not given, as in Lambda.
const MAX_ITEMS: usize = 10_000;
const DEFAULT_ITEMS: usize = 50;

/// Runs registry work off the async workers; errors in Lambda's shapes.
pub(super) async fn blocking<T: Send + 'static>(
    api: &LambdaApi,
    f: impl FnOnce(&Agent) -> Result<T, FunctionError> + Send + 'static,
) -> Result<T, ApiError> {
    let agent: Arc<Agent> = api.agent.clone();
    let place = api.place.clone();
    tokio::task::spawn_blocking(move || f(&agent).map_err(|e| function_error(e, &|n| place.arn(n))))
        .await
        .map_err(|e| ApiError::service(format!("worker failed: {e}")))?
}

/// The stored function, or ResourceNotFoundException.
pub(super) async fn lookup(api: &LambdaApi, name: &str) -> Result<Function, ApiError> {
    let name = name.to_string();
    blocking(api, move |a| a.get_function(&name)).await
}

fn decode_zip(b64: &str) -> Result<Vec<u8>, ApiError> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| {
            ApiError::invalid(format!(
                "ZipFile is not valid base64 ({e}): send the zip's bytes base64-encoded"
            ))
        })
}

fn zip_only(s3: bool, image: bool, package: Option<&str>) -> Result<(), ApiError> {
    if s3 {
        return Err(ApiError::invalid(
            "code from S3 (S3Bucket/S3Key) is not supported by Flint: pass the zip itself in ZipFile",
        ));
    }
    if image || package.is_some_and(|p| p != "Zip") {
        return Err(ApiError::invalid(
            "container images are not supported by Flint: use PackageType Zip with ZipFile",
        ));
    }
    Ok(())
}

fn x86_only(arch: Option<&[String]>) -> Result<(), ApiError> {
    match arch {
        Some(a) if a.iter().any(|a| a != "x86_64") => Err(ApiError::invalid(format!(
            "Architectures {a:?} is not offered here: this host runs x86_64"
        ))),
        _ => Ok(()),
    }
}

fn check_revision(f: &Function, want: Option<&str>) -> Result<(), ApiError> {
    match want {
        Some(w) if w != revision_id(f) => Err(ApiError::precondition(format!(
            "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id (it is {})",
            revision_id(f)
        ))),
        _ => Ok(()),
    }
}

/// POST /2015-03-31/functions
pub async fn create(api: &LambdaApi, req: &ApiRequest) -> Outcome {
    let b: shapes::CreateFunction = req.json()?;
    let (name, qualifier) = api.place.resolve(&b.function_name)?;
    if qualifier.is_some() {
        return Err(ApiError::invalid(
            "a new function's name takes no qualifier",
        ));
    }
    zip_only(
        b.code.s3_bucket.is_some(),
        b.code.image_uri.is_some(),
        b.package_type.as_deref(),
    )?;
    x86_only(b.architectures.as_deref())?;
    dead_letter::check(api, b.dead_letter_config.as_ref())?;
    let zip = decode_zip(b.code.zip_file.as_deref().ok_or_else(|| {
        ApiError::invalid("Code.ZipFile is required: the function's zip, base64-encoded")
    })?)?;
    let ephemeral = shapes::EphemeralStorage::checked(b.ephemeral_storage)?;
    let new = NewFunction {
        name,
        runtime: b.runtime.unwrap_or_default(),
        handler: b.handler.unwrap_or_default(),
        memory_mb: b.memory_size.unwrap_or(0),
        timeout_s: b.timeout.unwrap_or(0),
        environment: b.environment.map(|e| e.variables).unwrap_or_default(),
        description: b.description,
        code_zip: zip,
        network: b.flint_network,
        role: b.role,
        secret_environment: Default::default(),
        ephemeral_storage_mb: ephemeral.unwrap_or(0),
        layers: b.layers.unwrap_or_default(),
    };
    let f = blocking(api, move |a| a.create_function(new)).await?;
    dead_letter::apply(api, &f.name, b.dead_letter_config)?;
    if b.publish {
        return published(api, f.name, 201).await;
    }
    Ok(ApiResponse::json(201, &shown(api, &f)))
}

/// `Publish: true`: the new version's configuration (with `status`).
async fn published(api: &LambdaApi, name: String, status: u16) -> Outcome {
    let v = versions::publish_named(api, name, String::new(), None, None).await?;
    Ok(ApiResponse::json(
        status,
        &versions::version_configuration(&v.config, &v.number.to_string(), &api.place),
    ))
}

/// GET /2015-03-31/functions/NAME?Qualifier=
pub async fn get(api: &LambdaApi, req: &ApiRequest, given: &str) -> Outcome {
    versions::get(api, req, given).await
}

/// GET /2015-03-31/functions/NAME/configuration?Qualifier=
pub async fn get_configuration(api: &LambdaApi, req: &ApiRequest, given: &str) -> Outcome {
    versions::get_configuration(api, req, given).await
}

/// The function's configuration with its dead-letter target.
fn shown(api: &LambdaApi, f: &Function) -> serde_json::Value {
    let mut c = configuration(f, &api.place);
    dead_letter::show(api, &f.name, &mut c);
    c
}

/// GET /2015-03-31/functions/?Marker=&MaxItems=
pub async fn list(api: &LambdaApi, req: &ApiRequest) -> Outcome {
    let max = match req.param("MaxItems") {
        None => DEFAULT_ITEMS,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=MAX_ITEMS).contains(&n) => n,
            _ => {
                return Err(ApiError::invalid(format!(
                    "MaxItems {s:?} must be a whole number from 1 to {MAX_ITEMS}"
                )))
            }
        },
    };
    let every_version = match req.param("FunctionVersion") {
        None => false,
        Some(v) if v == "ALL" => true,
        Some(_) => return Err(ApiError::invalid("FunctionVersion must be ALL")),
    };
    let all = blocking(api, |a| a.list_functions()).await?;
    if every_version {
        return versions::list_all(api, req, all).await;
    }
    // The marker is the name of the last function of the previous page; the
    // registry lists by name.
    let marker = req.param("Marker").filter(|m| !m.is_empty());
    let rest: Vec<&Function> = all
        .iter()
        .filter(|f| marker.as_deref().is_none_or(|m| f.name.as_str() > m))
        .collect();
    let page: Vec<serde_json::Value> = rest
        .iter()
        .take(max)
        .map(|f| configuration(f, &api.place))
        .collect();
    let mut out = json!({ "Functions": page });
    if rest.len() > max {
        out["NextMarker"] = json!(rest[max - 1].name);
    }
    Ok(ApiResponse::json(200, &out))
}

/// PUT /2015-03-31/functions/NAME/code
pub async fn update_code(api: &LambdaApi, req: &ApiRequest, given: &str) -> Outcome {
    let name = api.place.resolve_latest(given, None)?;
    let b: shapes::UpdateCode = req.json()?;
    zip_only(b.s3_bucket.is_some(), b.image_uri.is_some(), None)?;
    x86_only(b.architectures.as_deref())?;
    let zip =
        decode_zip(b.zip_file.as_deref().ok_or_else(|| {
            ApiError::invalid("ZipFile is required: the new zip, base64-encoded")
        })?)?;
    check_revision(&lookup(api, &name).await?, b.revision_id.as_deref())?;
    let f = if b.dry_run {
        blocking(api, move |a| a.check_code(&name, &zip)).await?
    } else {
        blocking(api, move |a| a.update_code(&name, &zip)).await?
    };
    if b.publish && !b.dry_run {
        return published(api, f.name, 200).await;
    }
    Ok(ApiResponse::json(200, &configuration(&f, &api.place)))
}

/// PUT /2015-03-31/functions/NAME/configuration
pub async fn update_configuration(api: &LambdaApi, req: &ApiRequest, given: &str) -> Outcome {
    let name = api.place.resolve_latest(given, None)?;
    let b: shapes::UpdateConfig = req.json()?;
    check_revision(&lookup(api, &name).await?, b.revision_id.as_deref())?;
    dead_letter::check(api, b.dead_letter_config.as_ref())?;
    let change = ConfigChange {
        runtime: b.runtime,
        handler: b.handler,
        memory_mb: b.memory_size,
        timeout_s: b.timeout,
        environment: b.environment.map(|e| e.variables),
        description: b.description,
        network: b.flint_network,
        role: b.role,
        secret_environment: None,
        ephemeral_storage_mb: shapes::EphemeralStorage::checked(b.ephemeral_storage)?,
        layers: b.layers,
    };
    let f = blocking(api, move |a| a.update_config(&name, change)).await?;
    dead_letter::apply(api, &f.name, b.dead_letter_config)?;
    Ok(ApiResponse::json(200, &shown(api, &f)))
}

/// DELETE /2015-03-31/functions/NAME?Qualifier=: the function, or one version.
pub async fn delete(api: &LambdaApi, req: &ApiRequest, given: &str) -> Outcome {
    let (name, q) = api
        .place
        .resolve_qualified(given, req.param("Qualifier").as_deref())?;
    if let Some(q) = q {
        return versions::delete_version(api, name, &q).await;
    }
    blocking(api, move |a| a.delete_function(&name, false)).await?;
    Ok(ApiResponse::empty(204))
}
