//! Execution roles: a named policy (which functions its credentials may invoke through
//! the Lambda API, which secrets they may read) that a function names, and the
//! temporary credentials every instance of such a function receives. See
//! docs/ROLES.md for the design and the threat model.
//!
//! Files: `policy` (names, patterns, checks), `token` (minting and verifying
//! credentials), `keys` (the signing and operator keys, sealing a function's secret
//! environment), `store` (the registry's roles and secrets tables), `ops` (the agent's
//! operations), `calls` (the trait a session answers flint-init's calls through),
//! `guest` (its implementation: credentials, the API proxy).
//! The Lambda API's side (temporary credentials on SigV4, the policy check) is
//! lambda_api/role_auth.rs.

pub mod calls;
pub mod guest;
pub mod keys;
pub mod ops;
pub mod policy;
pub mod store;
pub mod token;

pub use policy::Policy;

/// A role as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub name: String,
    pub policy: Policy,
    pub description: String,
    /// RFC 3339, UTC.
    pub created: String,
}

/// Role, secret and credential failures; each says what to change.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    /// A bad name or policy
    #[error(transparent)]
    Invalid(#[from] policy::PolicyError),
    /// Name taken
    #[error("role {0} already exists: pick another name or update it (flint roles update)")]
    Exists(String),
    /// Unknown role
    #[error("role {0} not found: create it first (flint roles create) or check the name (flint roles ls)")]
    NotFound(String),
    /// Deleting a role that functions name
    #[error(
        "role {role} is used by functions {}: give them another role (flint update --role) first",
        functions.join(", ")
    )]
    InUse {
        role: String,
        functions: Vec<String>,
    },
    /// Unknown secret
    #[error("secret {0} not found: set it with flint secrets put")]
    SecretNotFound(String),
    /// A secret with no operator key to seal it
    #[error(
        "secret values need flintd's operator key, and this flintd has none: start it with \
         --secrets-key-file PATH (a file of mode 0600 holding 32 random bytes in base64, made with \
         `head -c 32 /dev/urandom | base64 > PATH && chmod 600 PATH`) or with FLINT_SECRETS_KEY \
         set to such a value"
    )]
    NoOperatorKey,
    /// Sealing or opening a secret failed
    #[error(transparent)]
    Seal(#[from] crate::secrets::SealError),
    /// Minting or reading the signing key failed
    #[error(transparent)]
    Token(#[from] token::TokenError),
    /// SQLite said no
    #[error("function database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored role could not be read back
    #[error("function database holds a corrupt role {0}")]
    Corrupt(String),
}

/// IAM's ARN of a role.
pub fn role_arn(account: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:role/{name}")
}

/// The role name of an IAM role ARN (`arn:aws:iam::ACCOUNT:role/[PATH/]NAME`), or the
/// text itself when it is a plain name.
pub fn name_from_arn(arn: &str) -> &str {
    match arn.strip_prefix("arn:") {
        Some(rest) => rest
            .split_once(":role/")
            .map(|(_, path)| path.rsplit('/').next().unwrap_or(path))
            .unwrap_or(arn),
        None => arn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns_name_their_role() {
        assert_eq!(
            role_arn("123456789012", "r"),
            "arn:aws:iam::123456789012:role/r"
        );
        assert_eq!(name_from_arn("arn:aws:iam::123456789012:role/r"), "r");
        assert_eq!(
            name_from_arn("arn:aws:iam::123456789012:role/service-role/r2"),
            "r2"
        );
        assert_eq!(name_from_arn("plain"), "plain");
    }
}
