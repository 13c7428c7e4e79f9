//! The AWS Lambda Runtime API (2018-06-01) server the runtime talks to on
//! 127.0.0.1:9001: one thread per connection, keep-alive, routes mapped onto `Shared`.

use crate::handoff::{next_response, Awaits, Parked};
use crate::http::{self, HttpError, RequestHead, Response};
use crate::state::{error_doc, Outcome, Shared, Waited};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;

/// Largest response (or error document) a function may return, as in Lambda.
pub const RESPONSE_LIMIT: usize = 6_291_556;

/// Error type for a response over `RESPONSE_LIMIT`.
pub const TOO_LARGE: &str = flint_proto::lambda::RESPONSE_TOO_LARGE;

const PREFIX: &str = "/2018-06-01/runtime/";

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Could not spawn the accept thread
    #[error("spawning the Runtime API thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Serves the Runtime API on `listener` from a background thread.
pub fn spawn(listener: TcpListener, shared: Arc<Shared>) -> Result<(), ApiError> {
    thread::Builder::new()
        .name("runtime-api".into())
        .spawn(move || accept_loop(listener, shared))?;
    Ok(())
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                eprintln!("flint-init: runtime API accept: {e}");
                continue;
            }
        };
        let shared = shared.clone();
        let spawned = thread::Builder::new()
            .name("runtime-api-conn".into())
            .spawn(move || serve_connection(stream, &shared));
        if let Err(e) = spawned {
            eprintln!("flint-init: runtime API connection thread: {e}");
        }
    }
}

/// Serves requests on one connection until it closes or a request is malformed.
fn serve_connection(stream: TcpStream, shared: &Shared) {
    http::serve_connection_answered_elsewhere(stream, |head, reader, socket| {
        handle(head, reader, socket, shared)
    });
}

enum Route<'a> {
    Next,
    Response(&'a str),
    Error(&'a str),
    InitError,
    /// Flint extension for warm-pool runtimes: wait for the function.
    Function,
}

/// Path of the warm-pool extension endpoint.
const FUNCTION_PATH: &str = "/flint/v1/function";

fn route<'a>(method: &str, path: &'a str) -> Option<Route<'a>> {
    if method == "GET" && path == FUNCTION_PATH {
        return Some(Route::Function);
    }
    let rest = path.strip_prefix(PREFIX)?;
    match (method, rest) {
        ("GET", "invocation/next") => Some(Route::Next),
        ("POST", "init/error") => Some(Route::InitError),
        ("POST", _) => {
            let inv = rest.strip_prefix("invocation/")?;
            let (id, action) = inv.rsplit_once('/')?;
            if id.is_empty() || id.contains('/') {
                return None;
            }
            match action {
                "response" => Some(Route::Response(id)),
                "error" => Some(Route::Error(id)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Handles one request; returns the response (`None` when the control loop wrote it)
/// and whether the connection may be kept.
fn handle<R: std::io::BufRead>(
    head: &RequestHead,
    reader: &mut R,
    socket: &Arc<TcpStream>,
    shared: &Shared,
) -> (Option<Response>, bool) {
    let (resp, keep) = route_request(head, reader, socket, shared);
    match resp {
        Reply::Now(r) => (Some(r), keep),
        Reply::Written { rest, ok } => {
            let ok = ok && (rest.is_empty() || (&**socket).write_all(&rest).is_ok());
            (None, keep && ok)
        }
    }
}

/// A request's answer: to write now, or written already by the control loop but for
/// `rest`.
enum Reply {
    Now(Response),
    Written { rest: Vec<u8>, ok: bool },
}

impl From<Response> for Reply {
    fn from(r: Response) -> Self {
        Reply::Now(r)
    }
}

fn route_request<R: std::io::BufRead>(
    head: &RequestHead,
    reader: &mut R,
    socket: &Arc<TcpStream>,
    shared: &Shared,
) -> (Reply, bool) {
    let body = http::read_body(reader, head, RESPONSE_LIMIT);
    let path = head.target.split('?').next().unwrap_or("");
    let Some(route) = route(&head.method, path) else {
        let keep = !matches!(body, Err(HttpError::TooLarge { drained: false, .. }));
        let msg = format!("no route for {} {}", head.method, path);
        return (
            Response::error(404, "NotFound", &msg).into(),
            keep && body.is_ok(),
        );
    };
    let body = match body {
        Ok(b) => b,
        Err(HttpError::TooLarge { drained, .. }) => {
            return (too_large(&route, shared).into(), drained)
        }
        Err(HttpError::Malformed(why)) => {
            return (Response::error(400, "InvalidRequest", why).into(), false)
        }
        Err(e) => {
            return (
                Response::error(400, "InvalidRequest", &e.to_string()).into(),
                false,
            )
        }
    };
    let park = |awaits| Some(Parked::new(socket, head.keep_alive, awaits));
    let resp = match route {
        Route::Next => match shared.next_invocation(park(Awaits::Invocation)) {
            Waited::Got(inv) => next_response(inv),
            Waited::Answered { rest, ok } => return (Reply::Written { rest, ok }, true),
            Waited::Nothing => {
                Response::error(500, "Runtime.Shutdown", "the sandbox is shutting down")
            }
        },
        Route::Response(id) => finish(shared, id, Outcome::Response(body)),
        Route::Error(id) => {
            let error_type = error_type(head, &body);
            finish(
                shared,
                id,
                Outcome::Error {
                    error_type,
                    payload: body,
                },
            )
        }
        Route::InitError => {
            let error_type = error_type(head, &body);
            shared.init_error(&error_type, body);
            accepted()
        }
        Route::Function => match shared.wait_function_env(park(Awaits::Function)) {
            Waited::Got(env) => Response::json(200, env),
            Waited::Answered { rest, ok } => return (Reply::Written { rest, ok }, true),
            Waited::Nothing => Response::error(
                500,
                "Runtime.Shutdown",
                "no function: the sandbox is shutting down",
            ),
        },
    };
    (resp.into(), true)
}

fn accepted() -> Response {
    Response::json(202, r#"{"status":"OK"}"#)
}

fn finish(shared: &Shared, id: &str, outcome: Outcome) -> Response {
    match shared.complete(id, outcome) {
        Ok(()) => accepted(),
        Err(e) => Response::error(400, "InvalidRequestID", &e.to_string()),
    }
}

/// A body over the limit: fails the invocation in flight (if the id names it).
fn too_large(route: &Route<'_>, shared: &Shared) -> Response {
    let message = format!(
        "Response payload size exceeded maximum allowed payload size ({RESPONSE_LIMIT} bytes)."
    );
    match route {
        Route::Response(id) | Route::Error(id) => {
            let outcome = Outcome::Error {
                error_type: TOO_LARGE.into(),
                payload: error_doc(TOO_LARGE, &message),
            };
            if let Err(e) = shared.complete(id, outcome) {
                return Response::error(400, "InvalidRequestID", &e.to_string());
            }
            Response::error(413, TOO_LARGE, &message)
        }
        Route::Next | Route::InitError | Route::Function => {
            Response::error(413, "RequestEntityTooLarge", &message)
        }
    }
}

/// Error type from the Lambda-Runtime-Function-Error-Type header, else the document's
/// `errorType`, else "Unhandled".
fn error_type(head: &RequestHead, body: &[u8]) -> String {
    if let Some(t) = head
        .header("lambda-runtime-function-error-type")
        .filter(|t| !t.is_empty())
    {
        return t.to_string();
    }
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("errorType")?.as_str().map(str::to_string))
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "Unhandled".into())
}

#[cfg(test)]
#[path = "runtime_api_tests.rs"]
mod tests;
