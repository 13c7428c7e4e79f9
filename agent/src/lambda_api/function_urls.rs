//! Function URL configuration: CreateFunctionUrlConfig (POST), GetFunctionUrlConfig
//! (GET), UpdateFunctionUrlConfig (PUT), DeleteFunctionUrlConfig (DELETE) at
//! /2021-10-31/functions/NAME/url and ListFunctionUrlConfigs at .../urls, on Flint's
//! `http` trigger kind. A function's URL is the http trigger named as the function
//! (`flint triggers ls` shows it), served at `--http-listen` as
//! `http://HOST:PORT/NAME/`. AuthType NONE only; Cors is refused (not applied).

use super::request::{ApiRequest, ApiResponse, Outcome};
use super::{errors::ApiError, LambdaApi};
use crate::triggers::http::spec::{HttpAuth, HttpSpec};
use crate::triggers::manage::NewTrigger;
use crate::triggers::model::{Trigger, TriggerError, TriggerKind};
use serde::Deserialize;
use serde_json::{json, Value};

/// The bodies of Create and Update.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Body {
    auth_type: Option<String>,
    cors: Option<Value>,
    invoke_mode: Option<String>,
}

impl Body {
    /// Refuses what Flint cannot serve, with what to send instead.
    fn check(&self, create: bool) -> Result<(), ApiError> {
        match self.auth_type.as_deref() {
            Some("NONE") => {}
            None if !create => {}
            None => {
                return Err(ApiError::invalid(
                    "AuthType is required: Flint serves function URLs with AuthType NONE",
                ))
            }
            Some(other) => {
                return Err(ApiError::invalid(format!(
                    "AuthType {other}: Flint serves function URLs with AuthType NONE only \
                     (it has no IAM authorization of URL calls); send AuthType NONE"
                )))
            }
        }
        if self.cors.is_some() {
            return Err(ApiError::invalid(
                "Cors: Flint's function URLs do not apply CORS settings; omit Cors",
            ));
        }
        match self.invoke_mode.as_deref() {
            None | Some("BUFFERED") => Ok(()),
            Some(m) => Err(ApiError::invalid(format!(
                "InvokeMode {m}: Flint's function URLs answer BUFFERED only"
            ))),
        }
    }
}

/// The URL trigger's name for function `name`: the function's own name.
pub fn trigger_name(name: &str) -> &str {
    name
}

fn resolve(api: &LambdaApi, req: &ApiRequest, given: &str) -> Result<String, ApiError> {
    let q = req.param("Qualifier");
    if let Some(q) = q.as_deref().filter(|q| *q != "$LATEST") {
        return Err(ApiError::invalid(format!(
            "Qualifier {q}: Flint's function URLs invoke $LATEST; omit Qualifier"
        )));
    }
    let name = api.place.resolve_latest(given, None)?;
    // The function must exist (Lambda answers ResourceNotFoundException).
    api.agent.store().get(&name).map_err(|_| {
        ApiError::not_found(format!("Function not found: {}", api.place.arn(&name)))
    })?;
    Ok(name)
}

/// The URL trigger of `name`, if it has one.
fn find(api: &LambdaApi, name: &str) -> Result<Option<Trigger>, ApiError> {
    match api.agent.get_trigger(trigger_name(name)) {
        Ok(t) if t.function == name && matches!(t.kind, TriggerKind::Http(_)) => Ok(Some(t)),
        Ok(_) | Err(TriggerError::NotFound(_)) => Ok(None),
        Err(e) => Err(internal(e)),
    }
}

fn internal(e: TriggerError) -> ApiError {
    tracing::error!(error = %e, "function URL operation failed");
    ApiError::service(
        "the trigger registry could not be read or written; flintd's log has the cause",
    )
}

fn no_url(api: &LambdaApi, name: &str) -> ApiError {
    ApiError::not_found(format!(
        "The resource you requested does not exist: function {} has no function URL",
        api.place.arn(name)
    ))
}

/// The URL Flint serves trigger `t` at, or why it serves none.
fn served_url(api: &LambdaApi, t: &Trigger) -> String {
    let c = api.agent.config();
    match c.http_listen {
        Some(addr) => crate::triggers::http::spec::url(addr, c.http_tls_cert.is_some(), &t.name),
        None => format!(
            "(not served: this flintd runs without --http-listen; restart it with --http-listen ADDR to serve /{}/)",
            t.name
        ),
    }
}

