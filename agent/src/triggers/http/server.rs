//! The function URL listener (`--http-listen`): HTTP/1.1 with keep-alive and HTTP/2
//! (prior knowledge on plain TCP, ALPN `h2` over TLS) on one port. Each request is
//! routed to its trigger, read whole (at most 6 MB), turned into the 2.0 event,
//! invoked synchronously under a request id that is also the event's
//! `requestContext.requestId` and the response's `x-amzn-RequestId`, and answered
//! with the function's mapped result.

use super::event::{function_url_event, HttpRequest};
use super::response::{Failure, FailureClass, HttpResponse};
use super::routes::{route, Route, Table};
use super::stats::HttpStats;
use crate::core::Agent;
use crate::invoke::{InvocationType, InvokeError, InvokeInput};
use crate::limits::SYNC_PAYLOAD_MAX;
use crate::triggers::model::TriggerKind;
use chrono::Utc;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;

/// How long an HTTP/1.1 client may take to send a request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The listener's state: the agent, the route cache and the counters.
pub struct FunctionUrls {
    agent: Arc<Agent>,
    /// `x-forwarded-proto` and `x-forwarded-port` of every request.
    proto: &'static str,
    port: u16,
    stats: Arc<HttpStats>,
    /// The HTTP triggers as of a trigger generation (see `TriggerState::generation`).
    cache: Mutex<Option<(u64, Arc<Table>)>>,
}

impl FunctionUrls {
    /// The state of a listener on `port`, over TLS when `tls`.
    pub fn new(agent: Arc<Agent>, tls: bool, port: u16) -> Arc<Self> {
        let stats = HttpStats::new(agent.metrics());
        Arc::new(Self {
            agent,
            proto: if tls { "https" } else { "http" },
            port,
            stats,
            cache: Mutex::new(None),
        })
    }

    /// The HTTP triggers, read again from the registry after any trigger change.
    async fn table(&self) -> Result<Arc<Table>, Failure> {
        let generation = self.agent.trigger_state().generation();
        if let Some((g, t)) = &*self.cache.lock().unwrap_or_else(|p| p.into_inner()) {
            if *g == generation {
                return Ok(t.clone());
            }
        }
        let agent = self.agent.clone();
        let all = tokio::task::spawn_blocking(move || agent.list_triggers(None))
            .await
            .map_err(|e| FailureClass::Internal.with(format!("registry task: {e}")))?
            .map_err(|e| FailureClass::Internal.with(format!("registry: {e}")))?;
        let table: Table = all
            .into_iter()
            .filter(|t| matches!(t.kind, TriggerKind::Http(_)))
            .map(|t| {
                (
                    t.name.clone(),
                    Route {
                        trigger: t.name,
                        function: t.function,
                        enabled: t.enabled,
                    },
                )
            })
            .collect();
        let table = Arc::new(table);
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = Some((generation, table.clone()));
        Ok(table)
    }
}

/// Serves function URLs on `listener` (over TLS when `tls` is given) until `stop`
/// turns true.
pub async fn serve(
    listener: TcpListener,
    urls: Arc<FunctionUrls>,
    tls: Option<TlsAcceptor>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    crate::accept::serve("function URLs", listener, tls, stop, move |io, peer| {
        connection(io, urls.clone(), peer)
    })
    .await
}

/// Serves the requests of one connection, HTTP/1.1 or HTTP/2.
async fn connection<I>(io: I, urls: Arc<FunctionUrls>, peer: SocketAddr)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        let urls = urls.clone();
        async move { Ok::<_, Infallible>(handle(&urls, req, peer).await) }
    });
    let mut builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(io), svc);
    if let Err(e) = conn.await {
        tracing::debug!(%peer, error = %e, "function URL connection ended");
    }
}

