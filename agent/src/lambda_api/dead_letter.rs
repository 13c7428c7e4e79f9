//! Lambda's `DeadLetterConfig.TargetArn` of CreateFunction, UpdateFunctionConfiguration
//! and the function configuration: Flint keeps it as the dead-letter target of the
//! function's event invoke configuration (a function, by ARN or name, or an http(s)
//! webhook; docs/async-invocations.md), so both places show the same target.

use super::errors::ApiError;
use super::LambdaApi;
use crate::event_admin::{function_name_of, EventAdminError};
use crate::events::{webhook, EventConfig};
use serde::Deserialize;
use serde_json::{json, Value};

/// `DeadLetterConfig` as Lambda's clients send it.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DeadLetterConfig {
    /// Empty or absent: no target.
    pub target_arn: Option<String>,
}

/// Refuses a target that cannot be used, before anything is changed: a URL flintd
/// cannot POST to, or a function that does not exist.
pub fn check(api: &LambdaApi, dlc: Option<&DeadLetterConfig>) -> Result<(), ApiError> {
    let Some(target) = dlc
        .and_then(|d| d.target_arn.as_deref())
        .filter(|t| !t.is_empty())
    else {
        return Ok(());
    };
    if webhook::is_url(target) {
        return webhook::check_url(target).map_err(|why| {
            ApiError::invalid(format!(
                "DeadLetterConfig.TargetArn {target} is not a usable webhook URL: {why}"
            ))
        });
    }
    if api.agent.store().get(function_name_of(target)).is_err() {
        return Err(ApiError::invalid(format!(
            "DeadLetterConfig.TargetArn {target} is not a function here: Flint's dead-letter target is a function (name or ARN) or an http(s):// URL"
        )));
    }
    Ok(())
}

/// Stores the target of `dlc` (None: unchanged) for `name`.
pub fn apply(api: &LambdaApi, name: &str, dlc: Option<DeadLetterConfig>) -> Result<(), ApiError> {
    let Some(dlc) = dlc else { return Ok(()) };
    let target = dlc.target_arn.filter(|t| !t.is_empty());
    let current = match api.agent.get_event_config(name) {
        Ok(c) => Some(c),
        Err(EventAdminError::NoConfig(_)) => None,
        Err(e) => return Err(ApiError::invalid(e.to_string())),
    };
    if current.is_none() && target.is_none() {
        return Ok(());
    }
    let wanted = EventConfig {
        dead_letter: target,
        ..current.unwrap_or_default()
    };
    api.agent
        .put_event_config(name, wanted)
        .map(drop)
        .map_err(|e| match e {
            e @ EventAdminError::Config(_) => ApiError::invalid(e.to_string()),
            e => {
                tracing::error!(error = %e, "dead-letter target not stored");
                ApiError::service(
                    "the event queue could not be written; flintd's log has the cause",
                )
            }
        })
}

/// Adds `DeadLetterConfig` to a function configuration `out` of `name` when it has a
/// target.
pub fn show(api: &LambdaApi, name: &str, out: &mut Value) {
    if let Ok(EventConfig {
        dead_letter: Some(t),
        ..
    }) = api.agent.get_event_config(name)
    {
        let arn = if webhook::is_url(&t) {
            t
        } else {
            api.place.arn(&t)
        };
        out["DeadLetterConfig"] = json!({ "TargetArn": arn });
    }
}
