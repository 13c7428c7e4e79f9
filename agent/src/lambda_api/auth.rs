//! SigV4 on one REST request: which key signed it, for which scope and when, and
//! whether the signature matches. Unsigned requests get MissingAuthenticationToken.

use super::errors::ApiError;
use super::request::ApiRequest;
use super::sigv4::{self, Expect, SigError};
use super::LambdaApi;
use crate::access_policy::Caller;
use crate::roles::token::Claims;

/// The service name requests are signed for.
pub const SERVICE: &str = "lambda";

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A request whose head passed every check (scope, date, known key): what is needed
/// to verify its signature once the body is in.
pub struct Credential {
    auth: sigv4::Authorization,
    amz_date: String,
    secret: String,
    /// Set for an execution role's temporary credentials.
    role: Option<Claims>,
    /// The access key's id and policy (not for temporary credentials).
    caller: Option<Caller>,
}

impl Credential {
    /// The access key id the request claims.
    pub fn access_key(&self) -> &str {
        &self.auth.access_key
    }

    /// The role session's claims, for temporary credentials.
    pub fn role(&self) -> Option<&Claims> {
        self.role.as_ref()
    }

    /// The access key's id and policy, for an access key's signature.
    pub fn caller(&self) -> Option<&Caller> {
        self.caller.as_ref()
    }
}

fn signed<'a>(req: &'a ApiRequest, payload_sha256: String) -> sigv4::Request<'a> {
    sigv4::Request {
        method: &req.method,
        path: &req.path,
        query: &req.query,
        headers: &req.headers,
        payload_sha256,
    }
}

/// Checks a request's head before its body is read, so unsigned, mis-scoped, stale or
/// unknown-key requests are refused without buffering their body.
pub fn check_head(api: &LambdaApi, req: &ApiRequest) -> Result<Credential, ApiError> {
    let Some(header) = req.header("authorization") else {
        if req.param("X-Amz-Signature").is_some() {
            return Err(SigError::Incomplete(
                "presigned URLs are not accepted: sign with the Authorization header".into(),
            )
            .into());
        }
        return Err(SigError::Missing.into());
    };
    let auth = sigv4::parse_authorization(header)?;
    let expect = Expect {
        region: &api.place.region,
        service: SERVICE,
        now: now_secs(),
    };
    let amz_date = sigv4::check_request(&signed(req, String::new()), &auth, &expect)?;
    if let Some(token) = req.header("x-amz-security-token") {
        // An execution role's temporary credentials (docs/ROLES.md).
        let (claims, secret) = super::role_auth::temporary(api, token, &auth.access_key)?;
        return Ok(Credential {
            auth,
            amz_date,
            secret,
            role: Some(claims),
            caller: None,
        });
    }
    let key = api
        .keys
        .get(&auth.access_key)
        .map_err(|e| ApiError::service(e.to_string()))?
        .ok_or(SigError::UnknownKey)?;
    let caller = key.caller().map_err(|e| ApiError::service(e.to_string()))?;
    Ok(Credential {
        auth,
        amz_date,
        secret: key.secret,
        role: None,
        caller: Some(caller),
    })
}

/// Verifies the signature over the whole request, body included.
pub fn verify(req: &ApiRequest, c: &Credential) -> Result<(), ApiError> {
    let actual = sigv4::sha256_hex(&req.body);
    if req
        .header("x-amz-content-sha256")
        .is_some_and(|h| h != actual)
    {
        return Err(SigError::Mismatch.into());
    }
    sigv4::verify_signature(&signed(req, actual), &c.auth, &c.amz_date, &c.secret)?;
    Ok(())
}