fn protocol(v: hyper::Version) -> &'static str {
    match v {
        hyper::Version::HTTP_10 => "HTTP/1.0",
        hyper::Version::HTTP_2 => "HTTP/2.0",
        hyper::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// One request, from head to response.
async fn handle(
    urls: &Arc<FunctionUrls>,
    req: hyper::Request<Incoming>,
    peer: SocketAddr,
) -> hyper::Response<Full<Bytes>> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let span = tracing::info_span!("function_url", request_id = %request_id, trigger = tracing::field::Empty, method = %req.method(), path = %req.uri().path());
    async {
        let r = match respond(urls, req, peer, &request_id).await {
            Ok(r) => r,
            Err(f) => {
                // Any client can cause these: a client's mistake is logged at debug
                // only, so a scan of the listener does not flood the log.
                if f.status >= 500 || f.status == 429 {
                    tracing::info!(status = f.status, class = f.class.label(), message = %f.message, "function URL request failed");
                } else {
                    tracing::debug!(status = f.status, class = f.class.label(), message = %f.message, "function URL request refused");
                }
                f.to_response()
            }
        };
        to_http(r, &request_id)
    }
    .instrument(span)
    .await
}

/// Routes, invokes and maps; failures before the trigger is known are not counted.
async fn respond(
    urls: &Arc<FunctionUrls>,
    req: hyper::Request<Incoming>,
    peer: SocketAddr,
    request_id: &str,
) -> Result<HttpResponse, Failure> {
    let time = Utc::now();
    let (parts, incoming) = req.into_parts();
    let mut headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    // HTTP/2 carries the host in :authority.
    if !parts.headers.contains_key(hyper::header::HOST) {
        if let Some(a) = parts.uri.authority() {
            headers.insert(0, ("host".into(), a.as_str().to_string()));
        }
    }
    forwarded(&mut headers, peer, urls.proto, urls.port);
    let host = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("host"))
        .map_or("", |(_, v)| v.as_str());
    let table = urls.table().await?;
    let Some(routed) = route(&table, host, parts.uri.path()) else {
        return Err(FailureClass::NotFound.with(format!(
            "No function URL at {}: a URL is /TRIGGER/... or Host TRIGGER.DOMAIN, for an HTTP trigger (flint triggers ls)",
            parts.uri.path()
        )));
    };
    let trigger = routed.route.trigger.clone();
    tracing::Span::current().record("trigger", trigger.as_str());
    let result = invoke(
        urls,
        routed.route,
        &routed.path,
        &parts,
        &headers,
        incoming,
        peer,
        request_id,
        time,
    )
    .await;
    let when = crate::triggers::store::fmt_time(time);
    if let Some(write) = urls
        .stats
        .record(&trigger, result.as_ref().map(drop), &when, request_id)
    {
        let agent = urls.agent.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = agent.store().set_trigger_error(&trigger, write.as_deref()) {
                tracing::warn!(error = %e, "could not record the trigger's last error");
            }
        });
    }
    result
}

/// Adds the `x-forwarded-*` headers Lambda's function URLs add: the client's address
/// appended to `x-forwarded-for`, the listener's protocol and port.
fn forwarded(headers: &mut Vec<(String, String)>, peer: SocketAddr, proto: &str, port: u16) {
    let ip = peer.ip().to_canonical().to_string();
    headers.retain(|(k, _)| {
        !k.eq_ignore_ascii_case("x-forwarded-proto") && !k.eq_ignore_ascii_case("x-forwarded-port")
    });
    match headers
        .iter_mut()
        .rfind(|(k, _)| k.eq_ignore_ascii_case("x-forwarded-for"))
    {
        Some((_, v)) => {
            v.push_str(", ");
            v.push_str(&ip);
        }
        None => headers.push(("x-forwarded-for".into(), ip)),
    }
    headers.push(("x-forwarded-proto".into(), proto.into()));
    headers.push(("x-forwarded-port".into(), port.to_string()));
}

