//! Method and path to operation, with Lambda's exact paths (each operation keeps the
//! API version date it was introduced with).

use super::errors::ApiError;
use super::request::{ApiRequest, Outcome};
use super::sigv4::percent_decode;
use super::{aliases, concurrency, event_config, functions, invoke, versions, LambdaApi};

/// Runs the operation `req` asks for.
pub async fn route(api: &LambdaApi, req: ApiRequest) -> Outcome {
    let segs: Vec<String> = req
        .path
        .trim_start_matches('/')
        .split('/')
        .map(|s| String::from_utf8_lossy(&percent_decode(s)).into_owned())
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let op = match (req.method.as_str(), &segs[..]) {
        ("POST", ["2015-03-31", "functions"] | ["2015-03-31", "functions", ""]) => {
            return functions::create(api, &req).await
        }
        ("GET", ["2015-03-31", "functions"] | ["2015-03-31", "functions", ""]) => {
            return functions::list(api, &req).await
        }
        (m, ["2015-03-31", "functions", name, "versions"]) => match m {
            "POST" => return versions::publish(api, &req, name).await,
            "GET" => return versions::list(api, &req, name).await,
            _ => return Err(ApiError::unknown_operation(m, &req.path)),
        },
        (m, ["2015-03-31", "functions", name, "aliases"]) => match m {
            "POST" => return aliases::create(api, &req, name).await,
            "GET" => return aliases::list(api, &req, name).await,
            _ => return Err(ApiError::unknown_operation(m, &req.path)),
        },
        (m, ["2015-03-31", "functions", name, "aliases", alias]) => match m {
            "GET" => return aliases::get(api, name, alias).await,
            "PUT" => return aliases::update(api, &req, name, alias).await,
            "DELETE" => return aliases::delete(api, name, alias).await,
            _ => return Err(ApiError::unknown_operation(m, &req.path)),
        },
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
        (m, ["2019-09-25", "functions", name, "event-invoke-config"]) => match m {
            "PUT" => ("PutFunctionEventInvokeConfig", name),
            "POST" => ("UpdateFunctionEventInvokeConfig", name),
            "GET" => ("GetFunctionEventInvokeConfig", name),
            "DELETE" => ("DeleteFunctionEventInvokeConfig", name),
            _ => return Err(ApiError::unknown_operation(m, &req.path)),
        },
        (m, _) => return Err(ApiError::unknown_operation(m, &req.path)),
    };
    let (operation, name) = (op.0, op.1.to_string());
    tracing::debug!(operation, function = %name, "REST operation");
    match operation {
        "GetFunction" => functions::get(api, &req, &name).await,
        "DeleteFunction" => functions::delete(api, &req, &name).await,
        "GetFunctionConfiguration" => functions::get_configuration(api, &req, &name).await,
        "UpdateFunctionConfiguration" => functions::update_configuration(api, &req, &name).await,
        "UpdateFunctionCode" => functions::update_code(api, &req, &name).await,
        "Invoke" => invoke::invoke(api, &req, &name).await,
        "PutFunctionConcurrency" => concurrency::put(api, &req, &name).await,
        "DeleteFunctionConcurrency" => concurrency::delete(api, &name).await,
        "PutFunctionEventInvokeConfig" => event_config::put(api, &req, &name, false),
        "UpdateFunctionEventInvokeConfig" => event_config::put(api, &req, &name, true),
        "GetFunctionEventInvokeConfig" => event_config::get(api, &req, &name),
        "DeleteFunctionEventInvokeConfig" => event_config::delete(api, &req, &name),
        _ => concurrency::get(api, &name).await,
    }
}
