//! Reserved concurrency: PutFunctionConcurrency, GetFunctionConcurrency,
//! DeleteFunctionConcurrency, through `Agent::set_concurrency` as over gRPC.

use super::functions::{blocking, lookup};
use super::request::{ApiRequest, ApiResponse, Outcome};
use super::shapes::PutConcurrency;
use super::LambdaApi;
use serde_json::json;

/// PUT /2017-10-31/functions/NAME/concurrency
pub async fn put(api: &LambdaApi, req: &ApiRequest, given: &str) -> Outcome {
    let name = api.place.resolve_latest(given, None)?;
    let b: PutConcurrency = req.json()?;
    let n = b.reserved_concurrent_executions;
    let f = blocking(api, move |a| a.set_concurrency(&name, Some(n))).await?;
    Ok(ApiResponse::json(
        200,
        &json!({"ReservedConcurrentExecutions": f.reserved_concurrency}),
    ))
}

/// GET /2019-09-30/functions/NAME/concurrency
pub async fn get(api: &LambdaApi, given: &str) -> Outcome {
    let name = api.place.resolve_latest(given, None)?;
    let f = lookup(api, &name).await?;
    let out = match f.reserved_concurrency {
        Some(n) => json!({"ReservedConcurrentExecutions": n}),
        None => json!({}),
    };
    Ok(ApiResponse::json(200, &out))
}

/// DELETE /2017-10-31/functions/NAME/concurrency
pub async fn delete(api: &LambdaApi, given: &str) -> Outcome {
    let name = api.place.resolve_latest(given, None)?;
    blocking(api, move |a| a.set_concurrency(&name, None)).await?;
    Ok(ApiResponse::empty(204))
}
