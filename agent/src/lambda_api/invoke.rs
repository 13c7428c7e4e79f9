//! Invoke: POST /2015-03-31/functions/NAME/invocations, with Lambda's headers
//! (X-Amz-Invocation-Type, X-Amz-Log-Type, X-Amz-Client-Context in; X-Amz-Function-Error,
//! X-Amz-Log-Result, X-Amz-Executed-Version out). Runs `Agent::invoke`, as gRPC does.

use super::errors::{invoke_error, ApiError};
use super::request::{ApiRequest, ApiResponse, Outcome};
use super::LambdaApi;
use crate::invoke::{InvocationType, InvokeInput};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

fn invocation_type(h: Option<&str>) -> Result<InvocationType, ApiError> {
    match h {
        None | Some("RequestResponse") => Ok(InvocationType::RequestResponse),
        Some("Event") => Ok(InvocationType::Event),
        Some("DryRun") => Ok(InvocationType::DryRun),
        Some(other) => Err(ApiError::invalid(format!(
            "X-Amz-Invocation-Type {other:?} is not one of RequestResponse, Event, DryRun"
        ))),
    }
}

fn log_tail(h: Option<&str>) -> Result<bool, ApiError> {
    match h {
        None | Some("None") => Ok(false),
        Some("Tail") => Ok(true),
        Some(other) => Err(ApiError::invalid(format!(
            "X-Amz-Log-Type {other:?} is not one of None, Tail"
        ))),
    }
}

fn client_context(h: Option<&str>) -> Result<String, ApiError> {
    let Some(h) = h.filter(|h| !h.is_empty()) else {
        return Ok(String::new());
    };
    let bad = || ApiError::invalid("Client context must be a valid Base64-encoded JSON object.");
    let raw = B64.decode(h.trim()).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&text).map_err(|_| bad())?;
    Ok(text)
}

/// POST /2015-03-31/functions/NAME/invocations?Qualifier=
pub async fn invoke(api: &LambdaApi, req: &ApiRequest, given: &str) -> Outcome {
    let name = api
        .place
        .invocation_name(given, req.param("Qualifier").as_deref())?;
    let input = InvokeInput {
        function_name: name,
        invocation_type: invocation_type(req.header("x-amz-invocation-type"))?,
        log_tail: log_tail(req.header("x-amz-log-type"))?,
        payload: req.body.clone(),
        client_context: client_context(req.header("x-amz-client-context"))?,
    };
    let sync = input.invocation_type == InvocationType::RequestResponse;
    let out = api
        .agent
        .invoke(input)
        .await
        .map_err(|e| invoke_error(e, &|n| api.place.arn(n)))?;
    let mut r = ApiResponse {
        status: out.status_code as u16,
        headers: vec![("x-amzn-RequestId".into(), out.request_id.clone())],
        body: out.payload,
    };
    if sync {
        r.headers
            .push(("Content-Type".into(), "application/json".into()));
        r.headers
            .push(("X-Amz-Executed-Version".into(), out.executed_version));
    }
    if let Some(e) = out.function_error {
        r.headers.push(("X-Amz-Function-Error".into(), e));
    }
    if let Some(log) = out.log_result {
        r.headers
            .push(("X-Amz-Log-Result".into(), B64.encode(log.as_bytes())));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_as_lambda_defines_them() {
        assert_eq!(
            invocation_type(None).unwrap(),
            InvocationType::RequestResponse
        );
        assert_eq!(
            invocation_type(Some("Event")).unwrap(),
            InvocationType::Event
        );
        assert_eq!(
            invocation_type(Some("DryRun")).unwrap(),
            InvocationType::DryRun
        );
        assert_eq!(invocation_type(Some("event")).unwrap_err().status, 400);
        assert!(log_tail(Some("Tail")).unwrap());
        assert!(!log_tail(Some("None")).unwrap());
        assert!(log_tail(Some("All")).is_err());
        let ctx = B64.encode(br#"{"custom":{"a":1}}"#);
        assert_eq!(client_context(Some(&ctx)).unwrap(), r#"{"custom":{"a":1}}"#);
        assert!(client_context(Some("!!!")).is_err());
        assert!(client_context(Some(&B64.encode(b"[1]"))).is_err());
        assert_eq!(client_context(None).unwrap(), "");
    }
}
