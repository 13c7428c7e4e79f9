//! The requests of AWS's published SigV4 test suite (aws-sig-v4-test-suite: key
//! AKIDEXAMPLE, region us-east-1, service "service", 2015-08-30 12:36:00 UTC) with
//! their published signatures, and the verifier's refusals.

use super::*;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const DATE: &str = "20150830T123600Z";
const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn headers(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut h = vec![
        ("host".to_string(), "example.amazonaws.com".to_string()),
        ("x-amz-date".to_string(), DATE.to_string()),
    ];
    h.extend(
        extra
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string())),
    );
    h
}

fn auth(signed: &str, signature: &str) -> Authorization {
    parse_authorization(&format!(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders={signed}, Signature={signature}"
    ))
    .unwrap()
}

/// Signs a suite request and checks the published signature verifies.
fn check(
    method: &str,
    path: &str,
    query: &str,
    extra: &[(&str, &str)],
    body: &[u8],
    signed: &str,
    published: &str,
) {
    let h = headers(extra);
    let req = Request {
        method,
        path,
        query,
        headers: &h,
        payload_sha256: sha256_hex(body),
    };
    let a = auth(signed, published);
    assert_eq!(
        sign(&req, &a, DATE, SECRET),
        published,
        "{method} {path}?{query}"
    );
    verify_signature(&req, &a, DATE, SECRET).unwrap();
    assert_eq!(
        verify_signature(&req, &a, DATE, "wrong-secret"),
        Err(SigError::Mismatch)
    );
}

#[test]
fn get_vanilla() {
    check(
        "GET",
        "/",
        "",
        &[],
        b"",
        "host;x-amz-date",
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    );
}

#[test]
fn post_vanilla() {
    check(
        "POST",
        "/",
        "",
        &[],
        b"",
        "host;x-amz-date",
        "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
    );
}

#[test]
fn get_vanilla_query_order_key_case() {
    check(
        "GET",
        "/",
        "Param2=value2&Param1=value1",
        &[],
        b"",
        "host;x-amz-date",
        "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
    );
}

#[test]
fn get_vanilla_empty_query_key() {
    check(
        "GET",
        "/",
        "Param1=value1",
        &[],
        b"",
        "host;x-amz-date",
        "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb",
    );
}

#[test]
fn post_x_www_form_urlencoded() {
    check(
        "POST",
        "/",
        "",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"Param1=value1",
        "content-type;host;x-amz-date",
        "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
    );
}

#[test]
fn get_header_key_duplicate() {
    check(
        "GET",
        "/",
        "",
        &[
            ("My-Header1", "value2"),
            ("My-Header1", "value2"),
            ("My-Header1", "value1"),
        ],
        b"",
        "host;my-header1;x-amz-date",
        "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
    );
}

#[test]
fn get_utf8_and_space_paths_are_encoded() {
    check(
        "GET",
        "/ሴ",
        "",
        &[],
        b"",
        "host;x-amz-date",
        "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
    );
    check(
        "GET",
        "/example space/",
        "",
        &[],
        b"",
        "host;x-amz-date",
        "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741",
    );
}

#[test]
fn normalize_path_relative_relative_signs_as_root() {
    check(
        "GET",
        "/example1/example2/../..",
        "",
        &[],
        b"",
        "host;x-amz-date",
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    );
}

#[test]
fn canonical_request_of_the_form_example_is_the_published_one() {
    let h = headers(&[("Content-Type", "application/x-www-form-urlencoded")]);
    let req = Request {
        method: "POST",
        path: "/",
        query: "",
        headers: &h,
        payload_sha256: sha256_hex(b"Param1=value1"),
    };
    let signed = ["content-type", "host", "x-amz-date"].map(String::from);
    assert_eq!(
        canonical_request(&req, &signed),
        "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\n9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"
    );
    assert_eq!(sha256_hex(b""), EMPTY);
}

#[test]
fn lambda_paths_with_arns_are_encoded_twice() {
    // botocore sends `:` as %3A in the path and signs it encoded once more.
    assert_eq!(
        canonical_uri("/2015-03-31/functions/arn%3Aaws%3Alambda/invocations"),
        "/2015-03-31/functions/arn%253Aaws%253Alambda/invocations"
    );
}

#[test]
fn authorization_header_parsing_refuses_what_is_incomplete() {
    assert!(matches!(
        parse_authorization("AWS4-HMAC-SHA256 SignedHeaders=host, Signature=00"),
        Err(SigError::Incomplete(_))
    ));
    assert!(matches!(
        parse_authorization("Basic dXNlcjpwYXNz"),
        Err(SigError::Incomplete(_))
    ));
    assert!(matches!(
        parse_authorization(
            "AWS4-HMAC-SHA256 Credential=A/20150830/us-east-1/service/aws5_request, SignedHeaders=host, Signature=00"
        ),
        Err(SigError::Scope(_))
    ));
    let a = auth("host;x-amz-date", "AB");
    assert_eq!(a.access_key, "AKIDEXAMPLE");
    assert_eq!(a.scope(), "20150830/us-east-1/service/aws4_request");
    assert_eq!(a.signature, "ab");
}

#[test]
fn dates_parse_and_skew_is_limited_to_five_minutes() {
    let t = parse_amz_date(DATE).unwrap();
    assert_eq!(t, 1_440_938_160);
    assert_eq!(parse_amz_date("2015-08-30T12:36:00Z"), None);
    let h = headers(&[]);
    let req = Request {
        method: "GET",
        path: "/",
        query: "",
        headers: &h,
        payload_sha256: EMPTY.into(),
    };
    let a = auth("host;x-amz-date", "00");
    let at = |now| Expect {
        region: "us-east-1",
        service: "service",
        now,
    };
    assert_eq!(check_request(&req, &a, &at(t + 299)).unwrap(), DATE);
    let e = check_request(&req, &a, &at(t + 301)).unwrap_err();
    assert!(
        e.to_string().starts_with(
            "Signature expired: 20150830T123600Z is now earlier than 20150830T123601Z"
        ),
        "{e}"
    );
    assert!(matches!(
        check_request(&req, &a, &at(t - 400)),
        Err(SigError::Expired { .. })
    ));
    let wrong_region = Expect {
        region: "eu-west-1",
        ..at(t)
    };
    assert!(matches!(
        check_request(&req, &a, &wrong_region),
        Err(SigError::Scope(_))
    ));
    let unsigned_date = auth("host", "00");
    assert!(matches!(
        check_request(&req, &unsigned_date, &at(t)),
        Err(SigError::Incomplete(_))
    ));
}
