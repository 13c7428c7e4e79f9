//! One REST request as the handlers see it (head and whole body), and their answer.

use super::errors::ApiError;
use serde_json::Value;

/// A request, read whole.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: String,
    /// The path as sent (percent-encoded).
    pub path: String,
    /// The query string as sent, without `?`.
    pub query: String,
    /// (lower-case name, value), in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ApiRequest {
    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The decoded value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<String> {
        self.query.split('&').find_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k == name).then(|| {
                let v = v.replace('+', " ");
                String::from_utf8_lossy(&super::sigv4::percent_decode(&v)).into_owned()
            })
        })
    }

    /// The body as the JSON shape `T`; an empty body reads as `{}`.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        let body: &[u8] = if self.body.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &self.body
        };
        serde_json::from_slice(body).map_err(|e| {
            ApiError::serialization(format!("the request body is not the expected JSON: {e}"))
        })
    }
}

/// A successful answer.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ApiResponse {
    /// A JSON answer.
    pub fn json(status: u16, v: &Value) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: v.to_string().into_bytes(),
        }
    }

    /// An answer without a body (204).
    pub fn empty(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }
}

/// What a handler returns.
pub type Outcome = Result<ApiResponse, ApiError>;
