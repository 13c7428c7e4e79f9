//! Event source mappings on Flint's `queue` (RabbitMQ) trigger kind:
//! CreateEventSourceMapping (POST /2015-03-31/event-source-mappings/),
//! GetEventSourceMapping (GET .../UUID), UpdateEventSourceMapping (PUT .../UUID),
//! DeleteEventSourceMapping (DELETE .../UUID), ListEventSourceMappings (GET, with
//! FunctionName, Marker, MaxItems).
//!
//! The broker is named by Flint's form: `SelfManagedEventSource.Endpoints.AMQP_URI`
//! (`["amqp://USER:PASSWORD@HOST:PORT/VHOST"]`) or an `amqp://` URI as
//! `EventSourceArn`, with the queue in `Queues` (one). A mapping made here is the queue
//! trigger `esm-UUID`; a queue trigger made otherwise has a UUID derived from its name.

use super::request::{ApiRequest, ApiResponse, Outcome};
use super::{errors::ApiError, LambdaApi};
use crate::triggers::manage::NewTrigger;
use crate::triggers::model::{Trigger, TriggerError, TriggerKind};
use crate::triggers::queue::spec::{
    DEFAULT_BATCH_SIZE, DEFAULT_MAX_CONCURRENCY, DEFAULT_RETRIES, DEFAULT_WINDOW_MS,
};
use crate::triggers::queue::QueueSpec;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;

