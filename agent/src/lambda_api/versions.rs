//! Versions: PublishVersion and ListVersionsByFunction
//! (/2015-03-31/functions/NAME/versions), and what GetFunction,
//! GetFunctionConfiguration and DeleteFunction do with a qualifier. Errors of
//! versions and aliases in Lambda's shapes ([`version_error`]).

use super::errors::{function_error, ApiError};
use super::names::{Place, LATEST};
use super::request::{ApiRequest, ApiResponse, Outcome};
use super::shapes::{code_sha256_b64, configuration, revision_id};
use super::LambdaApi;
use crate::core::Agent;
use crate::functions::FunctionError;
use crate::store::versions::{Version, VersionError};
use crate::store::Function;
use crate::versions::{Qualifier, Resolved};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Largest `MaxItems` of the version and alias lists; 50 when not given.
const MAX_ITEMS: usize = 10_000;
const DEFAULT_ITEMS: usize = 50;

/// A version or alias error in Lambda's shapes; `arn` names a function.
pub fn version_error(e: VersionError, place: &Place) -> ApiError {
    let arn = |n: &str| place.arn(n);
    match e {
        VersionError::Store(s) => function_error(FunctionError::Store(s), &arn),
        VersionError::VersionNotFound { function, version } => ApiError::not_found(format!(
            "Function not found: {}:{version}",
            place.arn(&function)
        )),
        VersionError::AliasNotFound { function, alias } => {
            ApiError::not_found(format!("Alias not found: {}:{alias}", place.arn(&function)))
        }
        e @ (VersionError::AliasExists { .. } | VersionError::InUse { .. }) => {
            ApiError::conflict(e.to_string())
        }
        VersionError::Invalid(m) => ApiError::invalid(m),
        VersionError::Precondition(m) => ApiError::precondition(m),
    }
}

/// Runs version and alias work off the async workers; errors in Lambda's shapes.
pub(super) async fn blocking<T: Send + 'static>(
    api: &LambdaApi,
    f: impl FnOnce(&Agent) -> Result<T, VersionError> + Send + 'static,
) -> Result<T, ApiError> {
    let agent: Arc<Agent> = api.agent.clone();
    let place = api.place.clone();
    tokio::task::spawn_blocking(move || f(&agent).map_err(|e| version_error(e, &place)))
        .await
        .map_err(|e| ApiError::service(format!("worker failed: {e}")))?
}

/// The `MaxItems` parameter: 1 to 10,000, 50 when absent.
pub(super) fn max_items(req: &ApiRequest) -> Result<usize, ApiError> {
    match req.param("MaxItems") {
        None => Ok(DEFAULT_ITEMS),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=MAX_ITEMS).contains(&n) => Ok(n),
            _ => Err(ApiError::invalid(format!(
                "MaxItems {s:?} must be a whole number from 1 to {MAX_ITEMS}"
            ))),
        },
    }
}

/// One page of `items` after the item whose key is `Marker`: (page, NextMarker).
pub(super) fn page<T>(
    req: &ApiRequest,
    items: Vec<T>,
    key: impl Fn(&T) -> String,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let max = max_items(req)?;
    let mut rest: Vec<T> = match req.param("Marker").filter(|m| !m.is_empty()) {
        Some(m) => {
            let at = items.iter().position(|i| key(i) == m).ok_or_else(|| {
                ApiError::invalid(format!("Marker {m:?} is not from this list: start over"))
            })?;
            items.into_iter().skip(at + 1).collect()
        }
        None => items,
    };
    let next = (rest.len() > max).then(|| key(&rest[max - 1]));
    rest.truncate(max);
    Ok((rest, next))
}

/// `FunctionConfiguration` of `$LATEST` or of a published version (its ARN carries
/// the number).
pub fn version_configuration(f: &Function, version: &str, place: &Place) -> Value {
    let mut c = configuration(f, place);
    if version != LATEST {
        c["Version"] = json!(version);
        c["FunctionArn"] = json!(format!("{}:{version}", place.arn(&f.name)));
    }
    c
}

