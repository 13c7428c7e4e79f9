//! Event invoke configuration: PutFunctionEventInvokeConfig (PUT, replaces),
//! UpdateFunctionEventInvokeConfig (POST, merges), GetFunctionEventInvokeConfig,
//! DeleteFunctionEventInvokeConfig at /2019-09-25/functions/NAME/event-invoke-config
//! and ListFunctionEventInvokeConfigs at .../event-invoke-config/list,
//! through the same agent calls as gRPC (event_admin.rs).

use super::request::{ApiRequest, ApiResponse, Outcome};
use super::{errors::ApiError, LambdaApi};
use crate::event_admin::EventAdminError;
use crate::events::EventConfig;
use crate::store::StoreError;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Destination {
    destination: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DestinationConfig {
    on_success: Option<Destination>,
    on_failure: Option<Destination>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Body {
    maximum_retry_attempts: Option<u32>,
    maximum_event_age_in_seconds: Option<u32>,
    destination_config: Option<DestinationConfig>,
}

fn api_error(api: &LambdaApi, e: EventAdminError) -> ApiError {
    match e {
        EventAdminError::Store(StoreError::NotFound(n)) => {
            ApiError::not_found(format!("Function not found: {}", api.place.arn(&n)))
        }
        EventAdminError::NoConfig(n) => ApiError::not_found(format!(
            "The function {} doesn't have an EventInvokeConfig",
            api.place.arn(&n)
        )),
        e @ EventAdminError::Config(_) => ApiError::invalid(e.to_string()),
        e => {
            tracing::error!(error = %e, "event invoke config operation failed");
            ApiError::service(
                "the event queue could not be read or written; flintd's log has the cause",
            )
        }
    }
}

fn shape(api: &LambdaApi, name: &str, c: &EventConfig) -> Value {
    let dest = |d: &Option<String>| match d {
        Some(url) if crate::events::webhook::is_url(url) => json!({"Destination": url}),
        Some(f) => json!({"Destination": api.place.arn(f)}),
        None => json!({}),
    };
    json!({
        "FunctionArn": format!("{}:$LATEST", api.place.arn(name)),
        "MaximumRetryAttempts": c.max_retries,
        "MaximumEventAgeInSeconds": c.max_age_s,
        "DestinationConfig": {"OnSuccess": dest(&c.on_success), "OnFailure": dest(&c.on_failure)},
    })
}

/// PUT (replace) or POST (merge into the current configuration).
pub fn put(api: &LambdaApi, req: &ApiRequest, given: &str, merge: bool) -> Outcome {
    let name = api
        .place
        .resolve_latest(given, req.param("Qualifier").as_deref())?;
    let b: Body = req.json()?;
    let current = match api.agent.get_event_config(&name) {
        Ok(c) => c,
        Err(EventAdminError::NoConfig(_)) => EventConfig::default(),
        Err(e) => return Err(api_error(api, e)),
    };
    // The dead-letter target is not part of Lambda's event invoke configuration
    // (it is the function's DeadLetterConfig): a PUT keeps it.
    let dead_letter = current.dead_letter.clone();
    let base = if merge {
        current
    } else {
        EventConfig::default()
    };
    let dc = b.destination_config.unwrap_or_default();
    let pick = |d: Option<Destination>, old: Option<String>| match d {
        Some(d) => d.destination,
        None if merge => old,
        None => None,
    };
    let wanted = EventConfig {
        max_retries: b.maximum_retry_attempts.unwrap_or(base.max_retries),
        max_age_s: b.maximum_event_age_in_seconds.unwrap_or(base.max_age_s),
        on_success: pick(dc.on_success, base.on_success),
        on_failure: pick(dc.on_failure, base.on_failure),
        dead_letter,
    };
    let c = api
        .agent
        .put_event_config(&name, wanted)
        .map_err(|e| api_error(api, e))?;
    Ok(ApiResponse::json(200, &shape(api, &name, &c)))
}

/// ListFunctionEventInvokeConfigs: GET .../event-invoke-config/list with Marker
/// (the NextMarker of the previous page) and MaxItems (1-50).
pub fn list(api: &LambdaApi, req: &ApiRequest, given: &str) -> Outcome {
    let name = api.place.resolve_latest(given, None)?;
    // Configurations are kept per function (of $LATEST): the list has at most one.
    if let Some(v) = req.param("MaxItems") {
        if !matches!(v.parse::<u32>(), Ok(1..=50)) {
            return Err(ApiError::invalid(format!(
                "MaxItems {v} is out of range: use 1 to 50"
            )));
        }
    }
    let marker = req.param("Marker").unwrap_or_default();
    let configs = match api.agent.get_event_config(&name) {
        Ok(c) if marker.is_empty() => vec![shape(api, &name, &c)],
        Ok(_) | Err(EventAdminError::NoConfig(_)) => vec![],
        Err(e) => return Err(api_error(api, e)),
    };
    Ok(ApiResponse::json(
        200,
        &json!({"FunctionEventInvokeConfigs": configs, "NextMarker": null}),
    ))
}

/// GET
pub fn get(api: &LambdaApi, req: &ApiRequest, given: &str) -> Outcome {
    let name = api
        .place
        .resolve_latest(given, req.param("Qualifier").as_deref())?;
    let c = api
        .agent
        .get_event_config(&name)
        .map_err(|e| api_error(api, e))?;
    Ok(ApiResponse::json(200, &shape(api, &name, &c)))
}

/// DELETE
pub fn delete(api: &LambdaApi, req: &ApiRequest, given: &str) -> Outcome {
    let name = api
        .place
        .resolve_latest(given, req.param("Qualifier").as_deref())?;
    api.agent
        .delete_event_config(&name)
        .map_err(|e| api_error(api, e))?;
    Ok(ApiResponse::empty(204))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_parse_as_lambda_sends_them() {
        let b: Body = serde_json::from_str(
            r#"{"MaximumRetryAttempts":1,"MaximumEventAgeInSeconds":120,
                "DestinationConfig":{"OnSuccess":{"Destination":"arn:aws:lambda:us-east-1:000000000000:function:s"},"OnFailure":{}}}"#,
        )
        .unwrap();
        assert_eq!(b.maximum_retry_attempts, Some(1));
        assert_eq!(b.maximum_event_age_in_seconds, Some(120));
        let dc = b.destination_config.unwrap();
        assert!(dc.on_success.unwrap().destination.unwrap().ends_with(":s"));
        assert_eq!(dc.on_failure.unwrap().destination, None);
        assert!(serde_json::from_str::<Body>(r#"{"Bogus":1}"#).is_err());
    }
}
