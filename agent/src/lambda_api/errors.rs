//! Lambda's error shapes: the status code, the `x-amzn-ErrorType` header and the JSON
//! body (`{"Type": "User", "message": ...}`, with `Message` for the shapes that spell
//! it so), and the mapping of every typed agent error onto them, in one place.

use super::sigv4::SigError;
use crate::code::CodeError;
use crate::functions::FunctionError;
use crate::invoke::InvokeError;
use crate::limiter::Throttle;
use crate::roles::RoleError;
use crate::runtimes::RuntimeError;
use crate::store::StoreError;

/// One error answer of the REST API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    /// The AWS error code, e.g. `ResourceNotFoundException`.
    pub code: &'static str,
    pub message: String,
    /// `Reason` of TooManyRequestsException.
    pub reason: Option<&'static str>,
}

impl ApiError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            reason: None,
        }
    }

    /// 400 InvalidParameterValueException.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(400, "InvalidParameterValueException", message)
    }

    /// 404 ResourceNotFoundException.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "ResourceNotFoundException", message)
    }

    /// 400 SerializationException: a request body that is not the expected JSON.
    pub fn serialization(message: impl Into<String>) -> Self {
        Self::new(400, "SerializationException", message)
    }

    /// 400 InvalidRequestContentException: an Invoke payload that is not JSON.
    pub fn request_content(message: impl Into<String>) -> Self {
        Self::new(400, "InvalidRequestContentException", message)
    }

    /// 413 RequestTooLargeException.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(413, "RequestTooLargeException", message)
    }

    /// 412 PreconditionFailedException (a stale RevisionId).
    pub fn precondition(message: impl Into<String>) -> Self {
        Self::new(412, "PreconditionFailedException", message)
    }

    /// 409 ResourceConflictException.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, "ResourceConflictException", message)
    }

    /// 500 ServiceException.
    pub fn service(message: impl Into<String>) -> Self {
        Self::new(500, "ServiceException", message)
    }

    /// 403 AccessDeniedException: temporary credentials whose role does not allow this.
    pub fn access_denied(message: impl Into<String>) -> Self {
        Self::new(403, "AccessDeniedException", message)
    }

    /// 403 ExpiredTokenException: temporary credentials past their expiry.
    pub fn expired_token(message: impl Into<String>) -> Self {
        Self::new(403, "ExpiredTokenException", message)
    }

    /// 403 UnrecognizedClientException: an unknown key or a session token that is not
    /// flintd's (or was altered).
    pub fn unrecognized_client(message: impl Into<String>) -> Self {
        Self::new(403, "UnrecognizedClientException", message)
    }

    /// 404 UnknownOperationException: no operation at this method and path.
    pub fn unknown_operation(method: &str, path: &str) -> Self {
        Self::new(
            404,
            "UnknownOperationException",
            format!("no Lambda operation is served at {method} {path}: see the operations listed in agent/README.md"),
        )
    }

    /// Whether the body says `Type: User` (the caller's fault) or `Service`.
    fn kind(&self) -> Option<&'static str> {
        match self.code {
            "MissingAuthenticationTokenException"
            | "IncompleteSignatureException"
            | "UnrecognizedClientException"
            | "ExpiredTokenException"
            | "InvalidSignatureException"
            | "SerializationException"
            | "UnknownOperationException" => None,
            _ if self.status >= 500 => Some("Service"),
            _ => Some("User"),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        // The shapes that spell their member `Message` (botocore reads either).
        let key = match self.code {
            "ResourceNotFoundException"
            | "ServiceException"
            | "InvalidRuntimeException"
            | "AccessDeniedException" => "Message",
            _ => "message",
        };
        let mut b = serde_json::Map::new();
        if let Some(k) = self.kind() {
            b.insert("Type".into(), k.into());
        }
        b.insert(key.into(), self.message.clone().into());
        if let Some(r) = self.reason {
            b.insert("Reason".into(), r.into());
        }
        serde_json::Value::Object(b)
    }
}

impl From<SigError> for ApiError {
    fn from(e: SigError) -> Self {
        let (status, code) = match &e {
            SigError::Missing => (403, "MissingAuthenticationTokenException"),
            SigError::Incomplete(_) => (400, "IncompleteSignatureException"),
            SigError::UnknownKey => (403, "UnrecognizedClientException"),
            SigError::Mismatch | SigError::Expired { .. } | SigError::Scope(_) => {
                (403, "InvalidSignatureException")
            }
        };
        Self::new(status, code, e.to_string())
    }
}

/// `Function not found: ARN`, as Lambda words it.
fn store_error(e: StoreError, arn: &dyn Fn(&str) -> String) -> ApiError {
    match e {
        StoreError::NotFound(name) => {
            ApiError::not_found(format!("Function not found: {}", arn(&name)))
        }
        StoreError::Exists(name) => ApiError::new(
            409,
            "ResourceConflictException",
            format!("Function already exist: {name}"),
        ),
        e @ StoreError::HasTriggers { .. } => {
            ApiError::new(409, "ResourceConflictException", e.to_string())
        }
        e @ (StoreError::Sqlite(_) | StoreError::Schema(_) | StoreError::Corrupt(_)) => {
            ApiError::service(e.to_string())
        }
    }
}

fn code_error(e: CodeError) -> ApiError {
    match e {
        e @ (CodeError::Io { .. } | CodeError::Missing(_)) => ApiError::service(e.to_string()),
        e => ApiError::invalid(e.to_string()),
    }
}