/// The key of `SelfManagedEventSource.Endpoints` that names the broker.
pub const AMQP_KEY: &str = "AMQP_URI";
const PREFIX: &str = "esm-";

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct SelfManaged {
    #[serde(default)]
    endpoints: HashMap<String, Vec<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct Destination {
    destination: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct DestinationConfig {
    on_failure: Option<Destination>,
}

/// The bodies of Create and Update (Update reads the same members).
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct Body {
    function_name: Option<String>,
    event_source_arn: Option<String>,
    self_managed_event_source: Option<SelfManaged>,
    queues: Option<Vec<String>>,
    batch_size: Option<u32>,
    maximum_batching_window_in_seconds: Option<u32>,
    maximum_retry_attempts: Option<i64>,
    enabled: Option<bool>,
    destination_config: Option<DestinationConfig>,
    starting_position: Option<String>,
}

impl Body {
    /// The broker URI: `SelfManagedEventSource.Endpoints.AMQP_URI` or an amqp://
    /// `EventSourceArn`.
    fn broker(&self) -> Result<Option<String>, ApiError> {
        if let Some(sm) = &self.self_managed_event_source {
            return match sm.endpoints.get(AMQP_KEY).map(Vec::as_slice) {
                Some([uri]) => Ok(Some(uri.clone())),
                _ => Err(ApiError::invalid(format!(
                    "SelfManagedEventSource: Flint reads one broker URI as Endpoints {{\"{AMQP_KEY}\": [\"amqp://USER:PASSWORD@HOST:PORT/VHOST\"]}}"
                ))),
            };
        }
        match self.event_source_arn.as_deref() {
            None => Ok(None),
            Some(a) if a.starts_with("amqp://") || a.starts_with("amqps://") => {
                Ok(Some(a.to_string()))
            }
            Some(a) => Err(ApiError::invalid(format!(
                "EventSourceArn {a}: Flint consumes RabbitMQ brokers it can reach directly; give the broker as \
                 SelfManagedEventSource {{\"Endpoints\": {{\"{AMQP_KEY}\": [\"amqp://USER:PASSWORD@HOST:PORT/VHOST\"]}}}} \
                 (or an amqp:// URI as EventSourceArn) and the queue in Queues"
            ))),
        }
    }

    fn queue(&self) -> Result<Option<String>, ApiError> {
        match self.queues.as_deref() {
            None => Ok(None),
            Some([q]) => Ok(Some(q.clone())),
            Some(_) => Err(ApiError::invalid(
                "Queues: give exactly one RabbitMQ queue name",
            )),
        }
    }

    /// `spec` with this body's settings applied.
    fn apply(&self, mut spec: QueueSpec, api: &LambdaApi) -> Result<QueueSpec, ApiError> {
        if let Some(p) = &self.starting_position {
            return Err(ApiError::invalid(format!(
                "StartingPosition {p}: RabbitMQ mappings take no starting position; omit it"
            )));
        }
        if let Some(b) = self.batch_size {
            spec.batch_size = b;
        }
        if let Some(w) = self.maximum_batching_window_in_seconds {
            spec.batching_window_ms = w.saturating_mul(1000);
        }
        if let Some(r) = self.maximum_retry_attempts {
            spec.retries = u32::try_from(r).map_err(|_| {
                ApiError::invalid(format!("MaximumRetryAttempts {r}: use 0 to 1000"))
            })?;
        }
        if let Some(dc) = &self.destination_config {
            spec.dead_letter = match dc
                .on_failure
                .as_ref()
                .and_then(|d| d.destination.as_deref())
            {
                None | Some("") => None,
                Some(d) => Some(api.place.resolve_latest(d, None)?),
            };
        }
        spec.check().map_err(|e| ApiError::invalid(e.to_string()))?;
        Ok(spec)
    }
}

/// The UUID of queue trigger `name`: the one in its name (`esm-UUID`), or one
/// derived from the name (stable across restarts).
pub fn uuid_of(name: &str) -> String {
    if let Some(u) = name
        .strip_prefix(PREFIX)
        .and_then(|u| uuid::Uuid::parse_str(u).ok())
    {
        return u.to_string();
    }
    use sha2::Digest;
    let d = sha2::Sha256::digest(name.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    uuid::Builder::from_random_bytes(b).into_uuid().to_string()
}

fn internal(e: TriggerError) -> ApiError {
    tracing::error!(error = %e, "event source mapping operation failed");
    ApiError::service(
        "the trigger registry could not be read or written; flintd's log has the cause",
    )
}

fn trigger_error(api: &LambdaApi, e: TriggerError) -> ApiError {
    match e {
        TriggerError::NoFunction(f) => {
            ApiError::not_found(format!("Function not found: {}", api.place.arn(&f)))
        }
        TriggerError::Queue(e) => ApiError::invalid(e.to_string()),
        e => internal(e),
    }
}

/// The queue trigger whose UUID is `uuid`.
pub fn find(api: &LambdaApi, uuid: &str) -> Result<Trigger, ApiError> {
    let direct = format!("{PREFIX}{uuid}");
    match api.agent.get_trigger(&direct) {
        Ok(t) if matches!(t.kind, TriggerKind::Queue(_)) => return Ok(t),
        Ok(_) | Err(TriggerError::NotFound(_)) => {}
        Err(e) => return Err(internal(e)),
    }
    api.agent
        .list_triggers(None)
        .map_err(internal)?
        .into_iter()
        .find(|t| matches!(t.kind, TriggerKind::Queue(_)) && uuid_of(&t.name) == uuid)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "The resource you requested does not exist: no event source mapping {uuid}"
            ))
        })
}

/// Lambda's EventSourceMappingConfiguration shape.
pub fn shape(api: &LambdaApi, t: &Trigger, state: &str) -> Value {
    let TriggerKind::Queue(spec) = &t.kind else {
        return json!({});
    };
    let result = match &t.last_error {
        Some(e) => format!("PROBLEM: {e}"),
        None if t.last_fire.is_some() => "OK".to_string(),
        None => "No records processed".to_string(),
    };
    let on_failure = match &spec.dead_letter {
        Some(f) => json!({"Destination": api.place.arn(f)}),
        None => json!({}),
    };
    let url = spec.redacted_url();
    json!({
        "UUID": uuid_of(&t.name),
        "FunctionArn": api.place.arn(&t.function),
        "EventSourceArn": url,
        "SelfManagedEventSource": {"Endpoints": {AMQP_KEY: [url]}},
        "Queues": [spec.queue_name],
        "BatchSize": spec.batch_size,
        "MaximumBatchingWindowInSeconds": spec.batching_window_ms / 1000,
        "MaximumRetryAttempts": spec.retries,
        "DestinationConfig": {"OnFailure": on_failure},
        "LastModified": t.created.timestamp() as f64,
        "LastProcessingResult": result,
        "State": state,
        "StateTransitionReason": "USER_INITIATED",
        "FlintTrigger": t.name,
    })
}