/// The configuration `given` (with the request's `Qualifier`) names.
async fn qualified(api: &LambdaApi, req: &ApiRequest, given: &str) -> Result<Resolved, ApiError> {
    let (name, q) = api
        .place
        .resolve_qualified(given, req.param("Qualifier").as_deref())?;
    blocking(api, move |a| a.qualified_config(&name, q.as_deref())).await
}

/// GET /2015-03-31/functions/NAME?Qualifier=
pub async fn get(api: &LambdaApi, req: &ApiRequest, given: &str) -> Outcome {
    let r = qualified(api, req, given).await?;
    let mut out = json!({
        "Configuration": shown(api, &r),
        "Code": {"RepositoryType": "Flint"},
        "Tags": {},
    });
    if let Some(n) = r.function.reserved_concurrency {
        out["Concurrency"] = json!({"ReservedConcurrentExecutions": n});
    }
    Ok(ApiResponse::json(200, &out))
}

/// GET /2015-03-31/functions/NAME/configuration?Qualifier=
pub async fn get_configuration(api: &LambdaApi, req: &ApiRequest, given: &str) -> Outcome {
    let r = qualified(api, req, given).await?;
    Ok(ApiResponse::json(200, &shown(api, &r)))
}

/// A version's configuration; `$LATEST`'s carries its dead-letter target (the event
/// invoke configuration is `$LATEST`'s only).
fn shown(api: &LambdaApi, r: &Resolved) -> serde_json::Value {
    let mut c = version_configuration(&r.function, &r.version, &api.place);
    if r.version == "$LATEST" {
        super::dead_letter::show(api, &r.function.name, &mut c);
    }
    c
}

/// DELETE /2015-03-31/functions/NAME?Qualifier=N: deletes one version.
pub async fn delete_version(api: &LambdaApi, name: String, q: &str) -> Outcome {
    match Qualifier::parse(q) {
        Ok(Qualifier::Version(n)) => {
            blocking(api, move |a| a.delete_version(&name, n)).await?;
            Ok(ApiResponse::empty(204))
        }
        Ok(Qualifier::Latest) => Err(ApiError::invalid(
            "$LATEST version cannot be deleted without deleting the function: omit the qualifier",
        )),
        _ => Err(ApiError::invalid(format!(
            "Qualifier {q:?} is not a version number: delete an alias with DeleteAlias"
        ))),
    }
}

/// PublishVersion's body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Publish {
    code_sha256: Option<String>,
    #[serde(default)]
    description: String,
    revision_id: Option<String>,
}

/// Publishes `name`'s $LATEST; the preconditions are CodeSha256 (base64, as Lambda
/// reports it) and RevisionId, when given.
pub(super) async fn publish_named(
    api: &LambdaApi,
    name: String,
    description: String,
    code_sha256: Option<String>,
    revision: Option<String>,
) -> Result<Version, ApiError> {
    blocking(api, move |a| {
        a.publish_version(&name, &description, |f| {
            if let Some(want) = &code_sha256 {
                let have = code_sha256_b64(&f.code_sha256);
                if *want != have {
                    return Err(VersionError::Invalid(format!(
                        "CodeSha256 ({want}) is different from current CodeSha256 in $LATEST ({have}). Please try again with the CodeSha256 in $LATEST."
                    )));
                }
            }
            match &revision {
                Some(want) if *want != revision_id(f) => Err(VersionError::Precondition(format!(
                    "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id (it is {})",
                    revision_id(f)
                ))),
                _ => Ok(()),
            }
        })
    })
    .await
}

/// POST /2015-03-31/functions/NAME/versions
pub async fn publish(api: &LambdaApi, req: &ApiRequest, given: &str) -> Outcome {
    let name = api.place.resolve_latest(given, None)?;
    let b: Publish = req.json()?;
    let v = publish_named(api, name, b.description, b.code_sha256, b.revision_id).await?;
    Ok(ApiResponse::json(
        201,
        &version_configuration(&v.config, &v.number.to_string(), &api.place),
    ))
}

