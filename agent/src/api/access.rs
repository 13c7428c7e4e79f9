//! A key's policy on a gRPC call: the [`Caller`] the TCP gate put into the call's
//! extensions is checked against the method's action and function. Calls on the Unix
//! socket carry no caller and may do everything.

use crate::access_policy::Caller;
use crate::core::Agent;
use tonic::{Request, Status};

/// `Ok` when the call's key may perform `action` on `function`; else
/// PERMISSION_DENIED with AccessDeniedException's message.
pub fn check<T>(
    agent: &Agent,
    req: &Request<T>,
    action: &str,
    function: &str,
) -> Result<(), Status> {
    let Some(caller) = req.extensions().get::<Caller>() else {
        return Ok(());
    };
    caller
        .authorize(
            action,
            Some(function),
            Some(&agent.arn(function)),
            &agent.config().account_id,
        )
        .map_err(Status::permission_denied)
}

/// As [`check`], for an action that names no function (ListFunctions).
pub fn check_unscoped<T>(agent: &Agent, req: &Request<T>, action: &str) -> Result<(), Status> {
    let Some(caller) = req.extensions().get::<Caller>() else {
        return Ok(());
    };
    caller
        .authorize(action, None, None, &agent.config().account_id)
        .map_err(Status::permission_denied)
}
