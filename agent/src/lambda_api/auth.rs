//! SigV4 on one REST request: which key signed it, for which scope and when, and
//! whether the signature matches. Unsigned requests get MissingAuthenticationToken.

use super::errors::ApiError;
use super::request::ApiRequest;
use super::sigv4::{self, Expect, SigError};
use super::LambdaApi;

/// The service name requests are signed for.
pub const SERVICE: &str = "lambda";

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Returns the access key id that signed `req`, or the error to answer with.
pub fn authenticate(api: &LambdaApi, req: &ApiRequest) -> Result<String, ApiError> {
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
    let actual = sigv4::sha256_hex(&req.body);
    let payload_sha256 = match req.header("x-amz-content-sha256") {
        Some(h) if h != actual => return Err(SigError::Mismatch.into()),
        _ => actual,
    };
    let signed = sigv4::Request {
        method: &req.method,
        path: &req.path,
        query: &req.query,
        headers: &req.headers,
        payload_sha256,
    };
    let expect = Expect {
        region: &api.place.region,
        service: SERVICE,
        now: now_secs(),
    };
    let amz_date = sigv4::check_request(&signed, &auth, &expect)?;
    if req.header("x-amz-security-token").is_some() {
        // Flint issues no temporary credentials.
        return Err(SigError::UnknownKey.into());
    }
    let secret = api
        .keys
        .secret(&auth.access_key)
        .map_err(|e| ApiError::service(e.to_string()))?
        .ok_or(SigError::UnknownKey)?;
    sigv4::verify_signature(&signed, &auth, &amz_date, &secret)?;
    Ok(auth.access_key)
}
