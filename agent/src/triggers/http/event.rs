//! An HTTP request as Lambda's function URL event, payload format 2.0: `version`
//! "2.0", `routeKey` "$default", `rawPath`, `rawQueryString`, `cookies`, `headers`
//! (lower-case names, repeated ones joined by commas, `cookie` moved to `cookies`),
//! `queryStringParameters` (decoded, repeated keys joined by commas), the
//! `requestContext`, `body` and `isBase64Encoded` (true for a body whose
//! content type is not text, or that is not UTF-8).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

/// Lambda's `requestContext.accountId` for a URL whose auth type is NONE.
const ANONYMOUS: &str = "anonymous";

/// What the event is made of: the request as received, after routing.
#[derive(Debug, Clone)]
pub struct HttpRequest<'a> {
    /// The trigger (`requestContext.apiId`).
    pub trigger: &'a str,
    pub method: &'a str,
    /// The path after the trigger's prefix (at least "/"), as received (not decoded).
    pub raw_path: &'a str,
    /// The query string without '?', as received.
    pub raw_query: &'a str,
    /// Header names and values in arrival order (names in any case).
    pub headers: &'a [(String, String)],
    /// "HTTP/1.1" or "HTTP/2.0".
    pub protocol: &'a str,
    pub source_ip: String,
    pub request_id: &'a str,
    pub time: DateTime<Utc>,
    pub body: &'a [u8],
}

/// The 2.0 event as JSON bytes.
pub fn function_url_event(r: &HttpRequest<'_>) -> Vec<u8> {
    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for (k, v) in r.headers {
        let k = k.to_ascii_lowercase();
        if k == "cookie" {
            cookies.extend(
                v.split(';')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(|c| Value::String(c.to_string())),
            );
            continue;
        }
        match headers.get_mut(&k) {
            Some(Value::String(prev)) => {
                prev.push(',');
                prev.push_str(v);
            }
            _ => {
                headers.insert(k, Value::String(v.clone()));
            }
        }
    }
    let header = |name: &str| headers.get(name).and_then(Value::as_str).unwrap_or("");
    let domain = header("host").to_string();
    let domain_prefix = domain.split(['.', ':']).next().unwrap_or("").to_string();
    let user_agent = header("user-agent").to_string();
    let content_type = header("content-type").to_string();

    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": r.raw_path,
        "rawQueryString": r.raw_query,
    });
    let m = event.as_object_mut().expect("an object");
    if !cookies.is_empty() {
        m.insert("cookies".into(), Value::Array(cookies));
    }
    m.insert("headers".into(), Value::Object(headers));
    if !r.raw_query.is_empty() {
        m.insert("queryStringParameters".into(), query_params(r.raw_query));
    }
    m.insert(
        "requestContext".into(),
        json!({
            "accountId": ANONYMOUS,
            "apiId": r.trigger,
            "domainName": domain,
            "domainPrefix": domain_prefix,
            "http": {
                "method": r.method,
                "path": r.raw_path,
                "protocol": r.protocol,
                "sourceIp": r.source_ip,
                "userAgent": user_agent,
            },
            "requestId": r.request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": r.time.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": r.time.timestamp_millis(),
        }),
    );
    let base64 = !r.body.is_empty() && !is_text(&content_type, r.body);
    if !r.body.is_empty() {
        let body = if base64 {
            B64.encode(r.body)
        } else {
            String::from_utf8_lossy(r.body).into_owned()
        };
        m.insert("body".into(), Value::String(body));
    }
    m.insert("isBase64Encoded".into(), Value::Bool(base64));
    serde_json::to_vec(&event).unwrap_or_default()
}

/// Whether a body of `content_type` goes into the event as text: `text/*`, JSON,
/// XML, JavaScript, YAML and form data (and no content type at all), when the
/// bytes are UTF-8. Everything else is base64.
pub fn is_text(content_type: &str, body: &[u8]) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let textual = essence.is_empty()
        || essence.starts_with("text/")
        || essence.ends_with("+json")
        || essence.ends_with("+xml")
        || matches!(
            essence.as_str(),
            "application/json"
                | "application/xml"
                | "application/javascript"
                | "application/ecmascript"
                | "application/x-www-form-urlencoded"
                | "application/yaml"
                | "application/x-yaml"
                | "application/graphql"
        );
    textual && std::str::from_utf8(body).is_ok()
}

