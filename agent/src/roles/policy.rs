//! A role's policy: the functions its credentials may invoke and the secrets they may
//! read, as names or patterns where `*` matches any run of characters. Nothing is
//! allowed that no entry names.

/// Longest role name (as IAM's).
pub const NAME_MAX: usize = 64;
/// Most entries in one list of a policy.
pub const ENTRIES_MAX: usize = 100;

/// A bad role name or policy entry, with what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Role name outside IAM's rules
    #[error("role name {0:?} is invalid: use 1-64 characters of letters, digits and _+=,.@-")]
    Name(String),
    /// An entry that can match no function or secret name
    #[error(
        "policy entry {0:?} is invalid: use a name of letters, digits, _ and -, \
         where * matches any run of characters (e.g. orders-*)"
    )]
    Entry(String),
    /// Too many entries
    #[error("a policy list holds at most {ENTRIES_MAX} entries")]
    TooMany,
}

/// Checks a role name as IAM does: `[\w+=,.@-]{1,64}`.
pub fn check_name(name: &str) -> Result<(), PolicyError> {
    let ok = !name.is_empty()
        && name.len() <= NAME_MAX
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(PolicyError::Name(name.to_string()))
    }
}

/// Checks one list of entries.
pub fn check_entries(entries: &[String]) -> Result<(), PolicyError> {
    if entries.len() > ENTRIES_MAX {
        return Err(PolicyError::TooMany);
    }
    for e in entries {
        let ok = !e.is_empty()
            && e.len() <= 140
            && e.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '*');
        if !ok {
            return Err(PolicyError::Entry(e.clone()));
        }
    }
    Ok(())
}

/// True when `pattern` (with `*` wildcards) matches all of `name`.
pub fn matches(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    if !name.ends_with(last) {
        return false;
    }
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// What a role allows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Functions the credentials may invoke.
    pub invoke_functions: Vec<String>,
    /// Secrets the credentials may read.
    pub read_secrets: Vec<String>,
}

impl Policy {
    /// Checks both lists.
    pub fn check(&self) -> Result<(), PolicyError> {
        check_entries(&self.invoke_functions)?;
        check_entries(&self.read_secrets)
    }

    /// Whether the credentials may invoke `function`.
    pub fn may_invoke(&self, function: &str) -> bool {
        self.invoke_functions.iter().any(|p| matches(p, function))
    }

    /// Whether the credentials may read the secret `name`.
    pub fn may_read_secret(&self, name: &str) -> bool {
        self.read_secrets.iter().any(|p| matches(p, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_names_only() {
        assert!(matches("adder", "adder"));
        assert!(!matches("adder", "adder2"));
        assert!(!matches("adder", "xadder"));
        assert!(matches("*", ""));
        assert!(matches("*", "anything"));
        assert!(matches("orders-*", "orders-eu"));
        assert!(matches("orders-*", "orders-"));
        assert!(!matches("orders-*", "order-eu"));
        assert!(matches("*-eu", "orders-eu"));
        assert!(!matches("*-eu", "orders-us"));
        assert!(matches("a*b*c", "a-x-b-y-c"));
        assert!(!matches("a*b*c", "a-x-c-y-b"));
        assert!(
            !matches("ab*ba", "aba"),
            "prefix and suffix may not overlap"
        );
        assert!(matches("a**", "abc"));
    }

    #[test]
    fn a_policy_allows_only_what_it_names() {
        let p = Policy {
            invoke_functions: vec!["adder".into(), "reports-*".into()],
            read_secrets: vec!["db-password".into()],
        };
        assert!(p.may_invoke("adder"));
        assert!(p.may_invoke("reports-daily"));
        assert!(!p.may_invoke("billing"));
        assert!(p.may_read_secret("db-password"));
        assert!(!p.may_read_secret("api-token"));
        let empty = Policy::default();
        assert!(!empty.may_invoke("adder"));
        assert!(!empty.may_read_secret("db-password"));
    }

    #[test]
    fn names_and_entries_are_checked() {
        assert!(check_name("lambda-role_1+=,.@").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("has space").is_err());
        assert!(check_name(&"r".repeat(65)).is_err());
        assert!(check_entries(&["a-*".into(), "*".into()]).is_ok());
        let err = check_entries(&["a/b".into()]).unwrap_err();
        assert!(err.to_string().contains("orders-*"), "{err}");
        assert_eq!(
            check_entries(&vec!["a".to_string(); ENTRIES_MAX + 1]),
            Err(PolicyError::TooMany)
        );
    }
}
