//! The sandbox's loopback endpoint for AWS SDKs (127.0.0.1:9002), started for a
//! function with an execution role (docs/ROLES.md):
//!
//! - `GET /flint/v1/credentials` is the container-credentials endpoint
//!   (AWS_CONTAINER_CREDENTIALS_FULL_URI): with the right `Authorization`
//!   (AWS_CONTAINER_AUTHORIZATION_TOKEN) it returns fresh credentials from the host.
//! - `GET /flint/v1/secrets/NAME`, with the same `Authorization`, returns
//!   `{"Name", "SecretString"}` when the role's policy lets it read that secret (403
//!   otherwise): the value comes from the host, which opens it.
//! - Every other request is forwarded whole to flintd's Lambda API over the host
//!   connection (AWS_ENDPOINT_URL_LAMBDA), so the SDK reaches it even without a
//!   network; flintd checks its SigV4 signature and the role's policy.
//!
//! One thread per connection, keep-alive, the same bounded HTTP codec as the Runtime API.

use crate::host_calls::{CallError, HostCalls};
use crate::http::{self, HttpError, RequestHead, Response};
use crate::state::Shared;
use flint_proto::init::{
    host_call::Kind, host_call_reply::Kind as ReplyKind, CredentialsRequest, HttpHeader,
    HttpRequest, SecretRequest,
};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// Path of the credentials endpoint.
pub const CREDENTIALS_PATH: &str = "/flint/v1/credentials";
/// Prefix of the named secrets endpoint (`/flint/v1/secrets/NAME`).
pub const SECRETS_PREFIX: &str = "/flint/v1/secrets/";
/// Largest request forwarded: an Invoke payload of 6 MB and its envelope.
const BODY_LIMIT: usize = 7 * 1024 * 1024;
/// How long the host may take to answer a forwarded request (a synchronous Invoke
/// lasts up to the callee's timeout, at most 900 s).
const PROXY_TIMEOUT: Duration = Duration::from_secs(905);
/// How long the host may take to mint credentials.
const CREDENTIALS_TIMEOUT: Duration = Duration::from_secs(10);

/// What the endpoint works with.
pub struct Local {
    pub shared: Arc<Shared>,
    pub calls: Arc<HostCalls>,
    /// The token callers of the credentials endpoint must present.
    pub auth_token: String,
}

/// Serves the endpoint on `listener` from a background thread.
pub fn spawn(listener: TcpListener, local: Arc<Local>) -> std::io::Result<()> {
    thread::Builder::new()
        .name("aws-local".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(stream) = conn else { continue };
                let local = local.clone();
                let spawned = thread::Builder::new()
                    .name("aws-local-conn".into())
                    .spawn(move || serve_connection(stream, &local));
                if let Err(e) = spawned {
                    eprintln!("flint-init: credentials endpoint connection thread: {e}");
                }
            }
        })?;
    Ok(())
}

fn serve_connection(stream: TcpStream, local: &Local) {
    http::serve_connection(stream, |head, reader| {
        match http::read_body(reader, head, BODY_LIMIT) {
            Ok(body) => (handle(head, body, local), true),
            Err(HttpError::TooLarge { drained, .. }) => (
                Response::error(
                    413,
                    "RequestTooLargeException",
                    "request body larger than the Lambda API accepts",
                ),
                drained,
            ),
            // The connection is unusable: answer and close.
            Err(e) => (
                Response::error(400, "InvalidRequest", &e.to_string()),
                false,
            ),
        }
    });
}

/// Constant-time comparison of the presented token.
fn token_matches(given: Option<&str>, want: &str) -> bool {
    let Some(given) = given else { return false };
    let (a, b) = (given.as_bytes(), want.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn call_failed(e: CallError) -> Response {
    Response::error(502, "HostCallFailed", &e.to_string())
}

/// A named secret's value, if the role may read it.
fn secret(name: &str, local: &Local) -> Response {
    let kind = Kind::Secret(SecretRequest {
        name: name.to_string(),
    });
    match local
        .calls
        .call(&local.shared.link, kind, CREDENTIALS_TIMEOUT)
    {
        Ok(ReplyKind::SecretValue(v)) => Response::json(
            200,
            serde_json::json!({"Name": name, "SecretString": v}).to_string(),
        ),
        Ok(ReplyKind::Denied(why)) => Response::error(403, "AccessDeniedException", &why),
        Ok(_) => Response::error(502, "HostCallFailed", "unexpected reply"),
        Err(e) => call_failed(e),
    }
}

/// Answers one request.
pub fn handle(head: &RequestHead, body: Vec<u8>, local: &Local) -> Response {
    let path = head.target.split('?').next().unwrap_or("");
    let secret_name = path.strip_prefix(SECRETS_PREFIX);
    if path == CREDENTIALS_PATH || secret_name.is_some() {
        if head.method != "GET" {
            return Response::error(405, "MethodNotAllowed", "use GET");
        }
        if !token_matches(head.header("authorization"), &local.auth_token) {
            return Response::error(
                403,
                "AccessDenied",
                "the Authorization header must be AWS_CONTAINER_AUTHORIZATION_TOKEN",
            );
        }
        if let Some(name) = secret_name {
            return secret(name, local);
        }
        let kind = Kind::Credentials(CredentialsRequest {});
        return match local
            .calls
            .call(&local.shared.link, kind, CREDENTIALS_TIMEOUT)
        {
            Ok(ReplyKind::Credentials(c)) => {
                let doc = serde_json::json!({
                    "AccessKeyId": c.access_key_id,
                    "SecretAccessKey": c.secret_access_key,
                    "Token": c.session_token,
                    "Expiration": c.expiration,
                });
                Response::json(200, doc.to_string())
            }
            Ok(_) => Response::error(502, "HostCallFailed", "unexpected reply"),
            Err(e) => call_failed(e),
        };
    }
    let req = HttpRequest {
        method: head.method.clone(),
        target: head.target.clone(),
        headers: head
            .headers
            .iter()
            .map(|(name, value)| HttpHeader {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
        body,
    };
    match local
        .calls
        .call(&local.shared.link, Kind::Http(req), PROXY_TIMEOUT)
    {
        Ok(ReplyKind::Http(r)) => Response {
            status: u16::try_from(r.status).unwrap_or(502),
            headers: r
                .headers
                .into_iter()
                .filter(|h| {
                    !h.name.eq_ignore_ascii_case("content-length")
                        && !h.name.eq_ignore_ascii_case("connection")
                })
                .map(|h| (h.name, h.value))
                .collect(),
            body: r.body,
        },
        Ok(_) => Response::error(502, "HostCallFailed", "unexpected reply"),
        Err(e) => call_failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_must_match_exactly() {
        assert!(token_matches(Some("abc"), "abc"));
        assert!(!token_matches(Some("abd"), "abc"));
        assert!(!token_matches(Some("ab"), "abc"));
        assert!(!token_matches(None, "abc"));
    }
}
