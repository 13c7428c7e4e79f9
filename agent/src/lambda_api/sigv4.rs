//! AWS Signature Version 4, the verifying side: parse the `Authorization` header,
//! rebuild the canonical request from what arrived, derive the signing key from the
//! secret and compare signatures in constant time. Checked against the requests of
//! AWS's published SigV4 test suite (tests at the bottom).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The only algorithm accepted.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How far a request's `X-Amz-Date` may be from the server's clock, as in AWS.
pub const MAX_SKEW_S: i64 = 5 * 60;

/// Why a request's signature was not accepted. Each maps to AWS's error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    /// No Authorization header at all
    #[error("Missing Authentication Token")]
    Missing,
    /// The header is there but not a complete SigV4 header
    #[error("{0}")]
    Incomplete(String),
    /// The access key id is not known
    #[error("The security token included in the request is invalid.")]
    UnknownKey,
    /// The signature differs from the one computed
    #[error("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")]
    Mismatch,
    /// The request was signed too long ago (or in the future)
    #[error("Signature expired: {signed} is now earlier than {earliest} ({now} - 5 min.)")]
    Expired {
        signed: String,
        earliest: String,
        now: String,
    },
    /// Signed for another region, service or day
    #[error("Credential should be scoped to {0}")]
    Scope(String),
}

/// A parsed `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub access_key: String,
    /// YYYYMMDD
    pub date: String,
    pub region: String,
    pub service: String,
    /// Lower-case header names, in the order given.
    pub signed_headers: Vec<String>,
    /// Lower-case hex.
    pub signature: String,
}

impl Authorization {
    /// The credential scope: `date/region/service/aws4_request`.
    pub fn scope(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        )
    }
}

/// Parses the Authorization header.
pub fn parse_authorization(h: &str) -> Result<Authorization, SigError> {
    let incomplete = |what: &str| {
        SigError::Incomplete(format!(
            "Authorization header requires '{what}' parameter. Authorization={h}"
        ))
    };
    let rest = h.strip_prefix(ALGORITHM).ok_or_else(|| {
        SigError::Incomplete(format!(
            "Authorization header must start with {ALGORITHM} (AWS Signature Version 4)"
        ))
    })?;
    let (mut cred, mut signed, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            cred = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            sig = Some(v);
        }
    }
    let cred = cred.ok_or_else(|| incomplete("Credential"))?;
    let signed = signed.ok_or_else(|| incomplete("SignedHeaders"))?;
    let sig = sig.ok_or_else(|| incomplete("Signature"))?;
    let fields: Vec<&str> = cred.split('/').collect();
    let [access_key, date, region, service, terminator] = fields[..] else {
        return Err(SigError::Incomplete(format!(
            "Credential must have the form ACCESS_KEY/YYYYMMDD/REGION/SERVICE/aws4_request, got {cred}"
        )));
    };
    if terminator != "aws4_request" {
        return Err(SigError::Scope(format!(
            "aws4_request as its terminator, not {terminator}"
        )));
    }
    Ok(Authorization {
        access_key: access_key.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        signed_headers: signed.split(';').map(|s| s.to_ascii_lowercase()).collect(),
        signature: sig.to_ascii_lowercase(),
    })
}

/// What the verifier needs of a request, as it arrived on the wire.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path as sent (still percent-encoded).
    pub path: &'a str,
    /// The query string as sent, without `?`.
    pub query: &'a str,
    /// Every header: (lower-case name, value); repeated names appear repeatedly.
    pub headers: &'a [(String, String)],
    /// Hex SHA-256 of the body.
    pub payload_sha256: String,
}