/// Lambda's FunctionUrlConfig shape.
pub fn shape(api: &LambdaApi, t: &Trigger) -> Value {
    let time = t
        .created
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    json!({
        "FunctionUrl": served_url(api, t),
        "FunctionArn": api.place.arn(&t.function),
        "AuthType": "NONE",
        "CreationTime": time,
        "LastModifiedTime": time,
        "InvokeMode": "BUFFERED",
    })
}

/// POST: one URL per function.
pub fn create(api: &LambdaApi, req: &ApiRequest, given: &str) -> Outcome {
    let name = resolve(api, req, given)?;
    let b: Body = req.json()?;
    b.check(true)?;
    let t = api
        .agent
        .create_trigger(NewTrigger {
            name: trigger_name(&name).to_string(),
            function: name.clone(),
            kind: TriggerKind::Http(HttpSpec {
                auth: HttpAuth::None,
            }),
            enabled: true,
        })
        .map_err(|e| match e {
            TriggerError::Exists(_) => ApiError::conflict(format!(
                "Failed to create function url config for [functionArn = {}]. Error message: FunctionUrlConfig exists for this Lambda function (Flint's trigger {} exists)",
                api.place.arn(&name),
                trigger_name(&name)
            )),
            TriggerError::Name(n) => ApiError::invalid(format!(
                "function name {n:?} cannot name a trigger: use 1-64 of A-Z a-z 0-9 . _ -"
            )),
            e => internal(e),
        })?;
    Ok(ApiResponse::json(201, &shape(api, &t)))
}

/// GET
pub fn get(api: &LambdaApi, req: &ApiRequest, given: &str) -> Outcome {
    let name = resolve(api, req, given)?;
    let t = find(api, &name)?.ok_or_else(|| no_url(api, &name))?;
    Ok(ApiResponse::json(200, &shape(api, &t)))
}

/// PUT: only NONE is served, so an update changes nothing but is checked.
pub fn update(api: &LambdaApi, req: &ApiRequest, given: &str) -> Outcome {
    let name = resolve(api, req, given)?;
    let b: Body = req.json()?;
    b.check(false)?;
    let t = find(api, &name)?.ok_or_else(|| no_url(api, &name))?;
    Ok(ApiResponse::json(200, &shape(api, &t)))
}

/// DELETE
pub fn delete(api: &LambdaApi, req: &ApiRequest, given: &str) -> Outcome {
    let name = resolve(api, req, given)?;
    let t = find(api, &name)?.ok_or_else(|| no_url(api, &name))?;
    api.agent.delete_trigger(&t.name).map_err(internal)?;
    Ok(ApiResponse::empty(204))
}

/// ListFunctionUrlConfigs: at most one.
pub fn list(api: &LambdaApi, req: &ApiRequest, given: &str) -> Outcome {
    let name = api.place.resolve_latest(given, None)?;
    api.agent.store().get(&name).map_err(|_| {
        ApiError::not_found(format!("Function not found: {}", api.place.arn(&name)))
    })?;
    if let Some(v) = req.param("MaxItems") {
        if !matches!(v.parse::<u32>(), Ok(1..=50)) {
            return Err(ApiError::invalid(format!(
                "MaxItems {v} is out of range: use 1 to 50"
            )));
        }
    }
    let marker = req.param("Marker").unwrap_or_default();
    let configs: Vec<Value> = match find(api, &name)? {
        Some(t) if marker.is_empty() => vec![shape(api, &t)],
        _ => vec![],
    };
    Ok(ApiResponse::json(
        200,
        &json!({"FunctionUrlConfigs": configs}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(s: &str) -> Body {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn only_auth_none_is_served() {
        body(r#"{"AuthType":"NONE"}"#).check(true).unwrap();
        let e = body(r#"{"AuthType":"AWS_IAM"}"#).check(true).unwrap_err();
        assert!(e.body().to_string().contains("NONE only"), "{:?}", e.body());
        assert!(body("{}").check(true).is_err());
        body("{}").check(false).unwrap();
    }

    #[test]
    fn cors_and_streaming_are_refused_clearly() {
        let e = body(r#"{"AuthType":"NONE","Cors":{"AllowOrigins":["*"]}}"#)
            .check(true)
            .unwrap_err();
        assert!(e.body().to_string().contains("omit Cors"));
        assert!(
            body(r#"{"AuthType":"NONE","InvokeMode":"RESPONSE_STREAM"}"#)
                .check(true)
                .is_err()
        );
        assert!(serde_json::from_str::<Body>(r#"{"Bogus":1}"#).is_err());
    }
}
