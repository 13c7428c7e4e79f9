//! What flintd answers when flint-init calls on behalf of a function with an
//! execution role (flint.init.v1 `HostCall`): fresh temporary credentials for the
//! container-credentials endpoint, and HTTP requests for the Lambda API from the
//! sandbox's loopback proxy, answered in process by the REST API's own handler (the
//! same SigV4 check and role policy as over TCP).

use super::calls::{GuestCalls, ReplyFuture};
use crate::core::Agent;
use crate::lambda_api::{ApiRequest, LambdaApi};
use flint_proto::init::{
    host_call::Kind as CallKind, host_call_reply::Kind as ReplyKind, HostCall, HostCallReply,
    HttpHeader, HttpResponse, RoleCredentials,
};
use std::sync::Arc;

/// RFC 3339 (seconds, UTC) of Unix seconds.
fn rfc3339(secs: u64) -> String {
    crate::timefmt::rfc3339_secs(secs)
}

impl Agent {
    /// Credentials of `role` for an instance of `function`, in the protocol's shape.
    pub(crate) fn role_credentials(
        &self,
        role: &str,
        function: &str,
    ) -> Result<RoleCredentials, crate::roles::RoleError> {
        let m = self.mint_credentials(role, function)?;
        Ok(RoleCredentials {
            access_key_id: m.access_key_id,
            secret_access_key: m.secret_access_key,
            session_token: m.session_token,
            expiration: rfc3339(m.expires),
        })
    }
}

/// The calls of one instance of `function`, which has execution role `role`.
pub struct InstanceCalls {
    agent: Arc<Agent>,
    api: Arc<LambdaApi>,
    function: String,
    role: String,
}

impl InstanceCalls {
    /// The call handler of an instance of `function` with `role`.
    pub fn new(agent: Arc<Agent>, function: &str, role: &str) -> Arc<Self> {
        Arc::new(Self {
            api: LambdaApi::new(agent.clone()),
            agent,
            function: function.to_string(),
            role: role.to_string(),
        })
    }

    fn credentials(&self) -> ReplyKind {
        match self.agent.role_credentials(&self.role, &self.function) {
            Ok(c) => {
                tracing::debug!(function = %self.function, role = %self.role, access_key = %c.access_key_id, "credentials refreshed");
                ReplyKind::Credentials(c)
            }
            Err(e) => {
                tracing::warn!(function = %self.function, role = %self.role, error = %e, "credentials not minted");
                ReplyKind::Error("flintd could not mint credentials; its log has the cause".into())
            }
        }
    }
}

impl GuestCalls for InstanceCalls {
    fn answer(&self, call: HostCall) -> ReplyFuture {
        let id = call.id;
        let kind = call.kind;
        let api = self.api.clone();
        let creds = matches!(kind, Some(CallKind::Credentials(_))).then(|| self.credentials());
        let (agent, function, role) =
            (self.agent.clone(), self.function.clone(), self.role.clone());
        Box::pin(async move {
            let kind = match (kind, creds) {
                (_, Some(c)) => c,
                (Some(CallKind::Secret(s)), _) => secret(agent, function, role, s.name).await,
                (Some(CallKind::Http(h)), _) => {
                    let (path, query) = match h.target.split_once('?') {
                        Some((p, q)) => (p.to_string(), q.to_string()),
                        None => (h.target.clone(), String::new()),
                    };
                    let req = ApiRequest {
                        method: h.method,
                        path,
                        query,
                        headers: h
                            .headers
                            .into_iter()
                            .map(|x| (x.name.to_ascii_lowercase(), x.value))
                            .collect(),
                        body: h.body,
                    };
                    let r = crate::lambda_api::answer(&api, req).await;
                    ReplyKind::Http(HttpResponse {
                        status: u32::from(r.status),
                        headers: r
                            .headers
                            .into_iter()
                            .map(|(name, value)| HttpHeader { name, value })
                            .collect(),
                        body: r.body,
                    })
                }
                _ => ReplyKind::Error("unknown call: update flintd".into()),
            };
            HostCallReply {
                id,
                kind: Some(kind),
            }
        })
    }
}

/// The value of the named secret `name` for an instance of `function` with `role`.
async fn secret(agent: Arc<Agent>, function: String, role: String, name: String) -> ReplyKind {
    let asked = name.clone();
    match agent.blocking(move |a| a.read_secret(&role, &name)).await {
        Ok(Some(v)) => {
            tracing::debug!(function = %function, secret = %asked, "secret read");
            ReplyKind::SecretValue(v)
        }
        Ok(None) | Err(crate::roles::RoleError::SecretNotFound(_)) => {
            tracing::info!(function = %function, secret = %asked, "secret read refused");
            ReplyKind::Denied(format!(
                "the function's role may not read secret {asked} (or there is no such secret)"
            ))
        }
        Err(e) => {
            tracing::warn!(function = %function, secret = %asked, error = %e, "secret not read");
            ReplyKind::Error("flintd could not read the secret; its log has the cause".into())
        }
    }
}

/// What binding an instance to a function with a role adds (all empty without one).
#[derive(Default)]
pub(crate) struct RoleBinding {
    pub credentials: Option<Box<RoleCredentials>>,
    pub auth_token: String,
    pub calls: Option<Arc<dyn GuestCalls>>,
    pub retire_at: Option<std::time::Instant>,
}

/// How long before its environment's credentials expire an instance stops taking
/// invocations: a quarter of their lifetime, at most five minutes.
pub fn retire_margin(ttl: std::time::Duration) -> std::time::Duration {
    (ttl / 4).min(std::time::Duration::from_secs(300))
}

impl Agent {
    /// The credentials, credentials-endpoint token and call handler of a new instance
    /// of `f`.
    pub(crate) fn role_binding(
        self: &Arc<Self>,
        f: &crate::store::Function,
    ) -> Result<RoleBinding, crate::roles::RoleError> {
        let Some(role) = &f.role else {
            return Ok(RoleBinding::default());
        };
        let credentials = self.role_credentials(role, &f.name)?;
        let token = crate::lambda_api::keys::random_bytes(24).map_err(|source| {
            crate::roles::token::TokenError::Io {
                path: "/dev/urandom".into(),
                source,
            }
        })?;
        let ttl = self.role_keys().ttl;
        tracing::debug!(function = %f.name, role = %role, access_key = %credentials.access_key_id, "instance credentials minted");
        Ok(RoleBinding {
            credentials: Some(Box::new(credentials)),
            auth_token: hex::encode(token),
            calls: Some(InstanceCalls::new(self.clone(), &f.name, role)),
            retire_at: Some(std::time::Instant::now() + ttl - retire_margin(ttl)),
        })
    }
}