fn uri_encode(s: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes (and `+` is kept as is, as AWS does).
pub fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hexval = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hexval(b[i + 1]), hexval(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// The canonical URI: dot segments and empty segments removed, then every byte but
/// the unreserved ones and `/` encoded. Services other than S3 sign the path as sent,
/// encoded once more.
pub fn canonical_uri(path: &str) -> String {
    let mut segs: Vec<&str> = Vec::new();
    for s in path.split('/') {
        match s {
            "" | "." => {}
            ".." => {
                segs.pop();
            }
            s => segs.push(s),
        }
    }
    let mut p = format!("/{}", segs.join("/"));
    if path.ends_with('/') && p != "/" {
        p.push('/');
    }
    uri_encode(p.as_bytes(), true)
}

/// The canonical query: each name and value decoded then strictly encoded, sorted.
pub fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(k), false),
                uri_encode(&percent_decode(v), false),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn trim_value(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The canonical request of `req` over `signed` header names.
pub fn canonical_request(req: &Request<'_>, signed: &[String]) -> String {
    let mut names: Vec<&String> = signed.iter().collect();
    names.sort();
    names.dedup();
    let mut headers = String::new();
    for name in &names {
        let values: Vec<String> = req
            .headers
            .iter()
            .filter(|(n, _)| n == *name)
            .map(|(_, v)| trim_value(v))
            .collect();
        headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let signed_list = names
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(";");
    format!(
        "{}\n{}\n{}\n{headers}\n{signed_list}\n{}",
        req.method,
        canonical_uri(req.path),
        canonical_query(req.query),
        req.payload_sha256
    )
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data);
    m.finalize().into_bytes().into()
}

/// The signing key: HMAC chain over date, region, service and `aws4_request`.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, service.as_bytes());
    hmac(&k, b"aws4_request")
}

/// Hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The string to sign.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    )
}

/// The hex signature of `req` with `secret`.
pub fn sign(req: &Request<'_>, auth: &Authorization, amz_date: &str, secret: &str) -> String {
    let canonical = canonical_request(req, &auth.signed_headers);
    let sts = string_to_sign(amz_date, &auth.scope(), &canonical);
    let key = signing_key(secret, &auth.date, &auth.region, &auth.service);
    hex::encode(hmac(&key, sts.as_bytes()))
}

/// Seconds since the epoch of `YYYYMMDDTHHMMSSZ`.
pub fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let days = crate::timefmt::days_from_civil(y, m, d);
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

fn amz_date_of(secs: i64) -> String {
    let s = crate::timefmt::rfc3339_secs(secs.max(0) as u64);
    s.replace(['-', ':'], "")
}

/// What the server expects of a request's scope.
#[derive(Debug, Clone)]
pub struct Expect<'a> {
    pub region: &'a str,
    pub service: &'a str,
    /// The server's clock, seconds since the epoch.
    pub now: i64,
}

/// Checks everything but the signature itself: the date header, clock skew, scope
/// and that `host` and `x-amz-date` are signed. Returns the request's `X-Amz-Date`.
pub fn check_request(
    req: &Request<'_>,
    auth: &Authorization,
    expect: &Expect<'_>,
) -> Result<String, SigError> {
    for must in ["host", "x-amz-date"] {
        if !auth.signed_headers.iter().any(|h| h == must) {
            return Err(SigError::Incomplete(format!(
                "'{must}' must be a signed header"
            )));
        }
    }
    let amz_date = req
        .headers
        .iter()
        .find(|(n, _)| n == "x-amz-date")
        .map(|(_, v)| v.trim().to_string())
        .ok_or_else(|| SigError::Incomplete("the X-Amz-Date header is missing".into()))?;
    let signed_at = parse_amz_date(&amz_date).ok_or_else(|| {
        SigError::Incomplete(format!(
            "X-Amz-Date {amz_date:?} is not of the form YYYYMMDDTHHMMSSZ"
        ))
    })?;
    if (expect.now - signed_at).abs() > MAX_SKEW_S {
        return Err(SigError::Expired {
            signed: amz_date,
            earliest: amz_date_of(expect.now - MAX_SKEW_S),
            now: amz_date_of(expect.now),
        });
    }
    if !amz_date.starts_with(&auth.date) {
        return Err(SigError::Scope(format!(
            "the date of X-Amz-Date ({}), not {}",
            &amz_date[..8],
            auth.date
        )));
    }
    if auth.region != expect.region {
        return Err(SigError::Scope(format!(
            "a valid region, not '{}'. This endpoint serves region '{}'",
            auth.region, expect.region
        )));
    }
    if auth.service != expect.service {
        return Err(SigError::Scope(format!(
            "the correct service, '{}', not '{}'",
            expect.service, auth.service
        )));
    }
    Ok(amz_date)
}

/// Compares the request's signature with the one `secret` gives.
pub fn verify_signature(
    req: &Request<'_>,
    auth: &Authorization,
    amz_date: &str,
    secret: &str,
) -> Result<(), SigError> {
    let want = sign(req, auth, amz_date, secret);
    if constant_time_eq(want.as_bytes(), auth.signature.as_bytes()) {
        Ok(())
    } else {
        Err(SigError::Mismatch)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
#[path = "sigv4_tests.rs"]
mod tests;
