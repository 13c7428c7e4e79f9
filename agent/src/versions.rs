//! Versions and aliases, as every front end uses them: publishing, listing and
//! deleting versions, alias management with weighted routing, and the resolution of
//! `NAME:QUALIFIER` to the configuration an invocation runs (the registry side is
//! `store/versions.rs`).

use crate::core::Agent;
use crate::functions::now_rfc3339;
use crate::store::versions::{Alias, Routing, Version, VersionError, LATEST};
use crate::store::{Function, StoreError};

/// Longest alias name, as in Lambda.
const ALIAS_NAME_MAX: usize = 128;

/// What a qualifier names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Qualifier {
    Latest,
    Version(u64),
    Alias(String),
}

impl Qualifier {
    /// Parses `$LATEST`, a version number or an alias name.
    pub fn parse(q: &str) -> Result<Self, VersionError> {
        if q == LATEST {
            return Ok(Self::Latest);
        }
        if !q.is_empty() && q.bytes().all(|b| b.is_ascii_digit()) {
            return match q.parse::<u64>() {
                Ok(n) if n >= 1 => Ok(Self::Version(n)),
                _ => Err(VersionError::Invalid(format!(
                    "version {q:?} does not exist: versions are numbered from 1"
                ))),
            };
        }
        alias_name(q)?;
        Ok(Self::Alias(q.to_string()))
    }
}

/// `NAME:QUALIFIER` split at its colon (function names have none).
pub fn split_qualified(given: &str) -> (&str, Option<&str>) {
    match given.split_once(':') {
        Some((name, q)) => (name, Some(q)),
        None => (given, None),
    }
}

/// Refuses an alias name Lambda refuses: 1 to 128 of `A-Za-z0-9-_`, not only digits
/// (that would be a version) and so never `$LATEST`.
pub fn alias_name(name: &str) -> Result<(), VersionError> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if name.is_empty() || name.len() > ALIAS_NAME_MAX || !ok_chars {
        return Err(VersionError::Invalid(format!(
            "alias name {name:?} is not valid: use 1 to {ALIAS_NAME_MAX} letters, digits, '-' or '_'"
        )));
    }
    if name.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VersionError::Invalid(format!(
            "alias name {name:?} is a number, which names a version: include a letter"
        )));
    }
    Ok(())
}

/// Checks an alias's target and routing: a primary of $LATEST or a number; an
/// additional version that is a published number other than the primary, with a
/// weight from 0.0 to 1.0.
pub fn check_alias(version: &str, routing: Option<&Routing>) -> Result<(), VersionError> {
    match Qualifier::parse(version) {
        Ok(Qualifier::Latest | Qualifier::Version(_)) => {}
        _ => {
            return Err(VersionError::Invalid(format!(
                "FunctionVersion {version:?} must be $LATEST or a version number"
            )))
        }
    }
    let Some(r) = routing else { return Ok(()) };
    if !matches!(Qualifier::parse(&r.version), Ok(Qualifier::Version(_))) {
        return Err(VersionError::Invalid(format!(
            "the additional version {:?} must be a published version number ($LATEST cannot be weighted)",
            r.version
        )));
    }
    if r.version == version {
        return Err(VersionError::Invalid(format!(
            "the additional version {} is the alias's own version: name another one",
            r.version
        )));
    }
    if !(0.0..=1.0).contains(&r.weight) || r.weight.is_nan() {
        return Err(VersionError::Invalid(format!(
            "the weight {} of version {} must be from 0.0 to 1.0",
            r.weight, r.version
        )));
    }
    Ok(())
}

/// The version an alias sends one invocation to, for a draw uniform in [0, 1).
pub fn pick(alias: &Alias, draw: f64) -> &str {
    match &alias.routing {
        Some(r) if draw < r.weight => &r.version,
        _ => &alias.version,
    }
}

/// A uniform draw in [0, 1) (53 random bits of a v4 UUID).
fn draw() -> f64 {
    (uuid::Uuid::new_v4().as_u128() >> 75) as f64 / (1u64 << 53) as f64
}

/// The configuration one invocation runs and the version that is.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub function: Function,
    /// `$LATEST` or the version number.
    pub version: String,
}

/// An unknown version or alias, in the words an invocation reports (the invocation
/// path maps it like an unknown function, with its qualifier: `Function not found:
/// ARN:QUALIFIER`).
fn not_found(name: &str, q: &str) -> StoreError {
    StoreError::NotFound(format!("{name}:{q}"))
}

