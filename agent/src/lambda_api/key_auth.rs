//! An access key's policy on a REST request (access_policy.rs): the operation the
//! router found is the action (`lambda:OPERATION`; Invoke is `lambda:InvokeFunction`,
//! as IAM names it), the function in the path (or CreateFunction's `FunctionName`) the
//! resource. Refusals are 403 AccessDeniedException.

use super::errors::ApiError;
use super::request::ApiRequest;
use super::LambdaApi;
use crate::access_policy::Caller;

/// IAM's action for the REST operation `operation`.
pub fn action(operation: &str) -> String {
    match operation {
        "Invoke" => "lambda:InvokeFunction".to_string(),
        op => format!("lambda:{op}"),
    }
}

/// The function a request acts on, as a plain name (ARNs and qualifiers resolved; a
/// name that does not resolve is checked as given, the operation then refuses it).
fn function(
    api: &LambdaApi,
    req: &ApiRequest,
    operation: &str,
    in_path: Option<&str>,
) -> Option<String> {
    let given = match (operation, in_path) {
        ("ListFunctions", _) => return None,
        ("ListEventSourceMappings", None) => return None,
        ("CreateFunction" | "CreateEventSourceMapping", _) => req
            .json::<serde_json::Value>()
            .ok()?
            .get("FunctionName")?
            .as_str()?
            .to_string(),
        (_, Some(n)) => n.to_string(),
        (_, None) => return None,
    };
    match api.place.resolve(&given) {
        Ok((name, _qualifier)) => Some(name),
        Err(_) => Some(given),
    }
}

/// `Ok` when `caller`'s key may run `operation` on the request's function.
pub fn authorize(
    api: &LambdaApi,
    caller: &Caller,
    req: &ApiRequest,
    operation: &str,
    in_path: Option<&str>,
) -> Result<(), ApiError> {
    if caller.policy.is_none() {
        return Ok(());
    }
    let action = action(operation);
    let function = function(api, req, operation, in_path);
    let arn = function.as_deref().map(|f| api.place.arn(f));
    caller
        .authorize(
            &action,
            function.as_deref(),
            arn.as_deref(),
            &api.place.account,
        )
        .map_err(ApiError::access_denied)
}

#[cfg(test)]
mod tests {
    #[test]
    fn invoke_is_named_as_iam_names_it() {
        assert_eq!(super::action("Invoke"), "lambda:InvokeFunction");
        assert_eq!(super::action("CreateFunction"), "lambda:CreateFunction");
    }
}