fn state(t: &Trigger) -> &'static str {
    if t.enabled {
        "Enabled"
    } else {
        "Disabled"
    }
}

/// POST
pub fn create(api: &LambdaApi, req: &ApiRequest) -> Outcome {
    let b: Body = req.json()?;
    let given = b
        .function_name
        .as_deref()
        .ok_or_else(|| ApiError::invalid("FunctionName is required"))?;
    let function = api.place.resolve_latest(given, None)?;
    let url = b.broker()?.ok_or_else(|| {
        ApiError::invalid(format!(
            "the broker is required: SelfManagedEventSource {{\"Endpoints\": {{\"{AMQP_KEY}\": [\"amqp://USER:PASSWORD@HOST:PORT/VHOST\"]}}}}"
        ))
    })?;
    let queue_name = b
        .queue()?
        .ok_or_else(|| ApiError::invalid("Queues is required: the RabbitMQ queue to consume"))?;
    let base = QueueSpec {
        url,
        queue_name,
        batch_size: DEFAULT_BATCH_SIZE,
        batching_window_ms: DEFAULT_WINDOW_MS,
        max_concurrency: DEFAULT_MAX_CONCURRENCY,
        retries: DEFAULT_RETRIES,
        dead_letter: None,
    };
    let spec = b.apply(base, api)?;
    api.agent.store().get(&function).map_err(|_| {
        ApiError::not_found(format!("Function not found: {}", api.place.arn(&function)))
    })?;
    let t = api
        .agent
        .create_trigger(NewTrigger {
            name: format!("{PREFIX}{}", uuid::Uuid::new_v4()),
            function,
            kind: TriggerKind::Queue(spec),
            enabled: b.enabled.unwrap_or(true),
        })
        .map_err(|e| trigger_error(api, e))?;
    let st = if t.enabled { "Creating" } else { "Disabled" };
    Ok(ApiResponse::json(202, &shape(api, &t, st)))
}

/// GET
pub fn get(api: &LambdaApi, uuid: &str) -> Outcome {
    let t = find(api, uuid)?;
    Ok(ApiResponse::json(200, &shape(api, &t, state(&t))))
}

/// PUT: the settings given replace the mapping's (the trigger is re-created under
/// the same name, so its UUID stays); Enabled alone only enables or disables it.
pub fn update(api: &LambdaApi, req: &ApiRequest, uuid: &str) -> Outcome {
    let b: Body = req.json()?;
    let t = find(api, uuid)?;
    let TriggerKind::Queue(old) = t.kind.clone() else {
        return Err(internal(TriggerError::NotFound(t.name)));
    };
    let function = match b.function_name.as_deref() {
        Some(f) => api.place.resolve_latest(f, None)?,
        None => t.function.clone(),
    };
    let mut spec = old.clone();
    if let Some(u) = b.broker()? {
        spec.url = u;
    }
    if let Some(q) = b.queue()? {
        spec.queue_name = q;
    }
    let spec = b.apply(spec, api)?;
    let enabled = b.enabled.unwrap_or(t.enabled);
    let t = if spec == old && function == t.function {
        if enabled != t.enabled {
            api.agent
                .set_trigger_enabled(&t.name, enabled)
                .map_err(|e| trigger_error(api, e))?
        } else {
            t
        }
    } else {
        api.agent.delete_trigger(&t.name).map_err(internal)?;
        api.agent
            .create_trigger(NewTrigger {
                name: t.name.clone(),
                function,
                kind: TriggerKind::Queue(spec),
                enabled,
            })
            .map_err(|e| trigger_error(api, e))?
    };
    Ok(ApiResponse::json(202, &shape(api, &t, state(&t))))
}

