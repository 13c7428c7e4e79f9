//! The agent's role and secret operations, shared by the gRPC service and the
//! credentials path: create/update/list/delete roles, put/list/delete secrets, read a
//! secret for a role, mint an instance's credentials.

use super::keys::{now_rfc3339, now_secs};
use super::token::Minted;
use super::{policy, Role, RoleError};
use crate::core::Agent;
use crate::secrets;

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
        let key = self.role_keys().operator_key()?;
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
        let key = self.role_keys().operator_key()?;
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
