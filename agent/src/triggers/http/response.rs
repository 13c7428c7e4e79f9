//! The HTTP response of a function URL: the function's result mapped as Lambda maps
//! it, or the invocation's failure as Lambda's status and `{"Message": ...}` body.
//!
//! A JSON object with `statusCode` is a response: `headers` (values as text),
//! `cookies` (each a `set-cookie`), `body` (text, or base64 when `isBase64Encoded`).
//! Any other JSON (an object without `statusCode`, a string, a number, a list) is a
//! 200 `application/json` response whose body is that JSON. A function error is a
//! 502, a timeout a 504, a throttle a 429, a request or a response over 6 MB a 413 or
//! a 502.

use crate::limits::SYNC_PAYLOAD_MAX;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::Value;

/// A response to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    /// Lower-case names; `set-cookie` may repeat.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why a request got no response from the function: the class is the metric label,
/// the status and message what the client sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {}: {message}", class.label())]
pub struct Failure {
    pub class: FailureClass,
    pub status: u16,
    pub message: String,
}

/// Kinds of failure, as the `class` label of `flint_trigger_http_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// No such trigger (404), or one that is not an HTTP trigger.
    NotFound,
    /// The trigger is disabled (403).
    Disabled,
    /// The request body is over 6 MB (413) or unreadable (400).
    BadRequest,
    /// The function failed (502).
    Function,
    /// The function's result is not a valid response, or over 6 MB (502).
    BadResponse,
    /// The function ran out of time (504).
    Timeout,
    /// A concurrency limit refused the invocation (429).
    Throttle,
    /// The invocation could not be run (no sandbox, registry failure; 500).
    Internal,
}

impl FailureClass {
    pub fn label(self) -> &'static str {
        match self {
            FailureClass::NotFound => "not_found",
            FailureClass::Disabled => "disabled",
            FailureClass::BadRequest => "bad_request",
            FailureClass::Function => "function_error",
            FailureClass::BadResponse => "bad_response",
            FailureClass::Timeout => "timeout",
            FailureClass::Throttle => "throttle",
            FailureClass::Internal => "internal",
        }
    }

    /// The HTTP status Lambda's function URLs answer this failure with.
    pub fn status(self) -> u16 {
        match self {
            FailureClass::NotFound => 404,
            FailureClass::Disabled => 403,
            FailureClass::BadRequest => 400,
            FailureClass::Function | FailureClass::BadResponse => 502,
            FailureClass::Timeout => 504,
            FailureClass::Throttle => 429,
            FailureClass::Internal => 500,
        }
    }

    /// A failure of this class with `message`.
    pub fn with(self, message: impl Into<String>) -> Failure {
        Failure {
            class: self,
            status: self.status(),
            message: message.into(),
        }
    }
}

impl Failure {
    /// A request body over the limit (413).
    pub fn too_large() -> Failure {
        Failure {
            class: FailureClass::BadRequest,
            status: 413,
            message: format!(
                "Request must be smaller than {SYNC_PAYLOAD_MAX} bytes for the InvokeFunction operation"
            ),
        }
    }

    /// Lambda's error body: `{"Message": ...}`, as application/json.
    pub fn to_response(&self) -> HttpResponse {
        HttpResponse {
            status: self.status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::json!({ "Message": self.message })
                .to_string()
                .into_bytes(),
        }
    }
}

/// Headers the connection owns; a function's values for them are dropped (HTTP/2
/// forbids the connection-specific ones).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
];

/// The function's result (`errorType` of a function error, if any) as the response.
pub fn from_result(payload: &[u8], function_error: Option<&str>) -> Result<HttpResponse, Failure> {
    if function_error.is_some() {
        let error_type = serde_json::from_slice::<Value>(payload)
            .ok()
            .and_then(|v| v.get("errorType").and_then(Value::as_str).map(String::from))
            .unwrap_or_default();
        return Err(match error_type.as_str() {
            flint_proto::lambda::TIMED_OUT => {
                FailureClass::Timeout.with("Endpoint request timed out")
            }
            flint_proto::lambda::RESPONSE_TOO_LARGE => FailureClass::BadResponse.with(format!(
                "Response payload size exceeded maximum allowed payload size ({SYNC_PAYLOAD_MAX} bytes)."
            )),
            _ => FailureClass::Function.with("Internal Server Error"),
        });
    }
    if payload.len() > SYNC_PAYLOAD_MAX {
        return Err(FailureClass::BadResponse.with(format!(
            "Response payload size exceeded maximum allowed payload size ({SYNC_PAYLOAD_MAX} bytes)."
        )));
    }
    let v: Value = serde_json::from_slice(payload).map_err(|e| {
        FailureClass::BadResponse.with(format!("The function's result is not JSON: {e}"))
    })?;
    match v {
        Value::Object(m) if m.contains_key("statusCode") => structured(m),
        _ => Ok(HttpResponse {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: payload.to_vec(),
        }),
    }
}

