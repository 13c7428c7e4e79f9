//! The agent's role and secret operations, shared by the gRPC service and the
//! credentials path: create/update/list/delete roles, put/list/delete secrets, seal a
//! function's secret environment, open it for a sandbox, mint an instance's credentials.

use super::token::{Minted, SigningKey};
use super::{policy, Role, RoleError};
use crate::core::Agent;
use crate::secrets::{self, OperatorKey};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// The keys roles and secrets work with, loaded when the agent opens.
pub struct RoleKeys {
    /// Signs session tokens and derives their secrets.
    pub signing: SigningKey,
    /// Wraps every secret's data key; `None` refuses secrets.
    pub operator: Option<OperatorKey>,
    /// Lifetime of minted credentials (`--credentials-ttl`).
    pub ttl: Duration,
}

/// Unix seconds now.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

fn now_rfc3339() -> String {
    crate::timefmt::rfc3339_secs(now_secs())
}

impl RoleKeys {
    fn operator(&self) -> Result<&OperatorKey, RoleError> {
        self.operator.as_ref().ok_or(RoleError::NoOperatorKey)
    }

    /// Seals a function's secret environment variables.
    pub fn seal_env(
        &self,
        function: &str,
        vars: &HashMap<String, String>,
    ) -> Result<BTreeMap<String, String>, RoleError> {
        if vars.is_empty() {
            return Ok(BTreeMap::new());
        }
        let key = self.operator()?;
        vars.iter()
            .map(|(k, v)| {
                let sealed = secrets::seal(key, &secrets::env_context(function, k), v.as_bytes())?;
                Ok((k.clone(), sealed))
            })
            .collect()
    }

    /// Opens a function's sealed environment (only to configure its sandbox).
    pub fn open_env(
        &self,
        function: &str,
        sealed: &BTreeMap<String, String>,
    ) -> Result<HashMap<String, String>, RoleError> {
        if sealed.is_empty() {
            return Ok(HashMap::new());
        }
        let key = self.operator()?;
        sealed
            .iter()
            .map(|(k, s)| {
                let v = secrets::open(key, &secrets::env_context(function, k), s)?;
                Ok((k.clone(), String::from_utf8_lossy(&v).into_owned()))
            })
            .collect()
    }
}

impl Agent {
    /// Creates a role.
    pub fn create_role(&self, mut r: Role) -> Result<Role, RoleError> {
        policy::check_name(&r.name)?;
        r.policy.check()?;
        r.created = now_rfc3339();
        self.store().insert_role(&r)?;
        tracing::info!(role = %r.name, "role created");
        Ok(r)
    }

    /// Replaces a role's policy and description; running instances' credentials
    /// follow the new policy at their next call (it is read per request).
    pub fn update_role(&self, r: Role) -> Result<Role, RoleError> {
        policy::check_name(&r.name)?;
        r.policy.check()?;
        self.store().update_role(&r)?;
        tracing::info!(role = %r.name, "role updated");
        self.store().get_role(&r.name)
    }

    /// One role.
    pub fn get_role(&self, name: &str) -> Result<Role, RoleError> {
        self.store().get_role(name)
    }

    /// Every role.
    pub fn list_roles(&self) -> Result<Vec<Role>, RoleError> {
        self.store().list_roles()
    }

    /// Deletes a role no function names; its outstanding credentials stop working.
    pub fn delete_role(&self, name: &str) -> Result<(), RoleError> {
        self.store().delete_role(name)?;
        tracing::info!(role = %name, "role deleted");
        Ok(())
    }

    /// Sets a named secret (sealed with the operator key); returns its update time.
    pub fn put_secret(&self, name: &str, value: &str) -> Result<String, RoleError> {
        policy::check_entries(&[name.to_string()])
            .ok()
            .filter(|_| !name.contains('*'))
            .ok_or_else(|| policy::PolicyError::Entry(name.to_string()))?;
        let key = self.role_keys().operator()?;
        let sealed = secrets::seal(key, &secrets::secret_context(name), value.as_bytes())?;
        let at = now_rfc3339();
        self.store().put_secret(name, &sealed, &at)?;
        tracing::info!(secret = %name, "secret set");
        Ok(at)
    }

    /// Every secret's name and update time.
    pub fn list_secrets(&self) -> Result<Vec<(String, String)>, RoleError> {
        self.store().list_secrets()
    }

    /// Deletes a named secret.
    pub fn delete_secret(&self, name: &str) -> Result<(), RoleError> {
        self.store().delete_secret(name)?;
        tracing::info!(secret = %name, "secret deleted");
        Ok(())
    }

    /// A named secret's value, for a holder of `role` (its policy must allow it).
    pub fn read_secret(&self, role: &str, name: &str) -> Result<Option<String>, RoleError> {
        let r = self.store().get_role(role)?;
        if !r.policy.may_read_secret(name) {
            return Ok(None);
        }
        let row = self.store().get_secret(name)?;
        let key = self.role_keys().operator()?;
        let v = secrets::open(key, &secrets::secret_context(&row.name), &row.sealed)?;
        Ok(Some(String::from_utf8_lossy(&v).into_owned()))
    }

    /// Fresh credentials of `role` for an instance of `function`.
    pub fn mint_credentials(&self, role: &str, function: &str) -> Result<Minted, RoleError> {
        let keys = self.role_keys();
        Ok(keys
            .signing
            .mint(role, function, now_secs(), keys.ttl.as_secs())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(operator: Option<OperatorKey>) -> RoleKeys {
        RoleKeys {
            signing: SigningKey::from_bytes([5; 32]),
            operator,
            ttl: Duration::from_secs(60),
        }
    }

    #[test]
    fn secret_environment_is_sealed_per_function_and_opened_back() {
        let k = keys(Some(OperatorKey::from_bytes([8; 32])));
        let vars = HashMap::from([("DB_PASSWORD".to_string(), "hunter2".to_string())]);
        let sealed = k.seal_env("f", &vars).unwrap();
        assert!(!sealed["DB_PASSWORD"].contains("hunter2"));
        assert_eq!(k.open_env("f", &sealed).unwrap(), vars);
        // Moved to another function's row: refused.
        assert!(k.open_env("g", &sealed).is_err());
    }

    #[test]
    fn without_an_operator_key_secrets_are_refused_with_how_to_set_one() {
        let k = keys(None);
        assert!(k.seal_env("f", &HashMap::new()).unwrap().is_empty());
        let vars = HashMap::from([("A".to_string(), "b".to_string())]);
        let err = k.seal_env("f", &vars).unwrap_err();
        assert!(matches!(err, RoleError::NoOperatorKey));
        let msg = err.to_string();
        assert!(
            msg.contains("--secrets-key-file") && msg.contains("FLINT_SECRETS_KEY"),
            "{msg}"
        );
    }
}