/// Reads the body and invokes the trigger's function with the event.
#[allow(clippy::too_many_arguments)]
async fn invoke(
    urls: &Arc<FunctionUrls>,
    route: &Route,
    path: &str,
    parts: &hyper::http::request::Parts,
    headers: &[(String, String)],
    incoming: Incoming,
    peer: SocketAddr,
    request_id: &str,
    time: chrono::DateTime<Utc>,
) -> Result<HttpResponse, Failure> {
    if !route.enabled {
        return Err(FailureClass::Disabled.with(format!(
            "Forbidden: the function URL {} is disabled (flint triggers enable {})",
            route.trigger, route.trigger
        )));
    }
    let body = Limited::new(incoming, SYNC_PAYLOAD_MAX)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                Failure::too_large()
            } else {
                FailureClass::BadRequest.with(format!("reading the request body: {e}"))
            }
        })?
        .to_bytes();
    let event = function_url_event(&HttpRequest {
        trigger: &route.trigger,
        method: parts.method.as_str(),
        raw_path: path,
        raw_query: parts.uri.query().unwrap_or(""),
        headers,
        protocol: protocol(parts.version),
        source_ip: peer.ip().to_canonical().to_string(),
        request_id,
        time,
        body: &body,
    });
    let out = urls
        .agent
        .invoke_as(
            InvokeInput {
                function_name: route.function.clone(),
                invocation_type: InvocationType::RequestResponse,
                log_tail: false,
                payload: event,
                client_context: String::new(),
            },
            request_id.to_string(),
        )
        .instrument(tracing::info_span!("invoke", function = %route.function))
        .await
        .map_err(invoke_failure)?;
    super::response::from_result(&out.payload, out.function_error.as_deref())
}

/// An invocation that could not run, as Lambda's function URLs answer it.
fn invoke_failure(e: InvokeError) -> Failure {
    match e {
        InvokeError::Throttled(t) => FailureClass::Throttle.with(format!("Rate Exceeded. ({t})")),
        InvokeError::PayloadTooLarge { .. } => Failure::too_large(),
        other => FailureClass::Internal.with(format!("The function could not be invoked: {other}")),
    }
}

fn to_http(r: HttpResponse, request_id: &str) -> hyper::Response<Full<Bytes>> {
    let mut b = hyper::Response::builder()
        .status(r.status)
        .header("x-amzn-RequestId", request_id);
    for (k, v) in &r.headers {
        b = b.header(k.as_str(), v.as_str());
    }
    b.body(Full::new(Bytes::from(r.body))).unwrap_or_else(|e| {
        // The mapping checked every header; a failure here is a bug, not the function's.
        tracing::error!(error = %e, "function URL response could not be built");
        let mut r = hyper::Response::new(Full::new(Bytes::from_static(
            br#"{"Message":"Internal Server Error"}"#,
        )));
        *r.status_mut() = hyper::StatusCode::BAD_GATEWAY;
        r
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_headers_append_the_client_and_name_the_listener() {
        let peer: SocketAddr = "[::ffff:10.0.0.9]:5000".parse().unwrap();
        let mut h = vec![
            ("X-Forwarded-For".to_string(), "1.2.3.4".to_string()),
            ("x-forwarded-proto".to_string(), "gopher".to_string()),
        ];
        forwarded(&mut h, peer, "https", 8443);
        assert_eq!(
            h,
            [
                (
                    "X-Forwarded-For".to_string(),
                    "1.2.3.4, 10.0.0.9".to_string()
                ),
                ("x-forwarded-proto".to_string(), "https".to_string()),
                ("x-forwarded-port".to_string(), "8443".to_string()),
            ]
        );
        let mut h = Vec::new();
        forwarded(&mut h, "127.0.0.1:1".parse().unwrap(), "http", 80);
        assert_eq!(
            h[0],
            ("x-forwarded-for".to_string(), "127.0.0.1".to_string())
        );
        assert_eq!(protocol(hyper::Version::HTTP_2), "HTTP/2.0");
    }
}
