//! Method and path to operation, with Lambda's exact paths (each operation keeps the
//! API version date it was introduced with).

use super::errors::ApiError;
use super::request::{ApiRequest, Outcome};
use super::sigv4::percent_decode;
use super::{aliases, concurrency, event_config, event_sources, function_urls};
use super::{functions, invoke, versions, LambdaApi};
use crate::access_policy::Caller;

/// Runs the operation `req` asks for, if `caller`'s key policy allows it.
pub async fn route(api: &LambdaApi, req: ApiRequest, caller: Option<&Caller>) -> Outcome {
    if req.path.starts_with(super::layers::PREFIX) {
        return super::layers::route(api, &req, caller).await;
    }
    let (operation, name, alias) = match operation(&req)? {
        (op @ ("CreateFunction" | "ListFunctions"), _, _) => {
            if let Some(c) = caller {
                super::key_auth::authorize(api, c, &req, op, None)?;
            }
            return if op == "CreateFunction" {
                functions::create(api, &req).await
            } else {
                functions::list(api, &req).await
            };
        }
        (op @ ("CreateEventSourceMapping" | "ListEventSourceMappings"), _, _) => {
            if let Some(c) = caller {
                let f = req.param("FunctionName");
                super::key_auth::authorize(api, c, &req, op, f.as_deref())?;
            }
            return if op == "CreateEventSourceMapping" {
                event_sources::create(api, &req)
            } else {
                event_sources::list(api, &req)
            };
        }
        (
            op
            @ ("GetEventSourceMapping" | "UpdateEventSourceMapping" | "DeleteEventSourceMapping"),
            uuid,
            _,
        ) => {
            // The mapping's function is the resource a key policy checks.
            let t = event_sources::find(api, &uuid)?;
            if let Some(c) = caller {
                super::key_auth::authorize(api, c, &req, op, Some(&t.function))?;
            }
            return match op {
                "GetEventSourceMapping" => event_sources::get(api, &uuid),
                "UpdateEventSourceMapping" => event_sources::update(api, &req, &uuid),
                _ => event_sources::delete(api, &uuid),
            };
        }
        (op, name, alias) => (op, name, alias),
    };
    if let Some(c) = caller {
        super::key_auth::authorize(api, c, &req, operation, Some(&name))?;
    }
    tracing::debug!(operation, function = %name, "REST operation");
    dispatch(api, &req, operation, &name, &alias).await
}