impl Agent {
    /// Publishes `name`'s $LATEST as a new version after `check` accepted it (the
    /// front end's CodeSha256/RevisionId preconditions). Blocking: SQLite.
    pub fn publish_version(
        &self,
        name: &str,
        description: &str,
        check: impl FnOnce(&Function) -> Result<(), VersionError>,
    ) -> Result<Version, VersionError> {
        crate::validate::description(description)
            .map_err(|e| VersionError::Invalid(e.to_string()))?;
        let v = self
            .store()
            .publish(name, description, &now_rfc3339(), check)?;
        tracing::info!(function = %name, version = v.number, "version published");
        Ok(v)
    }

    /// Every published version of `name`, oldest first. Blocking: SQLite.
    pub fn list_versions(&self, name: &str) -> Result<Vec<Version>, VersionError> {
        self.store().list_versions(name)
    }

    /// The configuration `name:qualifier` names (an alias: its primary version).
    /// Blocking: SQLite.
    pub fn qualified_config(
        &self,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<Resolved, VersionError> {
        let q = match qualifier {
            None => Qualifier::Latest,
            Some(q) => Qualifier::parse(q)?,
        };
        let version = match q {
            Qualifier::Latest => LATEST.to_string(),
            Qualifier::Version(n) => n.to_string(),
            Qualifier::Alias(a) => self.store().get_alias(name, &a)?.version,
        };
        self.config_of(name, &version)
    }

    fn config_of(&self, name: &str, version: &str) -> Result<Resolved, VersionError> {
        let function = match Qualifier::parse(version)? {
            Qualifier::Version(n) => self.store().get_version(name, n)?.config,
            _ => self.store().get(name)?,
        };
        Ok(Resolved {
            function,
            version: version.to_string(),
        })
    }

    /// Deletes version `number` of `name` (refused while an alias routes to it) and
    /// its instances; its code goes unless something else uses it. Blocking: SQLite.
    pub fn delete_version(&self, name: &str, number: u64) -> Result<Version, VersionError> {
        let v = self.store().delete_version(name, number)?;
        self.idle().retire_version(name, &number.to_string());
        self.collect_code();
        tracing::info!(function = %name, version = number, "version deleted");
        Ok(v)
    }

    /// Creates alias `a` after checking its name, versions and weight.
    pub fn create_alias(&self, a: &Alias) -> Result<(), VersionError> {
        alias_name(&a.name)?;
        check_alias(&a.version, a.routing.as_ref())?;
        self.store().create_alias(a)?;
        tracing::info!(function = %a.function, alias = %a.name, version = %a.version, "alias created");
        Ok(())
    }

    /// Changes alias `function:name` with `change`, then checks it as a new one.
    pub fn update_alias(
        &self,
        function: &str,
        name: &str,
        change: impl FnOnce(&mut Alias) -> Result<(), VersionError>,
    ) -> Result<Alias, VersionError> {
        let a = self.store().update_alias(function, name, |a| {
            change(a)?;
            check_alias(&a.version, a.routing.as_ref())
        })?;
        tracing::info!(function = %function, alias = %name, version = %a.version, "alias updated");
        Ok(a)
    }

    /// Alias `function:name`. Blocking: SQLite.
    pub fn get_alias(&self, function: &str, name: &str) -> Result<Alias, VersionError> {
        self.store().get_alias(function, name)
    }

    /// Every alias of `function`. Blocking: SQLite.
    pub fn list_aliases(&self, function: &str) -> Result<Vec<Alias>, VersionError> {
        self.store().list_aliases(function)
    }

    /// Deletes alias `function:name`. Blocking: SQLite.
    pub fn delete_alias(&self, function: &str, name: &str) -> Result<Alias, VersionError> {
        let a = self.store().delete_alias(function, name)?;
        tracing::info!(function = %function, alias = %name, "alias deleted");
        Ok(a)
    }

    /// What an invocation of `name:qualifier` runs, from the registry's caches only
    /// (no SQLite); `None` when something is not cached. An alias draws its version.
    pub(crate) fn resolve_cached(&self, name: &str, qualifier: &str) -> Option<Resolved> {
        let version = match Qualifier::parse(qualifier).ok()? {
            Qualifier::Latest => LATEST.to_string(),
            Qualifier::Version(n) => n.to_string(),
            Qualifier::Alias(a) => pick(&self.store().cached_alias(name, &a)?, draw()).to_string(),
        };
        let function = match Qualifier::parse(&version).ok()? {
            Qualifier::Version(n) => self.store().cached_version(name, n)?.config,
            _ => self.store().cached(name)?,
        };
        Some(Resolved { function, version })
    }

    /// What an invocation of `name:qualifier` runs, read from the registry; an alias
    /// draws its version. Unknown names, versions and aliases are NotFound with the
    /// qualifier. Blocking: SQLite.
    pub(crate) fn resolve_invocation(
        &self,
        name: &str,
        qualifier: &str,
    ) -> Result<Resolved, StoreError> {
        let lost = |e: VersionError| match e {
            VersionError::Store(s) => s,
            _ => not_found(name, qualifier),
        };
        let version = match Qualifier::parse(qualifier).map_err(lost)? {
            Qualifier::Alias(a) => {
                pick(&self.store().get_alias(name, &a).map_err(lost)?, draw()).to_string()
            }
            Qualifier::Latest => LATEST.to_string(),
            Qualifier::Version(n) => n.to_string(),
        };
        self.config_of(name, &version).map_err(|e| match e {
            VersionError::VersionNotFound { .. } => not_found(name, qualifier),
            e => lost(e),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alias(version: &str, routing: Option<(&str, f64)>) -> Alias {
        Alias {
            function: "f".into(),
            name: "live".into(),
            version: version.into(),
            routing: routing.map(|(v, w)| Routing {
                version: v.into(),
                weight: w,
            }),
            description: String::new(),
            revision: 1,
        }
    }

    #[test]
    fn qualifiers_parse_as_lambda_reads_them() {
        assert_eq!(Qualifier::parse("$LATEST").unwrap(), Qualifier::Latest);
        assert_eq!(Qualifier::parse("12").unwrap(), Qualifier::Version(12));
        assert_eq!(
            Qualifier::parse("live").unwrap(),
            Qualifier::Alias("live".into())
        );
        assert!(Qualifier::parse("0").is_err());
        assert!(Qualifier::parse("").is_err());
        assert!(Qualifier::parse("$LIVE").is_err());
        assert!(Qualifier::parse("a:b").is_err());
        assert_eq!(split_qualified("f:live"), ("f", Some("live")));
        assert_eq!(split_qualified("f"), ("f", None));
    }

    #[test]
    fn alias_names_and_routing_are_checked() {
        assert!(alias_name("prod-1_a").is_ok());
        assert!(alias_name("123").is_err(), "a number names a version");
        assert!(alias_name("$LATEST").is_err());
        assert!(alias_name(&"a".repeat(129)).is_err());
        let r = |v: &str, w| Routing {
            version: v.into(),
            weight: w,
        };
        assert!(check_alias("1", Some(&r("2", 0.2))).is_ok());
        assert!(check_alias("$LATEST", None).is_ok());
        assert!(check_alias("live", None).is_err());
        assert!(check_alias("1", Some(&r("1", 0.2))).is_err());
        assert!(check_alias("1", Some(&r("$LATEST", 0.2))).is_err());
        assert!(check_alias("1", Some(&r("2", 1.5))).is_err());
        assert!(check_alias("1", Some(&r("2", -0.1))).is_err());
        assert!(check_alias("1", Some(&r("2", f64::NAN))).is_err());
    }

    #[test]
    fn weighted_routing_splits_by_the_weight() {
        let a = alias("1", Some(("2", 0.2)));
        assert_eq!(pick(&a, 0.0), "2");
        assert_eq!(pick(&a, 0.1999), "2");
        assert_eq!(pick(&a, 0.2), "1");
        assert_eq!(pick(&a, 0.9999), "1");
        assert_eq!(pick(&alias("1", None), 0.0), "1");
        assert_eq!(pick(&alias("1", Some(("2", 0.0))), 0.0), "1");
        // The real draw: 100,000 picks land within half a point of 20 %.
        let n = 100_000;
        let twos = (0..n).filter(|_| pick(&a, draw()) == "2").count();
        let share = twos as f64 / n as f64;
        assert!((share - 0.2).abs() < 0.005, "share {share}");
        for _ in 0..1000 {
            let d = draw();
            assert!((0.0..1.0).contains(&d));
        }
    }
}
