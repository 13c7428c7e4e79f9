//! Bearer-token authentication of the gRPC API on TCP (`flintd --listen`). A token is
//! `KEYID:SECRET` of an access key from `flint keys create`, the same keys (and the
//! same file, `<data>/access-keys.json`) as the REST API's; revoking a key refuses its
//! token from the next call on. The key file is read on every call, so keys created or
//! revoked while flintd runs apply at once. The Unix socket needs no token: who may
//! connect to it is decided by its file mode and group.
//!
//! A key's policy (access_policy.rs) goes into the call's extensions as a [`Caller`];
//! handlers of function-scoped methods check it (api/access.rs), and a gate made
//! [`for_service`](TokenGate::for_service) checks a whole service's action.

use crate::access_policy::Caller;
use crate::lambda_api::keys::KeyStore;
use tonic::{Request, Status};

/// Why a call was refused (logged; the client gets one message for all of them, so
/// it cannot probe which key ids exist).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No `authorization` metadata
    #[error("no authorization metadata")]
    Missing,
    /// Not `Bearer KEYID:SECRET`
    #[error("authorization is not `Bearer KEYID:SECRET`")]
    Malformed,
    /// No such key id (never created, or revoked)
    #[error("unknown or revoked access key {0}")]
    UnknownKey(String),
    /// The secret does not match
    #[error("wrong secret for access key {0}")]
    WrongSecret(String),
    /// The key file could not be read
    #[error("access keys unreadable: {0}")]
    Store(String),
}

/// What an unauthenticated caller is told.
pub const HOW_TO_GET_A_KEY: &str = "flintd's TCP listener needs a token: send metadata \
`authorization: Bearer KEYID:SECRET` (flint: --token or FLINT_TOKEN) with a key made on the \
flintd host by `flint keys create --data-dir DATA_DIR`; or use the Unix socket";

/// The interceptor of the TCP listener's services; `None` keys = no check (the Unix
/// socket).
#[derive(Debug, Clone)]
pub struct TokenGate {
    keys: Option<KeyStore>,
    /// The action a key's policy must allow for every call of this service (services
    /// that act on no single function); `None`: checked per method, or not at all.
    service_action: Option<&'static str>,
    /// The account id, for denial messages.
    account: String,
}

impl TokenGate {
    /// Checks tokens against `keys`.
    pub fn required(keys: KeyStore, account: &str) -> Self {
        Self {
            keys: Some(keys),
            service_action: None,
            account: account.to_string(),
        }
    }

    /// Lets every call through.
    pub fn open() -> Self {
        Self {
            keys: None,
            service_action: None,
            account: String::new(),
        }
    }

    /// This gate, also requiring `action` of a key's policy for every call.
    pub fn for_service(&self, action: &'static str) -> Self {
        Self {
            service_action: Some(action),
            ..self.clone()
        }
    }

    /// Checks one `authorization` value against the store.
    pub fn check(keys: &KeyStore, header: Option<&str>) -> Result<Caller, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or(AuthError::Malformed)?
            .trim();
        let (id, secret) = token.split_once(':').ok_or(AuthError::Malformed)?;
        if id.is_empty() || secret.is_empty() {
            return Err(AuthError::Malformed);
        }
        let key = keys
            .get(id)
            .map_err(|e| AuthError::Store(e.to_string()))?
            .ok_or_else(|| AuthError::UnknownKey(id.to_string()))?;
        if constant_time_eq(key.secret.as_bytes(), secret.as_bytes()) {
            key.caller().map_err(|e| AuthError::Store(e.to_string()))
        } else {
            Err(AuthError::WrongSecret(id.to_string()))
        }
    }
}

/// Compares without an early exit on the first differing byte (the length of a
/// secret is public: 40 characters).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl tonic::service::Interceptor for TokenGate {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let Some(keys) = &self.keys else {
            return Ok(req);
        };
        let header = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        match Self::check(keys, header) {
            Ok(caller) => {
                tracing::debug!(access_key = %caller.key_id, "gRPC call authenticated");
                if let Some(action) = self.service_action {
                    caller
                        .authorize(action, None, None, &self.account)
                        .map_err(Status::permission_denied)?;
                }
                req.extensions_mut().insert(caller);
                Ok(req)
            }
            Err(AuthError::Store(e)) => {
                tracing::error!(error = %e, "gRPC: access keys unreadable, call refused");
                Err(Status::unavailable(format!(
                    "flintd cannot read its access keys: {e}"
                )))
            }
            Err(e) => {
                tracing::warn!(reason = %e, "gRPC call refused");
                Err(Status::unauthenticated(HOW_TO_GET_A_KEY))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_id(s: &KeyStore, header: Option<&str>) -> Result<String, AuthError> {
        TokenGate::check(s, header).map(|c| c.key_id)
    }

    #[test]
    fn only_a_current_keys_exact_token_passes() {
        let d = tempfile::tempdir().unwrap();
        let s = KeyStore::new(d.path());
        let k = s.create("t").unwrap();
        let good = format!("Bearer {}:{}", k.id, k.secret);
        assert_eq!(check_id(&s, Some(&good)), Ok(k.id.clone()));
        assert_eq!(check_id(&s, None), Err(AuthError::Missing));
        assert_eq!(
            check_id(&s, Some(&format!("{}:{}", k.id, k.secret))),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            check_id(&s, Some(&format!("Bearer {}", k.id))),
            Err(AuthError::Malformed)
        );
        let mut wrong = k.secret.clone();
        wrong.replace_range(0..1, if wrong.starts_with('A') { "B" } else { "A" });
        assert_eq!(
            check_id(&s, Some(&format!("Bearer {}:{wrong}", k.id))),
            Err(AuthError::WrongSecret(k.id.clone()))
        );
        assert_eq!(
            check_id(&s, Some(&format!("Bearer {}:{}x", k.id, k.secret))),
            Err(AuthError::WrongSecret(k.id.clone()))
        );
        s.revoke(&k.id).unwrap();
        assert_eq!(check_id(&s, Some(&good)), Err(AuthError::UnknownKey(k.id)));
    }

    #[test]
    fn the_open_gate_lets_calls_through_and_the_closed_one_says_how_to_get_a_key() {
        use tonic::service::Interceptor;
        assert!(TokenGate::open().call(Request::new(())).is_ok());
        let d = tempfile::tempdir().unwrap();
        let err = TokenGate::required(KeyStore::new(d.path()), "123456789012")
            .call(Request::new(()))
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        assert!(
            err.message().contains("flint keys create"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn a_service_gate_refuses_keys_whose_policy_lacks_its_action() {
        use tonic::service::Interceptor;
        let d = tempfile::tempdir().unwrap();
        let s = KeyStore::new(d.path());
        let inv = s
            .create_with_policy("i", Some(vec!["lambda:InvokeFunction".into()]))
            .unwrap();
        let full = s.create("f").unwrap();
        let call = |k: &crate::lambda_api::keys::AccessKey| {
            let mut r = Request::new(());
            r.metadata_mut().insert(
                "authorization",
                format!("Bearer {}:{}", k.id, k.secret).parse().unwrap(),
            );
            TokenGate::required(s.clone(), "1")
                .for_service("flint:Node")
                .call(r)
        };
        let e = call(&inv).unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        assert!(
            e.message()
                .contains("not authorized to perform: flint:Node"),
            "{}",
            e.message()
        );
        let ok = call(&full).unwrap();
        assert_eq!(ok.extensions().get::<Caller>().unwrap().key_id, full.id);
    }
}
