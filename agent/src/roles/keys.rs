//! The keys roles and secrets work with, loaded once when the agent opens: the
//! credentials' signing key, the operator key that seals secrets, and the credentials'
//! lifetime; and sealing and opening a function's secret environment with them.

use super::token::SigningKey;
use super::RoleError;
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

/// RFC 3339 (seconds, UTC) of now.
pub fn now_rfc3339() -> String {
    crate::timefmt::rfc3339_secs(now_secs())
}

impl RoleKeys {
    pub fn operator_key(&self) -> Result<&OperatorKey, RoleError> {
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
        let key = self.operator_key()?;
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
        let key = self.operator_key()?;
        sealed
            .iter()
            .map(|(k, s)| {
                let v = secrets::open(key, &secrets::env_context(function, k), s)?;
                Ok((k.clone(), String::from_utf8_lossy(&v).into_owned()))
            })
            .collect()
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