/// ListFunctions with `FunctionVersion=ALL`: each function's $LATEST and then its
/// published versions; the marker is `NAME:VERSION`.
pub async fn list_all(api: &LambdaApi, req: &ApiRequest, functions: Vec<Function>) -> Outcome {
    let names: Vec<String> = functions.iter().map(|f| f.name.clone()).collect();
    let published = blocking(api, move |a| {
        names
            .iter()
            .map(|n| match a.list_versions(n) {
                // Deleted since it was listed: nothing published either.
                Err(VersionError::Store(crate::store::StoreError::NotFound(_))) => Ok(Vec::new()),
                other => other,
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .await?;
    let mut all = Vec::new();
    for (f, versions) in functions.into_iter().zip(published) {
        all.push((LATEST.to_string(), f));
        all.extend(
            versions
                .into_iter()
                .map(|v| (v.number.to_string(), v.config)),
        );
    }
    let (page, next) = page(req, all, |(v, f)| format!("{}:{v}", f.name))?;
    let items: Vec<Value> = page
        .iter()
        .map(|(v, f)| version_configuration(f, v, &api.place))
        .collect();
    let mut out = json!({ "Functions": items });
    if let Some(m) = next {
        out["NextMarker"] = json!(m);
    }
    Ok(ApiResponse::json(200, &out))
}

/// GET /2015-03-31/functions/NAME/versions?Marker=&MaxItems=: $LATEST first.
pub async fn list(api: &LambdaApi, req: &ApiRequest, given: &str) -> Outcome {
    let name = api.place.resolve_latest(given, None)?;
    let (latest, versions) = blocking(api, move |a| {
        let latest = a.store().get(&name)?;
        Ok((latest, a.list_versions(&name)?))
    })
    .await?;
    let mut all = vec![(LATEST.to_string(), latest)];
    all.extend(
        versions
            .into_iter()
            .map(|v| (v.number.to_string(), v.config)),
    );
    let (page, next) = page(req, all, |(v, _)| v.clone())?;
    let items: Vec<Value> = page
        .iter()
        .map(|(v, f)| version_configuration(f, v, &api.place))
        .collect();
    let mut out = json!({ "Versions": items });
    if let Some(m) = next {
        out["NextMarker"] = json!(m);
    }
    Ok(ApiResponse::json(200, &out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(query: &str) -> ApiRequest {
        ApiRequest {
            method: "GET".into(),
            path: "/".into(),
            query: query.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    #[test]
    fn pages_follow_the_marker() {
        let items: Vec<String> = ["$LATEST", "1", "2", "3"].map(String::from).to_vec();
        let (p, next) = page(&req("MaxItems=2"), items.clone(), Clone::clone).unwrap();
        assert_eq!(
            (p, next.as_deref()),
            (vec!["$LATEST".into(), "1".into()], Some("1"))
        );
        let (p, next) = page(&req("Marker=1&MaxItems=2"), items.clone(), Clone::clone).unwrap();
        assert_eq!((p, next), (vec!["2".to_string(), "3".into()], None));
        assert!(page(&req("Marker=9"), items.clone(), Clone::clone).is_err());
        assert!(page(&req("MaxItems=0"), items, Clone::clone).is_err());
    }

    #[test]
    fn version_errors_have_lambdas_codes() {
        let place = Place {
            region: "us-east-1".into(),
            account: "000000000000".into(),
        };
        let e = version_error(
            VersionError::VersionNotFound {
                function: "f".into(),
                version: "9".into(),
            },
            &place,
        );
        assert_eq!((e.status, e.code), (404, "ResourceNotFoundException"));
        assert!(e.message.ends_with("function:f:9"), "{}", e.message);
        let e = version_error(
            VersionError::InUse {
                function: "f".into(),
                version: "1".into(),
                aliases: vec!["live".into()],
            },
            &place,
        );
        assert_eq!((e.status, e.code), (409, "ResourceConflictException"));
        let e = version_error(VersionError::Precondition("stale".into()), &place);
        assert_eq!((e.status, e.code), (412, "PreconditionFailedException"));
    }
}