/// A result with `statusCode`.
fn structured(m: serde_json::Map<String, Value>) -> Result<HttpResponse, Failure> {
    let bad = |what: String| FailureClass::BadResponse.with(format!("Invalid response: {what}"));
    let status = match &m["statusCode"] {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|s| (100..=599).contains(s))
    .ok_or_else(|| {
        bad(format!(
            "statusCode {} is not an HTTP status",
            m["statusCode"]
        ))
    })? as u16;
    let mut headers = Vec::new();
    if let Some(h) = m.get("headers").filter(|h| !h.is_null()) {
        let h = h
            .as_object()
            .ok_or_else(|| bad("headers must be an object".into()))?;
        for (k, v) in h {
            let k = k.to_ascii_lowercase();
            if HOP_BY_HOP.contains(&k.as_str()) {
                continue;
            }
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Null => continue,
                other => other.to_string(),
            };
            check_header(&k, &v).map_err(bad)?;
            headers.push((k, v));
        }
    }
    if let Some(c) = m.get("cookies").filter(|c| !c.is_null()) {
        let c = c
            .as_array()
            .ok_or_else(|| bad("cookies must be a list of strings".into()))?;
        for v in c {
            let v = v
                .as_str()
                .ok_or_else(|| bad("cookies must be a list of strings".into()))?;
            check_header("set-cookie", v).map_err(bad)?;
            headers.push(("set-cookie".into(), v.to_string()));
        }
    }
    if !headers.iter().any(|(k, _)| k == "content-type") {
        headers.push(("content-type".into(), "application/json".into()));
    }
    let base64 = m
        .get("isBase64Encoded")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let body = match m.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) if base64 => B64.decode(s.trim()).map_err(|e| {
            bad(format!(
                "isBase64Encoded is true but body is not base64: {e}"
            ))
        })?,
        Some(Value::String(s)) => s.clone().into_bytes(),
        Some(other) => other.to_string().into_bytes(),
    };
    if body.len() > SYNC_PAYLOAD_MAX {
        return Err(FailureClass::BadResponse.with(format!(
            "Response payload size exceeded maximum allowed payload size ({SYNC_PAYLOAD_MAX} bytes)."
        )));
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// A header name and value hyper will send.
fn check_header(k: &str, v: &str) -> Result<(), String> {
    hyper::header::HeaderName::from_bytes(k.as_bytes())
        .map_err(|_| format!("header name {k:?} is not a valid HTTP header name"))?;
    hyper::header::HeaderValue::from_str(v)
        .map_err(|_| format!("header {k:?} has a value with control characters"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(r: &'a HttpResponse, k: &str) -> Vec<&'a str> {
        r.headers
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    #[test]
    fn a_structured_result_sets_status_headers_cookies_and_body() {
        let r = from_result(
            br#"{"statusCode": 201, "headers": {"Content-Type": "text/html", "X-N": 5, "Content-Length": "1"},
                 "cookies": ["a=1; Path=/", "b=2"], "body": "<p>hi</p>"}"#,
            None,
        )
        .unwrap();
        assert_eq!(r.status, 201);
        assert_eq!(header(&r, "content-type"), ["text/html"]);
        assert_eq!(header(&r, "x-n"), ["5"]);
        assert_eq!(header(&r, "set-cookie"), ["a=1; Path=/", "b=2"]);
        assert!(header(&r, "content-length").is_empty());
        assert_eq!(r.body, b"<p>hi</p>");
    }

    #[test]
    fn base64_bodies_are_decoded() {
        let r = from_result(
            br#"{"statusCode": 200, "isBase64Encoded": true, "body": "AJ+SlqA=",
                 "headers": {"content-type": "application/octet-stream"}}"#,
            None,
        )
        .unwrap();
        assert_eq!(r.body, [0, 159, 146, 150, 160]);
        let e = from_result(
            br#"{"statusCode": 200, "isBase64Encoded": true, "body": "!!"}"#,
            None,
        )
        .unwrap_err();
        assert_eq!(e.status, 502);
    }

    #[test]
    fn other_json_is_a_200_json_body() {
        for p in [
            &br#"{"message": "hi"}"#[..],
            br#""just text""#,
            b"42",
            b"[1,2]",
            b"null",
        ] {
            let r = from_result(p, None).unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(header(&r, "content-type"), ["application/json"]);
            assert_eq!(r.body, p);
        }
    }

    #[test]
    fn a_structured_result_without_content_type_is_json() {
        let r = from_result(br#"{"statusCode": "404"}"#, None).unwrap();
        assert_eq!(r.status, 404);
        assert_eq!(header(&r, "content-type"), ["application/json"]);
        assert!(r.body.is_empty());
    }

    #[test]
    fn function_errors_timeouts_and_bad_results_map_to_lambdas_statuses() {
        let e = from_result(
            br#"{"errorType": "ValueError", "errorMessage": "x"}"#,
            Some("Unhandled"),
        )
        .unwrap_err();
        assert_eq!((e.status, e.class), (502, FailureClass::Function));
        let e = from_result(
            br#"{"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out"}"#,
            Some("Unhandled"),
        )
        .unwrap_err();
        assert_eq!((e.status, e.class), (504, FailureClass::Timeout));
        let e = from_result(br#"{"statusCode": 42}"#, None).unwrap_err();
        assert_eq!((e.status, e.class), (502, FailureClass::BadResponse));
        let e = from_result(
            br#"{"statusCode": 200, "headers": {"bad name": "x"}}"#,
            None,
        )
        .unwrap_err();
        assert!(e.message.contains("bad name"), "{e}");
        let e = from_result(b"not json", None).unwrap_err();
        assert_eq!(e.status, 502);
    }

    #[test]
    fn error_bodies_are_lambdas_message_shape() {
        let r = FailureClass::Throttle.with("Rate Exceeded.").to_response();
        assert_eq!(r.status, 429);
        assert_eq!(r.body, br#"{"Message":"Rate Exceeded."}"#);
        assert_eq!(Failure::too_large().status, 413);
    }
}
