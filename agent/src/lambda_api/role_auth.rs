//! Temporary credentials on the REST API: a request signed with an execution role's
//! credentials (an `ASIA…` key and `X-Amz-Security-Token`) is checked against the
//! token flintd minted (roles/token.rs), then against the role's policy, read per
//! request: only Invoke of a function the policy names is allowed; everything else is
//! AccessDeniedException, as IAM words it.

use super::errors::ApiError;
use super::request::ApiRequest;
use super::sigv4::percent_decode;
use super::LambdaApi;
use crate::roles::token::{Claims, TokenError};
use crate::roles::{role_arn, RoleError};

/// Checks a session token for `access_key`; returns its claims and the secret the
/// request must be signed with.
pub fn temporary(
    api: &LambdaApi,
    token: &str,
    access_key: &str,
) -> Result<(Claims, String), ApiError> {
    let now = crate::roles::keys::now_secs();
    let (claims, secret) = api
        .agent
        .role_keys()
        .signing
        .verify(token, access_key, now)
        .map_err(|e| match e {
            TokenError::Expired => ApiError::expired_token(e.to_string()),
            e => ApiError::unrecognized_client(e.to_string()),
        })?;
    Ok((claims, secret))
}

/// The caller as IAM names an assumed role's session.
fn principal(api: &LambdaApi, c: &Claims) -> String {
    format!(
        "arn:aws:sts::{}:assumed-role/{}/{}",
        api.place.account, c.role, c.function
    )
}

/// Whether the role of `c` allows the request `req`.
pub fn authorize(api: &LambdaApi, c: &Claims, req: &ApiRequest) -> Result<(), ApiError> {
    let role = match api.agent.get_role(&c.role) {
        Ok(r) => r,
        Err(RoleError::NotFound(_)) => {
            return Err(ApiError::unrecognized_client(format!(
                "The security token included in the request is invalid: role {} no longer exists.",
                c.role
            )))
        }
        Err(e) => return Err(ApiError::service(e.to_string())),
    };
    let segs: Vec<String> = req
        .path
        .trim_start_matches('/')
        .split('/')
        .map(|s| String::from_utf8_lossy(&percent_decode(s)).into_owned())
        .collect();
    let target = match (req.method.as_str(), segs.as_slice()) {
        ("POST", [v, f, name, i])
            if v == "2015-03-31" && f == "functions" && i == "invocations" =>
        {
            Some(name.clone())
        }
        _ => None,
    };
    let who = principal(api, c);
    match target {
        Some(given) => {
            let name = api
                .place
                .resolve_latest(&given, req.param("Qualifier").as_deref())?;
            if role.policy.may_invoke(&name) {
                tracing::debug!(role = %c.role, function = %name, "role may invoke");
                return Ok(());
            }
            Err(ApiError::access_denied(format!(
                "User: {who} is not authorized to perform: lambda:InvokeFunction on resource: {} \
                 because no identity-based policy allows the lambda:InvokeFunction action \
                 (role {} allows invoking: {})",
                api.place.arn(&name),
                role_arn(&api.place.account, &c.role),
                if role.policy.invoke_functions.is_empty() {
                    "nothing".to_string()
                } else {
                    role.policy.invoke_functions.join(", ")
                }
            )))
        }
        None => Err(ApiError::access_denied(format!(
            "User: {who} is not authorized to perform {} {}: execution roles may only invoke \
             functions (lambda:InvokeFunction); manage functions with an access key (flint keys create)",
            req.method, req.path
        ))),
    }
}