/// A management call's error; `arn` names a function in messages.
pub fn function_error(e: FunctionError, arn: &dyn Fn(&str) -> String) -> ApiError {
    match e {
        FunctionError::Invalid(v) => ApiError::invalid(v.to_string()),
        FunctionError::Code(c) => code_error(c),
        FunctionError::Runtime(r @ RuntimeError::Unknown { .. }) => {
            ApiError::invalid(r.to_string())
        }
        FunctionError::Runtime(r) => ApiError::service(r.to_string()),
        FunctionError::Store(s) => store_error(s, arn),
        FunctionError::Reserve(r) => ApiError::invalid(r.to_string()),
        FunctionError::Role(r) => role_error(r),
        // Lambda's answer when code storage is exhausted.
        e @ FunctionError::LowDisk(_) => {
            ApiError::new(400, "CodeStorageExceededException", e.to_string())
        }
        FunctionError::Layer(l) => layer_error(l),
    }
}

/// A layer operation's error, as Lambda reports it.
pub fn layer_error(e: crate::layers::LayerError) -> ApiError {
    use crate::layers::LayerError as L;
    match e {
        e @ L::NotFound(_) => ApiError::not_found(e.to_string()),
        L::Code(c) => code_error(c),
        L::Store(s) => ApiError::service(s.to_string()),
        e @ L::LowDisk(_) => ApiError::new(400, "CodeStorageExceededException", e.to_string()),
        e => ApiError::invalid(e.to_string()),
    }
}

/// A role or secret error of a management call.
pub fn role_error(e: RoleError) -> ApiError {
    match e {
        e @ (RoleError::Invalid(_) | RoleError::NotFound(_) | RoleError::NoOperatorKey) => {
            ApiError::invalid(e.to_string())
        }
        e => ApiError::service(e.to_string()),
    }
}

/// An invocation's error (function failures are not errors: they are answers).
pub fn invoke_error(e: InvokeError, arn: &dyn Fn(&str) -> String) -> ApiError {
    match e {
        InvokeError::Store(s) => store_error(s, arn),
        e @ InvokeError::PayloadTooLarge { .. } => ApiError::too_large(e.to_string()),
        e @ InvokeError::PayloadNotJson(_) => {
            ApiError::request_content(format!("Could not parse request body into json: {e}"))
        }
        e @ InvokeError::ClientContext(_) => ApiError::invalid(e.to_string()),
        InvokeError::Runtime(r) => ApiError::new(502, "InvalidRuntimeException", r.to_string()),
        InvokeError::Code(c) => ApiError::service(c.to_string()),
        e @ InvokeError::Sandbox { .. } => ApiError::service(e.to_string()),
        InvokeError::Queue(q @ crate::events::QueueError::Full { .. }) => {
            ApiError::service(q.to_string())
        }
        InvokeError::Queue(q) => {
            tracing::error!(error = %q, "event not accepted");
            ApiError::service(
                "the event queue could not store the event, so it was not accepted; flintd's log has the cause",
            )
        }
        InvokeError::Role(r) => {
            tracing::error!(error = %r, "credentials or secrets not prepared");
            ApiError::service("the function's credentials or secrets could not be prepared; flintd's log has the cause")
        }
        // An SDK retries a 429 with backoff: right for space that may come back.
        e @ InvokeError::LowDisk(_) => {
            ApiError::new(429, "TooManyRequestsException", e.to_string())
        }
        InvokeError::Throttled(t) => {
            let reason = match &t {
                Throttle::Reserved { .. } => "ReservedFunctionConcurrentInvocationLimitExceeded",
                // The start queue and the host memory floor bound how many new execution
                // environments start at once: Lambda reports its burst limit the same way.
                Throttle::Unreserved { .. }
                | Throttle::Starts { .. }
                | Throttle::HostMemory { .. } => "ConcurrentInvocationLimitExceeded",
                Throttle::Rate { .. } => "CallerRateLimitExceeded",
                Throttle::Draining => {
                    return ApiError::new(503, "ServiceException", t.to_string());
                }
            };
            ApiError {
                reason: Some(reason),
                ..ApiError::new(429, "TooManyRequestsException", t.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arn(n: &str) -> String {
        format!("arn:aws:lambda:us-east-1:000000000000:function:{n}")
    }

    #[test]
    fn not_found_has_lambdas_code_status_and_message_member() {
        let e = function_error(StoreError::NotFound("f".into()).into(), &arn);
        assert_eq!((e.status, e.code), (404, "ResourceNotFoundException"));
        assert_eq!(
            e.body(),
            serde_json::json!({"Type": "User", "Message": "Function not found: arn:aws:lambda:us-east-1:000000000000:function:f"})
        );
        let e = function_error(StoreError::Exists("f".into()).into(), &arn);
        assert_eq!((e.status, e.code), (409, "ResourceConflictException"));
        assert_eq!(e.body()["message"], "Function already exist: f");
    }

    #[test]
    fn invoke_errors_and_auth_errors_map_to_their_shapes() {
        let e = invoke_error(
            InvokeError::PayloadTooLarge {
                size: 7,
                limit: 6,
                kind: "synchronous",
            },
            &arn,
        );
        assert_eq!((e.status, e.code), (413, "RequestTooLargeException"));
        let e = invoke_error(InvokeError::PayloadNotJson("eof".into()), &arn);
        assert_eq!((e.status, e.code), (400, "InvalidRequestContentException"));
        let e: ApiError = SigError::Missing.into();
        assert_eq!(
            (e.status, e.code, e.body()),
            (
                403,
                "MissingAuthenticationTokenException",
                serde_json::json!({"message": "Missing Authentication Token"})
            )
        );
        let e: ApiError = SigError::Mismatch.into();
        assert_eq!((e.status, e.code), (403, "InvalidSignatureException"));
    }
}