/// `queryStringParameters`: each key's decoded values, joined by commas.
fn query_params(raw: &str) -> Value {
    let mut m = Map::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (decode_component(k), decode_component(v));
        match m.get_mut(&k) {
            Some(Value::String(prev)) => {
                prev.push(',');
                prev.push_str(&v);
            }
            _ => {
                m.insert(k, Value::String(v));
            }
        }
    }
    Value::Object(m)
}

/// Percent-decoding of a query component (`+` is a space); invalid escapes stay as
/// they are, invalid UTF-8 becomes U+FFFD.
fn decode_component(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-06T10:05:03.250Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn headers(h: &[(&str, &str)]) -> Vec<(String, String)> {
        h.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_get_with_query_and_cookies_has_lambdas_shape() {
        let h = headers(&[
            ("Host", "site.example.com:8080"),
            ("User-Agent", "curl/7.88.1"),
            ("Accept", "text/html"),
            ("Accept", "application/json"),
            ("Cookie", "a=1; b=2"),
            ("X-Forwarded-For", "10.0.0.1"),
        ]);
        let r = HttpRequest {
            trigger: "site",
            method: "GET",
            raw_path: "/a/b%20c",
            raw_query: "x=1&y=hello+world&x=2&z=%C3%A9&flag",
            headers: &h,
            protocol: "HTTP/1.1",
            source_ip: "127.0.0.1".into(),
            request_id: "rid",
            time: at(),
            body: b"",
        };
        let v: Value = serde_json::from_slice(&function_url_event(&r)).unwrap();
        assert_eq!(
            v,
            json!({
                "version": "2.0",
                "routeKey": "$default",
                "rawPath": "/a/b%20c",
                "rawQueryString": "x=1&y=hello+world&x=2&z=%C3%A9&flag",
                "cookies": ["a=1", "b=2"],
                "headers": {
                    "host": "site.example.com:8080",
                    "user-agent": "curl/7.88.1",
                    "accept": "text/html,application/json",
                    "x-forwarded-for": "10.0.0.1"
                },
                "queryStringParameters": {"x": "1,2", "y": "hello world", "z": "é", "flag": ""},
                "requestContext": {
                    "accountId": "anonymous",
                    "apiId": "site",
                    "domainName": "site.example.com:8080",
                    "domainPrefix": "site",
                    "http": {
                        "method": "GET",
                        "path": "/a/b%20c",
                        "protocol": "HTTP/1.1",
                        "sourceIp": "127.0.0.1",
                        "userAgent": "curl/7.88.1"
                    },
                    "requestId": "rid",
                    "routeKey": "$default",
                    "stage": "$default",
                    "time": "06/Dec/2026:10:05:03 +0000",
                    "timeEpoch": 1796551503250i64
                },
                "isBase64Encoded": false
            })
        );
    }

    #[test]
    fn binary_bodies_are_base64_and_text_bodies_are_not() {
        let h = headers(&[("content-type", "application/octet-stream")]);
        let body = [0u8, 159, 146, 150, 255];
        let r = HttpRequest {
            trigger: "t",
            method: "POST",
            raw_path: "/",
            raw_query: "",
            headers: &h,
            protocol: "HTTP/2.0",
            source_ip: "::1".into(),
            request_id: "r",
            time: at(),
            body: &body,
        };
        let v: Value = serde_json::from_slice(&function_url_event(&r)).unwrap();
        assert_eq!(v["isBase64Encoded"], true);
        assert_eq!(B64.decode(v["body"].as_str().unwrap()).unwrap(), body);
        assert!(v.get("queryStringParameters").is_none());
        assert!(v.get("cookies").is_none());

        let h = headers(&[("content-type", "application/json; charset=utf-8")]);
        let r = HttpRequest {
            headers: &h,
            body: br#"{"a":1}"#,
            ..r
        };
        let v: Value = serde_json::from_slice(&function_url_event(&r)).unwrap();
        assert_eq!(v["isBase64Encoded"], false);
        assert_eq!(v["body"], r#"{"a":1}"#);
    }

    #[test]
    fn text_types_need_utf8() {
        assert!(is_text("text/plain", b"hi"));
        assert!(is_text("application/vnd.api+json", b"{}"));
        assert!(is_text("", b"plain"));
        assert!(!is_text("text/plain", &[0xff, 0xfe]));
        assert!(!is_text("image/png", b"PNG"));
        assert!(!is_text("application/octet-stream", b"abc"));
    }

    #[test]
    fn bad_escapes_stay_as_they_are() {
        assert_eq!(decode_component("100%"), "100%");
        assert_eq!(decode_component("%zz%41"), "%zzA");
        assert_eq!(decode_component("a%2"), "a%2");
    }
}