/// The operation `req` names (Lambda's operation name), the function in its path (empty
/// for CreateFunction and ListFunctions) and the alias in its path (empty unless the
/// operation is on one alias).
fn operation(req: &ApiRequest) -> Result<(&'static str, String, String), ApiError> {
    let segs: Vec<String> = req
        .path
        .trim_start_matches('/')
        .split('/')
        .map(|s| String::from_utf8_lossy(&percent_decode(s)).into_owned())
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let mut alias = "";
    let op: (&'static str, &str) = match (req.method.as_str(), &segs[..]) {
        ("POST", ["2015-03-31", "functions"] | ["2015-03-31", "functions", ""]) => {
            ("CreateFunction", "")
        }
        ("GET", ["2015-03-31", "functions"] | ["2015-03-31", "functions", ""]) => {
            ("ListFunctions", "")
        }
        (m, ["2015-03-31", "functions", name, "versions"]) => match m {
            "POST" => ("PublishVersion", name),
            "GET" => ("ListVersionsByFunction", name),
            _ => return Err(ApiError::unknown_operation(m, &req.path)),
        },
        (m, ["2015-03-31", "functions", name, "aliases"]) => match m {
            "POST" => ("CreateAlias", name),
            "GET" => ("ListAliases", name),
            _ => return Err(ApiError::unknown_operation(m, &req.path)),
        },
        (m, ["2015-03-31", "functions", name, "aliases", a]) => {
            alias = a;
            match m {
                "GET" => ("GetAlias", name),
                "PUT" => ("UpdateAlias", name),
                "DELETE" => ("DeleteAlias", name),
                _ => return Err(ApiError::unknown_operation(m, &req.path)),
            }
        }
        (m, ["2015-03-31", "functions", name]) => match m {
            "GET" => ("GetFunction", name),
            "DELETE" => ("DeleteFunction", name),
            _ => return Err(ApiError::unknown_operation(m, &req.path)),
        },
        (m, ["2015-03-31", "functions", name, "configuration"]) => match m {
            "GET" => ("GetFunctionConfiguration", name),
            "PUT" => ("UpdateFunctionConfiguration", name),
            _ => return Err(ApiError::unknown_operation(m, &req.path)),
        },
        ("PUT", ["2015-03-31", "functions", name, "code"]) => ("UpdateFunctionCode", name),
        ("POST", ["2015-03-31", "functions", name, "invocations"]) => ("Invoke", name),
        ("PUT", ["2017-10-31", "functions", name, "concurrency"]) => {
            ("PutFunctionConcurrency", name)
        }
        ("DELETE", ["2017-10-31", "functions", name, "concurrency"]) => {
            ("DeleteFunctionConcurrency", name)
        }
        ("GET", ["2019-09-30", "functions", name, "concurrency"]) => {
            ("GetFunctionConcurrency", name)
        }
        ("GET", ["2019-09-25", "functions", name, "event-invoke-config", "list"]) => {
            ("ListFunctionEventInvokeConfigs", name)
        }
        (m, ["2019-09-25", "functions", name, "event-invoke-config"]) => match m {
            "PUT" => ("PutFunctionEventInvokeConfig", name),
            "POST" => ("UpdateFunctionEventInvokeConfig", name),
            "GET" => ("GetFunctionEventInvokeConfig", name),
            "DELETE" => ("DeleteFunctionEventInvokeConfig", name),
            _ => return Err(ApiError::unknown_operation(m, &req.path)),
        },
        (m, ["2021-10-31", "functions", name, "url"]) => match m {
            "POST" => ("CreateFunctionUrlConfig", name),
            "GET" => ("GetFunctionUrlConfig", name),
            "PUT" => ("UpdateFunctionUrlConfig", name),
            "DELETE" => ("DeleteFunctionUrlConfig", name),
            _ => return Err(ApiError::unknown_operation(m, &req.path)),
        },
        ("GET", ["2021-10-31", "functions", name, "urls"]) => ("ListFunctionUrlConfigs", name),
        (
            m,
            ["2015-03-31", "event-source-mappings"] | ["2015-03-31", "event-source-mappings", ""],
        ) => match m {
            "POST" => ("CreateEventSourceMapping", ""),
            "GET" => ("ListEventSourceMappings", ""),
            _ => return Err(ApiError::unknown_operation(m, &req.path)),
        },
        // The mapping's UUID stands where other operations have the function.
        (m, ["2015-03-31", "event-source-mappings", uuid]) => match m {
            "GET" => ("GetEventSourceMapping", uuid),
            "PUT" => ("UpdateEventSourceMapping", uuid),
            "DELETE" => ("DeleteEventSourceMapping", uuid),
            _ => return Err(ApiError::unknown_operation(m, &req.path)),
        },
        (m, _) => return Err(ApiError::unknown_operation(m, &req.path)),
    };
    Ok((op.0, op.1.to_string(), alias.to_string()))
}

/// Runs `operation` on the function `name` (and its alias `alias`, for the operations
/// on one alias).
async fn dispatch(
    api: &LambdaApi,
    req: &ApiRequest,
    operation: &str,
    name: &str,
    alias: &str,
) -> Outcome {
    match operation {
        "PublishVersion" => versions::publish(api, req, name).await,
        "ListVersionsByFunction" => versions::list(api, req, name).await,
        "CreateAlias" => aliases::create(api, req, name).await,
        "ListAliases" => aliases::list(api, req, name).await,
        "GetAlias" => aliases::get(api, name, alias).await,
        "UpdateAlias" => aliases::update(api, req, name, alias).await,
        "DeleteAlias" => aliases::delete(api, name, alias).await,
        "GetFunction" => functions::get(api, req, name).await,
        "DeleteFunction" => functions::delete(api, req, name).await,
        "GetFunctionConfiguration" => functions::get_configuration(api, req, name).await,
        "UpdateFunctionConfiguration" => functions::update_configuration(api, req, name).await,
        "UpdateFunctionCode" => functions::update_code(api, req, name).await,
        "Invoke" => invoke::invoke(api, req, name).await,
        "PutFunctionConcurrency" => concurrency::put(api, req, name).await,
        "DeleteFunctionConcurrency" => concurrency::delete(api, name).await,
        "PutFunctionEventInvokeConfig" => event_config::put(api, req, name, false),
        "UpdateFunctionEventInvokeConfig" => event_config::put(api, req, name, true),
        "GetFunctionEventInvokeConfig" => event_config::get(api, req, name),
        "ListFunctionEventInvokeConfigs" => event_config::list(api, req, name),
        "DeleteFunctionEventInvokeConfig" => event_config::delete(api, req, name),
        "CreateFunctionUrlConfig" => function_urls::create(api, req, name),
        "GetFunctionUrlConfig" => function_urls::get(api, req, name),
        "UpdateFunctionUrlConfig" => function_urls::update(api, req, name),
        "DeleteFunctionUrlConfig" => function_urls::delete(api, req, name),
        "ListFunctionUrlConfigs" => function_urls::list(api, req, name),
        _ => concurrency::get(api, name).await,
    }
}
