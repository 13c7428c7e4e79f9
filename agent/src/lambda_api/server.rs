//! The HTTP/1.1 listener of the REST API: reads each request whole (bounded),
//! authenticates it, routes it and writes Lambda's answer or error shape.

use super::errors::ApiError;
use super::request::{ApiRequest, ApiResponse, Outcome};
use super::LambdaApi;
use crate::limits::CODE_ZIP_MAX;
use crate::triggers::files::webhook;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;

/// Largest request body: a base64 code bundle of the largest size, plus the JSON.
pub const BODY_MAX: usize = CODE_ZIP_MAX / 3 * 4 + 1024 * 1024;

/// Serves the REST API on `listener` (over TLS when `tls` is given) until `stop`
/// turns true.
pub async fn serve(
    listener: TcpListener,
    api: Arc<LambdaApi>,
    tls: Option<TlsAcceptor>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    crate::accept::serve("REST API", listener, tls, stop, move |io, peer| {
        connection(io, api.clone(), peer)
    })
    .await
}

/// Serves the requests of one connection.
async fn connection<I>(io: I, api: Arc<LambdaApi>, peer: std::net::SocketAddr)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        let api = api.clone();
        async move { Ok::<_, Infallible>(handle(&api, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(hyper_util::rt::TokioIo::new(io), svc);
    if let Err(e) = conn.await {
        tracing::debug!(%peer, error = %e, "REST API connection ended");
    }
}

fn to_http(r: ApiResponse) -> hyper::Response<Full<Bytes>> {
    let mut b = hyper::Response::builder().status(r.status);
    for (k, v) in &r.headers {
        b = b.header(k.as_str(), v.as_str());
    }
    b.body(Full::new(Bytes::from(r.body)))
        .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new())))
}

/// The error shape as an HTTP answer.
pub fn error_response(e: &ApiError) -> ApiResponse {
    let mut r = ApiResponse::json(e.status, &e.body());
    r.headers.push(("x-amzn-ErrorType".into(), e.code.into()));
    r
}

/// The request's head, with an empty body.
fn head(parts: &hyper::http::request::Parts) -> ApiRequest {
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    ApiRequest {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        headers,
        body: Vec::new(),
    }
}

/// Reads the body whole, up to [`BODY_MAX`].
async fn body(body: Incoming) -> Result<Vec<u8>, ApiError> {
    Ok(Limited::new(body, BODY_MAX)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                ApiError::too_large(format!(
                    "Request must be smaller than {BODY_MAX} bytes for this operation"
                ))
            } else {
                ApiError::invalid(format!("reading the request body: {e}"))
            }
        })?
        .to_bytes()
        .to_vec())
}

/// Authenticates (head first, then the signature over the body) and runs the
/// operation.
async fn authenticate_and_route(api: &LambdaApi, req: hyper::Request<Incoming>) -> Outcome {
    let (parts, incoming) = req.into_parts();
    let mut r = head(&parts);
    if let Some(trigger) = r.path.strip_prefix(webhook::PATH_PREFIX) {
        // Outside SigV4: the trigger's own bearer token (triggers/files/webhook.rs).
        if r.method != "POST" {
            return Err(ApiError::unknown_operation(&r.method, &r.path));
        }
        let trigger = String::from_utf8_lossy(&super::sigv4::percent_decode(trigger)).into_owned();
        let body = body(incoming).await?;
        let (status, answer) =
            webhook::accept(&api.agent, &trigger, r.header("authorization"), &body).await;
        return Ok(ApiResponse::json(status, &answer));
    }
    let credential = super::auth::check_head(api, &r)?;
    r.body = body(incoming).await?;
    verified_route(api, r, credential).await
}

/// Verifies the signature of a whole request, applies a role's or a key's policy and
/// routes it.
async fn verified_route(
    api: &LambdaApi,
    r: ApiRequest,
    credential: super::auth::Credential,
) -> Outcome {
    super::auth::verify(&r, &credential)?;
    tracing::debug!(access_key = %credential.access_key(), "authenticated");
    if let Some(claims) = credential.role() {
        super::role_auth::authorize(api, claims, &r)?;
    }
    super::router::route(api, r, credential.caller()).await
}

/// The answer's status, headers (the request id among them) and body.
fn finish(outcome: Outcome, request_id: &str) -> ApiResponse {
    match outcome {
        Ok(mut r) => {
            // Invoke answers with the invocation's own request id.
            let id = r
                .headers
                .iter()
                .find(|(k, _)| k == "x-amzn-RequestId")
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| request_id.to_string());
            r.headers.retain(|(k, _)| k != "x-amzn-RequestId");
            r.headers.push(("x-amzn-RequestId".into(), id));
            r
        }
        Err(e) => {
            tracing::info!(code = e.code, status = e.status, message = %e.message, "REST request refused");
            let mut r = error_response(&e);
            r.headers
                .push(("x-amzn-RequestId".into(), request_id.into()));
            r
        }
    }
}

/// Answers one request that arrived whole by another way than this listener (a
/// sandbox's loopback proxy, docs/ROLES.md): the same authentication, policy and
/// routing as over TCP. The body must be no larger than [`BODY_MAX`].
pub async fn answer(api: &LambdaApi, r: ApiRequest) -> ApiResponse {
    let request_id = uuid::Uuid::new_v4().to_string();
    let span = tracing::info_span!("rest", request_id = %request_id, method = %r.method, path = %r.path, via = "sandbox");
    async {
        let outcome = if r.body.len() > BODY_MAX {
            Err(ApiError::too_large(format!(
                "Request must be smaller than {BODY_MAX} bytes for this operation"
            )))
        } else {
            match super::auth::check_head(api, &r) {
                Ok(c) => verified_route(api, r, c).await,
                Err(e) => Err(e),
            }
        };
        finish(outcome, &request_id)
    }
    .instrument(span)
    .await
}

async fn handle(
    api: &Arc<LambdaApi>,
    req: hyper::Request<Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let span = tracing::info_span!("rest", request_id = %request_id, method = %req.method(), path = %req.uri().path());
    async {
        let r = finish(authenticate_and_route(api, req).await, &request_id);
        to_http(r)
    }
    .instrument(span)
    .await
}
