//! The REST API's check of an execution role's temporary credentials, on the fake
//! backend: a request signed with minted credentials (and `X-Amz-Security-Token`)
//! invokes a function the role's policy names; anything else is refused in Lambda's
//! shapes (AccessDenied, ExpiredToken, UnrecognizedClient).

use super::guest::Script;
use super::harness::Harness;
use crate::lambda_api::{answer, sigv4, ApiRequest, LambdaApi};
use crate::roles::keys::now_secs;
use crate::roles::token::Minted;
use crate::roles::{Policy, Role};

/// A request signed with `creds` for the agent's region, as an SDK sends it.
fn signed(method: &str, path: &str, body: &[u8], creds: &Minted, token: &str) -> ApiRequest {
    let now = chrono::Utc::now();
    let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
    let headers = vec![
        ("host".to_string(), "127.0.0.1:9002".to_string()),
        ("x-amz-date".to_string(), amz_date.clone()),
        ("x-amz-security-token".to_string(), token.to_string()),
    ];
    let auth = sigv4::Authorization {
        access_key: creds.access_key_id.clone(),
        date: amz_date[..8].to_string(),
        region: "us-east-1".into(),
        service: "lambda".into(),
        signed_headers: headers.iter().map(|(k, _)| k.clone()).collect(),
        signature: String::new(),
    };
    let req = sigv4::Request {
        method,
        path,
        query: "",
        headers: &headers,
        payload_sha256: sigv4::sha256_hex(body),
    };
    let signature = sigv4::sign(&req, &auth, &amz_date, &creds.secret_access_key);
    let mut headers = headers.clone();
    headers.push((
        "authorization".into(),
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{}, SignedHeaders={}, Signature={signature}",
            creds.access_key_id,
            auth.scope(),
            auth.signed_headers.join(";")
        ),
    ));
    ApiRequest {
        method: method.into(),
        path: path.into(),
        query: String::new(),
        headers,
        body: body.to_vec(),
    }
}

fn error_type(r: &crate::lambda_api::ApiResponse) -> Option<&str> {
    r.headers
        .iter()
        .find(|(k, _)| k == "x-amzn-ErrorType")
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn role_credentials_invoke_what_the_policy_names_and_nothing_else() {
    let h = Harness::open(Script::echo(), &[]);
    h.create("adder", "v1");
    h.create("billing", "v1");
    h.agent
        .create_role(Role {
            name: "caller-role".into(),
            policy: Policy {
                invoke_functions: vec!["add*".into()],
                read_secrets: vec![],
            },
            description: String::new(),
            created: String::new(),
        })
        .unwrap();
    let api = LambdaApi::new(h.agent.clone());
    let creds = h.agent.mint_credentials("caller-role", "caller").unwrap();
    let tok = creds.session_token.clone();
    let invoke = |f: &str| format!("/2015-03-31/functions/{f}/invocations");

    let r = answer(
        &api,
        signed("POST", &invoke("adder"), b"{\"a\":1}", &creds, &tok),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let out: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(out["event"], serde_json::json!({"a": 1}), "{out}");

    let r = answer(
        &api,
        signed("POST", &invoke("billing"), b"{}", &creds, &tok),
    )
    .await;
    assert_eq!(
        (r.status, error_type(&r)),
        (403, Some("AccessDeniedException"))
    );
    let body = String::from_utf8_lossy(&r.body);
    assert!(
        body.contains("assumed-role/caller-role/caller") && body.contains("function:billing"),
        "{body}"
    );

    // Management operations are never a role's.
    let r = answer(
        &api,
        signed("GET", "/2015-03-31/functions/", b"", &creds, &tok),
    )
    .await;
    assert_eq!(
        (r.status, error_type(&r)),
        (403, Some("AccessDeniedException"))
    );

    // A token whose claims were rewritten (another role) fails its MAC.
    let forged = tok.replacen("FLT1.", "FLT1.x", 1);
    let r = answer(
        &api,
        signed("POST", &invoke("adder"), b"{}", &creds, &forged),
    )
    .await;
    assert_eq!(
        (r.status, error_type(&r)),
        (403, Some("UnrecognizedClientException"))
    );

    // Expired credentials.
    let old = h
        .agent
        .role_keys()
        .signing
        .mint("caller-role", "caller", now_secs() - 100, 10)
        .unwrap();
    let r = answer(
        &api,
        signed("POST", &invoke("adder"), b"{}", &old, &old.session_token),
    )
    .await;
    assert_eq!(
        (r.status, error_type(&r)),
        (403, Some("ExpiredTokenException"))
    );

    // A policy change applies to credentials already handed out; a deleted role's stop.
    h.agent
        .update_role(Role {
            name: "caller-role".into(),
            policy: Policy::default(),
            description: String::new(),
            created: String::new(),
        })
        .unwrap();
    let r = answer(&api, signed("POST", &invoke("adder"), b"{}", &creds, &tok)).await;
    assert_eq!(
        (r.status, error_type(&r)),
        (403, Some("AccessDeniedException"))
    );
    h.agent.delete_role("caller-role").unwrap();
    let r = answer(&api, signed("POST", &invoke("adder"), b"{}", &creds, &tok)).await;
    assert_eq!(
        (r.status, error_type(&r)),
        (403, Some("UnrecognizedClientException"))
    );
}
