//! Aliases: CreateAlias, GetAlias, UpdateAlias, DeleteAlias and ListAliases
//! (/2015-03-31/functions/NAME/aliases[/ALIAS]), with RoutingConfig's
//! AdditionalVersionWeights (one additional version).

use super::errors::ApiError;
use super::names::Place;
use super::request::{ApiRequest, ApiResponse, Outcome};
use super::versions::{blocking, page};
use super::LambdaApi;
use crate::store::versions::{Alias, Routing, VersionError};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// `RoutingConfig` of requests.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RoutingConfig {
    #[serde(default)]
    additional_version_weights: BTreeMap<String, f64>,
}

/// CreateAlias's body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateAlias {
    name: String,
    function_version: String,
    #[serde(default)]
    description: String,
    routing_config: Option<RoutingConfig>,
}

/// UpdateAlias's body; absent members keep their value.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateAlias {
    function_version: Option<String>,
    description: Option<String>,
    routing_config: Option<RoutingConfig>,
    revision_id: Option<String>,
}

/// At most one additional version (an empty map: none).
fn routing(rc: RoutingConfig) -> Result<Option<Routing>, ApiError> {
    let mut weights = rc.additional_version_weights.into_iter();
    let first = weights.next();
    if weights.next().is_some() {
        return Err(ApiError::invalid(
            "RoutingConfig.AdditionalVersionWeights names more than one version: at most one additional version is allowed",
        ));
    }
    Ok(first.map(|(version, weight)| Routing { version, weight }))
}

/// The alias's `RevisionId`: changes on every change of the alias.
fn revision_id(a: &Alias) -> String {
    let tag = a
        .name
        .bytes()
        .chain(a.function.bytes())
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
    format!(
        "{:08x}-0000-4000-a000-{:012x}",
        a.revision,
        tag & 0xffff_ffff_ffff
    )
}

/// `AliasConfiguration`.
pub fn alias_json(a: &Alias, place: &Place) -> Value {
    let mut v = json!({
        "AliasArn": format!("{}:{}", place.arn(&a.function), a.name),
        "Name": a.name,
        "FunctionVersion": a.version,
        "Description": a.description,
        "RevisionId": revision_id(a),
    });
    if let Some(r) = &a.routing {
        v["RoutingConfig"] = json!({"AdditionalVersionWeights": {r.version.clone(): r.weight}});
    }
    v
}

/// POST /2015-03-31/functions/NAME/aliases
pub async fn create(api: &LambdaApi, req: &ApiRequest, given: &str) -> Outcome {
    let function = api.place.resolve_latest(given, None)?;
    let b: CreateAlias = req.json()?;
    let a = Alias {
        function,
        name: b.name,
        version: b.function_version,
        routing: routing(b.routing_config.unwrap_or_default())?,
        description: b.description,
        revision: 1,
    };
    let a = blocking(api, move |agent| agent.create_alias(&a).map(|()| a)).await?;
    Ok(ApiResponse::json(201, &alias_json(&a, &api.place)))
}

/// GET /2015-03-31/functions/NAME/aliases/ALIAS
pub async fn get(api: &LambdaApi, given: &str, alias: &str) -> Outcome {
    let function = api.place.resolve_latest(given, None)?;
    let alias = alias.to_string();
    let a = blocking(api, move |agent| agent.get_alias(&function, &alias)).await?;
    Ok(ApiResponse::json(200, &alias_json(&a, &api.place)))
}

/// PUT /2015-03-31/functions/NAME/aliases/ALIAS
pub async fn update(api: &LambdaApi, req: &ApiRequest, given: &str, alias: &str) -> Outcome {
    let function = api.place.resolve_latest(given, None)?;
    let b: UpdateAlias = req.json()?;
    let new_routing = b.routing_config.map(routing).transpose()?;
    let alias = alias.to_string();
    let a = blocking(api, move |agent| {
        agent.update_alias(&function, &alias, |a| {
            if let Some(want) = &b.revision_id {
                if *want != revision_id(a) {
                    return Err(VersionError::Precondition(format!(
                        "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id (it is {})",
                        revision_id(a)
                    )));
                }
            }
            if let Some(v) = b.function_version {
                a.version = v;
            }
            if let Some(d) = b.description {
                a.description = d;
            }
            if let Some(r) = new_routing {
                a.routing = r;
            }
            Ok(())
        })
    })
    .await?;
    Ok(ApiResponse::json(200, &alias_json(&a, &api.place)))
}

/// DELETE /2015-03-31/functions/NAME/aliases/ALIAS
pub async fn delete(api: &LambdaApi, given: &str, alias: &str) -> Outcome {
    let function = api.place.resolve_latest(given, None)?;
    let alias = alias.to_string();
    blocking(api, move |agent| agent.delete_alias(&function, &alias)).await?;
    Ok(ApiResponse::empty(204))
}

/// GET /2015-03-31/functions/NAME/aliases?FunctionVersion=&Marker=&MaxItems=
pub async fn list(api: &LambdaApi, req: &ApiRequest, given: &str) -> Outcome {
    let function = api.place.resolve_latest(given, None)?;
    let mut all = blocking(api, move |agent| agent.list_aliases(&function)).await?;
    if let Some(v) = req.param("FunctionVersion").filter(|v| !v.is_empty()) {
        all.retain(|a| a.version == v);
    }
    let (page, next) = page(req, all, |a| a.name.clone())?;
    let items: Vec<Value> = page.iter().map(|a| alias_json(a, &api.place)).collect();
    let mut out = json!({ "Aliases": items });
    if let Some(m) = next {
        out["NextMarker"] = json!(m);
    }
    Ok(ApiResponse::json(200, &out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_shape_and_routing() {
        let place = Place {
            region: "us-east-1".into(),
            account: "000000000000".into(),
        };
        let rc: RoutingConfig =
            serde_json::from_value(json!({"AdditionalVersionWeights": {"2": 0.2}})).unwrap();
        let r = routing(rc).unwrap();
        let a = Alias {
            function: "f".into(),
            name: "live".into(),
            version: "1".into(),
            routing: r,
            description: String::new(),
            revision: 1,
        };
        let v = alias_json(&a, &place);
        assert_eq!(
            v["AliasArn"],
            "arn:aws:lambda:us-east-1:000000000000:function:f:live"
        );
        assert_eq!(v["RoutingConfig"]["AdditionalVersionWeights"]["2"], 0.2);
        let two: RoutingConfig =
            serde_json::from_value(json!({"AdditionalVersionWeights": {"2": 0.2, "3": 0.1}}))
                .unwrap();
        assert_eq!(routing(two).unwrap_err().status, 400);
        let b = Alias {
            revision: 2,
            ..a.clone()
        };
        assert_ne!(revision_id(&a), revision_id(&b));
    }
}
