//! Roles and named secrets in the function registry (migration 4): one row per role
//! with its policy as JSON, one row per secret with its sealed value.

use super::policy::Policy;
use super::{Role, RoleError};
use crate::store::Store;
use rusqlite::{params, OptionalExtension};

#[derive(serde::Serialize, serde::Deserialize)]
struct PolicyJson {
    invoke_functions: Vec<String>,
    read_secrets: Vec<String>,
}

fn to_json(p: &Policy) -> String {
    serde_json::json!({
        "invoke_functions": p.invoke_functions,
        "read_secrets": p.read_secrets,
    })
    .to_string()
}

fn row_to_role(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Role, String)> {
    Ok((
        Role {
            name: r.get("name")?,
            policy: Policy::default(),
            description: r.get("description")?,
            created: r.get("created")?,
        },
        r.get("policy")?,
    ))
}

fn parse((mut role, policy): (Role, String)) -> Result<Role, RoleError> {
    let p: PolicyJson =
        serde_json::from_str(&policy).map_err(|_| RoleError::Corrupt(role.name.clone()))?;
    role.policy = Policy {
        invoke_functions: p.invoke_functions,
        read_secrets: p.read_secrets,
    };
    Ok(role)
}

/// A named secret's row: its sealed value.
pub struct SecretRow {
    pub name: String,
    pub sealed: String,
}

impl Store {
    /// Inserts a role; fails if the name is taken.
    pub fn insert_role(&self, r: &Role) -> Result<(), RoleError> {
        let res = self.lock().execute(
            "INSERT INTO roles (name, policy, description, created) VALUES (?1, ?2, ?3, ?4)",
            params![r.name, to_json(&r.policy), r.description, r.created],
        );
        match res {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(RoleError::Exists(r.name.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces a role's policy and description.
    pub fn update_role(&self, r: &Role) -> Result<(), RoleError> {
        let n = self.lock().execute(
            "UPDATE roles SET policy = ?2, description = ?3 WHERE name = ?1",
            params![r.name, to_json(&r.policy), r.description],
        )?;
        if n == 0 {
            return Err(RoleError::NotFound(r.name.clone()));
        }
        Ok(())
    }

    /// One role.
    pub fn get_role(&self, name: &str) -> Result<Role, RoleError> {
        let row = self
            .lock()
            .query_row(
                "SELECT name, policy, description, created FROM roles WHERE name = ?1",
                params![name],
                row_to_role,
            )
            .optional()?;
        match row {
            Some(r) => parse(r),
            None => Err(RoleError::NotFound(name.to_string())),
        }
    }

    /// Every role, by name.
    pub fn list_roles(&self) -> Result<Vec<Role>, RoleError> {
        let conn = self.lock();
        let mut st =
            conn.prepare("SELECT name, policy, description, created FROM roles ORDER BY name")?;
        let rows = st.query_map([], row_to_role)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(parse(r?)?);
        }
        Ok(out)
    }

    /// Deletes a role that no function names.
    pub fn delete_role(&self, name: &str) -> Result<(), RoleError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let users: Vec<String> = tx
            .prepare("SELECT name FROM functions WHERE role = ?1 ORDER BY name")?
            .query_map(params![name], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        if !users.is_empty() {
            return Err(RoleError::InUse {
                role: name.to_string(),
                functions: users,
            });
        }
        if tx.execute("DELETE FROM roles WHERE name = ?1", params![name])? == 0 {
            return Err(RoleError::NotFound(name.to_string()));
        }
        tx.commit()?;
        Ok(())
    }

    /// Sets a named secret's sealed value.
    pub fn put_secret(&self, name: &str, sealed: &str, updated: &str) -> Result<(), RoleError> {
        self.lock().execute(
            "INSERT INTO secrets (name, value, updated) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated = excluded.updated",
            params![name, sealed, updated],
        )?;
        Ok(())
    }

    /// A named secret's row.
    pub fn get_secret(&self, name: &str) -> Result<SecretRow, RoleError> {
        self.lock()
            .query_row(
                "SELECT name, value FROM secrets WHERE name = ?1",
                params![name],
                |r| {
                    Ok(SecretRow {
                        name: r.get(0)?,
                        sealed: r.get(1)?,
                    })
                },
            )
            .optional()?
            .ok_or_else(|| RoleError::SecretNotFound(name.to_string()))
    }

    /// Every secret's name and update time, by name (never the values).
    pub fn list_secrets(&self) -> Result<Vec<(String, String)>, RoleError> {
        let conn = self.lock();
        let mut st = conn.prepare("SELECT name, updated FROM secrets ORDER BY name")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes a named secret.
    pub fn delete_secret(&self, name: &str) -> Result<(), RoleError> {
        if self
            .lock()
            .execute("DELETE FROM secrets WHERE name = ?1", params![name])?
            == 0
        {
            return Err(RoleError::SecretNotFound(name.to_string()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(name: &str) -> Role {
        Role {
            name: name.into(),
            policy: Policy {
                invoke_functions: vec!["adder".into(), "reports-*".into()],
                read_secrets: vec!["db".into()],
            },
            description: "d".into(),
            created: "2026-12-06T00:00:00Z".into(),
        }
    }

    #[test]
    fn roles_round_trip_and_a_used_role_is_not_deleted() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(&d.path().join("f.db")).unwrap();
        s.insert_role(&role("r1")).unwrap();
        assert!(matches!(
            s.insert_role(&role("r1")),
            Err(RoleError::Exists(_))
        ));
        assert_eq!(s.get_role("r1").unwrap(), role("r1"));
        let mut r = role("r1");
        r.policy.invoke_functions = vec!["*".into()];
        s.update_role(&r).unwrap();
        assert_eq!(s.list_roles().unwrap(), vec![r]);
        s.lock()
            .execute_batch(
                "INSERT INTO functions (name, runtime, handler, memory_mb, timeout_s, environment, \
                 description, code_sha256, code_size, last_modified, revision, role) \
                 VALUES ('f', 'python3.11', 'a.b', 128, 3, '{}', '', '', 0, '', 1, 'r1')",
            )
            .unwrap();
        let err = s.delete_role("r1").unwrap_err();
        assert!(err.to_string().contains("f"), "{err}");
        s.lock().execute_batch("DELETE FROM functions").unwrap();
        s.delete_role("r1").unwrap();
        assert!(matches!(s.get_role("r1"), Err(RoleError::NotFound(_))));
    }

    #[test]
    fn secrets_are_put_replaced_listed_and_deleted() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(&d.path().join("f.db")).unwrap();
        s.put_secret("db", "fsv1:a", "t1").unwrap();
        s.put_secret("db", "fsv1:b", "t2").unwrap();
        assert_eq!(s.get_secret("db").unwrap().sealed, "fsv1:b");
        assert_eq!(
            s.list_secrets().unwrap(),
            vec![("db".to_string(), "t2".to_string())]
        );
        s.delete_secret("db").unwrap();
        assert!(matches!(
            s.get_secret("db"),
            Err(RoleError::SecretNotFound(_))
        ));
    }
}