/// DELETE
pub fn delete(api: &LambdaApi, uuid: &str) -> Outcome {
    let t = find(api, uuid)?;
    api.agent.delete_trigger(&t.name).map_err(internal)?;
    Ok(ApiResponse::json(202, &shape(api, &t, "Deleting")))
}

/// GET .../event-source-mappings/ with FunctionName, Marker (the UUID to start
/// after) and MaxItems (1-10000, default 100).
pub fn list(api: &LambdaApi, req: &ApiRequest) -> Outcome {
    let function = match req.param("FunctionName") {
        Some(f) => Some(api.place.resolve_latest(&f, None)?),
        None => None,
    };
    let max = match req.param("MaxItems") {
        None => 100,
        Some(v) => match v.parse::<usize>() {
            Ok(n @ 1..=10_000) => n,
            _ => {
                return Err(ApiError::invalid(format!(
                    "MaxItems {v} is out of range: use 1 to 10000"
                )))
            }
        },
    };
    let mut all: Vec<Trigger> = api
        .agent
        .list_triggers(function.as_deref())
        .map_err(internal)?
        .into_iter()
        .filter(|t| matches!(t.kind, TriggerKind::Queue(_)))
        .collect();
    all.sort_by_key(|t| uuid_of(&t.name));
    let marker = req.param("Marker").unwrap_or_default();
    let rest: Vec<&Trigger> = all
        .iter()
        .filter(|t| marker.is_empty() || uuid_of(&t.name) > marker)
        .collect();
    let page: Vec<Value> = rest
        .iter()
        .take(max)
        .map(|t| shape(api, t, state(t)))
        .collect();
    let next = (rest.len() > max).then(|| uuid_of(&rest[max - 1].name));
    Ok(ApiResponse::json(
        200,
        &json!({"EventSourceMappings": page, "NextMarker": next}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(s: &str) -> Body {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn the_broker_is_read_from_flints_forms() {
        let b = body(
            r#"{"SelfManagedEventSource":{"Endpoints":{"AMQP_URI":["amqp://u:p@h:5672/%2f"]}},"Queues":["q"]}"#,
        );
        assert_eq!(b.broker().unwrap().unwrap(), "amqp://u:p@h:5672/%2f");
        assert_eq!(b.queue().unwrap().unwrap(), "q");
        let b = body(r#"{"EventSourceArn":"amqp://h/%2f"}"#);
        assert_eq!(b.broker().unwrap().unwrap(), "amqp://h/%2f");
        let e = body(r#"{"EventSourceArn":"arn:aws:mq:us-east-1:1:broker:b:id"}"#)
            .broker()
            .unwrap_err();
        assert!(e.message.contains("AMQP_URI"), "{}", e.message);
        assert!(body(
            r#"{"SelfManagedEventSource":{"Endpoints":{"KAFKA_BOOTSTRAP_SERVERS":["h:1"]}}}"#
        )
        .broker()
        .is_err());
        assert!(body(r#"{"Queues":["a","b"]}"#).queue().is_err());
    }

    #[test]
    fn uuids_are_stable_and_read_back_from_names() {
        let u = uuid::Uuid::new_v4().to_string();
        assert_eq!(uuid_of(&format!("esm-{u}")), u);
        assert_eq!(uuid_of("orders"), uuid_of("orders"));
        assert_ne!(uuid_of("orders"), uuid_of("orders2"));
        uuid::Uuid::parse_str(&uuid_of("orders")).unwrap();
    }
}
