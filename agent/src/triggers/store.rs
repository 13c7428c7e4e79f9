//! The `triggers` table of the function registry (migration 2 of `store::SCHEMA`):
//! reading and writing [`Trigger`] rows. A trigger row names an existing function
//! (checked in the insert's statement); deleting a function with triggers is
//! `Store::delete`'s concern.

use super::model::{Trigger, TriggerError, TriggerKind};
use crate::store::{Store, StoreError};
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, OptionalExtension, Row};

/// A time as stored: RFC 3339 UTC with milliseconds (so text order is time order).
pub fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_time(name: &str, s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| StoreError::Corrupt(format!("trigger {name}")))
}

const COLUMNS: &str =
    "name, function, kind, spec, enabled, created, last_fire, last_error, next_fire";

fn from_row(r: &Row<'_>) -> rusqlite::Result<[Option<String>; 9]> {
    let enabled: bool = r.get("enabled")?;
    Ok([
        r.get("name")?,
        r.get("function")?,
        r.get("kind")?,
        r.get("spec")?,
        Some(if enabled { "1" } else { "0" }.to_string()),
        r.get("created")?,
        r.get("last_fire")?,
        r.get("last_error")?,
        r.get("next_fire")?,
    ])
}

fn decode(raw: [Option<String>; 9]) -> Result<Trigger, StoreError> {
    let [name, function, kind, spec, enabled, created, last_fire, last_error, next_fire] = raw;
    let name = name.unwrap_or_default();
    let corrupt = || StoreError::Corrupt(format!("trigger {name}"));
    let kind = match kind.as_deref() {
        Some("schedule") => TriggerKind::Schedule(
            serde_json::from_str(spec.as_deref().unwrap_or_default()).map_err(|_| corrupt())?,
        ),
        Some("http") => TriggerKind::Http(
            serde_json::from_str(spec.as_deref().unwrap_or_default()).map_err(|_| corrupt())?,
        ),
        Some("files") => TriggerKind::Files(
            serde_json::from_str(spec.as_deref().unwrap_or_default()).map_err(|_| corrupt())?,
        ),
        Some("queue") => TriggerKind::Queue(
            serde_json::from_str(spec.as_deref().unwrap_or_default()).map_err(|_| corrupt())?,
        ),
        _ => return Err(corrupt()),
    };
    let time = |s: Option<String>| s.map(|s| parse_time(&name, &s)).transpose();
    Ok(Trigger {
        function: function.ok_or_else(corrupt)?,
        kind,
        enabled: enabled.as_deref() == Some("1"),
        created: time(created)?.ok_or_else(corrupt)?,
        last_fire: time(last_fire)?,
        last_error,
        next_fire: time(next_fire)?,
        name,
    })
}

fn spec_json(t: &Trigger) -> String {
    match &t.kind {
        TriggerKind::Schedule(s) => serde_json::to_string(s).unwrap_or_default(),
        TriggerKind::Http(h) => serde_json::to_string(h).unwrap_or_default(),
        TriggerKind::Files(s) => serde_json::to_string(s).unwrap_or_default(),
        TriggerKind::Queue(s) => serde_json::to_string(s).unwrap_or_default(),
    }
}

impl Store {
    /// Inserts a new trigger, if its function exists and its name is free.
    pub fn insert_trigger(&self, t: &Trigger) -> Result<(), TriggerError> {
        let conn = self.lock();
        let r = conn.execute(
            "INSERT INTO triggers (name, function, kind, spec, enabled, created, last_fire, \
             last_error, next_fire) \
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, NULL, NULL, ?7 \
             WHERE EXISTS (SELECT 1 FROM functions WHERE name = ?2)",
            params![
                t.name,
                t.function,
                t.kind.label(),
                spec_json(t),
                t.enabled,
                fmt_time(t.created),
                t.next_fire.map(fmt_time),
            ],
        );
        match r {
            Ok(0) => Err(TriggerError::NoFunction(t.function.clone())),
            Ok(_) => {
                self.file_triggers().inserted(&t.function, t.kind.label());
                Ok(())
            }
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(TriggerError::Exists(t.name.clone()))
            }
            Err(e) => Err(StoreError::from(e).into()),
        }
    }

    /// One trigger.
    pub fn get_trigger(&self, name: &str) -> Result<Trigger, TriggerError> {
        let raw = self
            .lock()
            .query_row(
                &format!("SELECT {COLUMNS} FROM triggers WHERE name = ?1"),
                params![name],
                from_row,
            )
            .optional()
            .map_err(StoreError::from)?;
        match raw {
            Some(raw) => Ok(decode(raw)?),
            None => Err(TriggerError::NotFound(name.to_string())),
        }
    }

    /// Every trigger (of one function, if given), by name.
    pub fn list_triggers(&self, function: Option<&str>) -> Result<Vec<Trigger>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM triggers WHERE ?1 IS NULL OR function = ?1 ORDER BY name"
        ))?;
        let rows = stmt.query_map(params![function], from_row)?;
        rows.map(|r| decode(r?)).collect()
    }

    /// Enables or disables a trigger and sets its next fire.
    pub fn set_trigger_enabled(
        &self,
        name: &str,
        enabled: bool,
        next_fire: Option<DateTime<Utc>>,
    ) -> Result<(), TriggerError> {
        let n = self
            .lock()
            .execute(
                "UPDATE triggers SET enabled = ?2, next_fire = ?3 WHERE name = ?1",
                params![name, enabled, next_fire.map(fmt_time)],
            )
            .map_err(StoreError::from)?;
        if n == 0 {
            return Err(TriggerError::NotFound(name.to_string()));
        }
        Ok(())
    }

    /// Sets an enabled trigger's next fire (the scheduler, at start-up).
    pub fn set_trigger_next(
        &self,
        name: &str,
        next_fire: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        self.lock().execute(
            "UPDATE triggers SET next_fire = ?2 WHERE name = ?1 AND enabled = 1",
            params![name, next_fire.map(fmt_time)],
        )?;
        Ok(())
    }

    /// Claims the fire of `scheduled` for an enabled trigger: records it as the last
    /// fire and `next` as the next, only if no fire at or after `scheduled` was
    /// recorded. True when this call claimed it (the fire may then be handed to the
    /// function, once); false when it was already fired, or the trigger is gone or
    /// disabled.
    pub fn claim_fire(
        &self,
        name: &str,
        scheduled: DateTime<Utc>,
        next: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        let at = fmt_time(scheduled);
        let n = self.lock().execute(
            "UPDATE triggers SET last_fire = ?2, next_fire = ?3 \
             WHERE name = ?1 AND enabled = 1 AND (last_fire IS NULL OR last_fire < ?2)",
            params![name, at, next.map(fmt_time)],
        )?;
        Ok(n == 1)
    }

    /// A queue trigger handed messages to its function at `at`: its last fire, and
    /// no last error.
    pub fn record_trigger_delivery(&self, name: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.lock().execute(
            "UPDATE triggers SET last_fire = ?2, last_error = NULL WHERE name = ?1",
            params![name, fmt_time(at)],
        )?;
        Ok(())
    }

    /// Records (Some) or clears (None) a trigger's last error.
    pub fn set_trigger_error(&self, name: &str, error: Option<&str>) -> Result<(), StoreError> {
        self.lock().execute(
            "UPDATE triggers SET last_error = ?2 WHERE name = ?1",
            params![name, error],
        )?;
        Ok(())
    }

    /// Deletes a trigger.
    pub fn delete_trigger(&self, name: &str) -> Result<(), TriggerError> {
        let conn = self.lock();
        let gone: Option<(String, String)> = conn
            .query_row(
                "DELETE FROM triggers WHERE name = ?1 RETURNING function, kind",
                params![name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(StoreError::from)?;
        let Some((function, kind)) = gone else {
            return Err(TriggerError::NotFound(name.to_string()));
        };
        self.file_triggers().deleted(&function, &kind);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Function;
    use crate::triggers::model::{Missed, ScheduleSpec};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn function(name: &str) -> Function {
        Function {
            name: name.into(),
            runtime: "python3.11".into(),
            handler: "h.handler".into(),
            memory_mb: 128,
            timeout_s: 3,
            environment: Default::default(),
            description: String::new(),
            code_sha256: "0".repeat(64),
            code_size: 1,
            last_modified: "2026-12-06T00:00:00Z".into(),
            revision: 1,
            reserved_concurrency: None,
            network: crate::sandbox::NetworkMode::None,
            role: None,
            secret_environment: Default::default(),
            ephemeral_storage_mb: 512,
            layers: Vec::new(),
        }
    }

    fn trigger(name: &str, function: &str) -> Trigger {
        Trigger {
            name: name.into(),
            function: function.into(),
            kind: TriggerKind::Schedule(ScheduleSpec {
                expression: "rate(5 minutes)".into(),
                timezone: None,
                missed: Missed::RunOnce,
            }),
            enabled: true,
            created: at("2026-12-06T10:00:00.250Z"),
            last_fire: None,
            last_error: None,
            next_fire: Some(at("2026-12-06T10:05:00.250Z")),
        }
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("flint.db")).unwrap();
        (dir, s)
    }

    #[test]
    fn the_file_trigger_index_follows_inserts_and_deletes() {
        let (dir, s) = store();
        s.insert(&function("f")).unwrap();
        s.insert(&function("g")).unwrap();
        let files = |name: &str, function: &str| Trigger {
            kind: TriggerKind::Files(serde_json::from_str(r#"{"dir": "/srv/up"}"#).unwrap()),
            ..trigger(name, function)
        };
        s.insert_trigger(&trigger("sched", "f")).unwrap();
        s.insert_trigger(&files("up1", "f")).unwrap();
        // Not read yet: unknown without SQLite; then read from the table.
        assert_eq!(s.cached_has_file_triggers("f"), None);
        assert!(s.has_file_triggers("f").unwrap());
        assert!(!s.has_file_triggers("g").unwrap());
        assert_eq!(s.cached_has_file_triggers("g"), Some(false));
        // Kept up to date by the writers.
        s.insert_trigger(&files("up2", "f")).unwrap();
        s.insert_trigger(&files("g1", "g")).unwrap();
        assert_eq!(s.cached_has_file_triggers("g"), Some(true));
        s.delete_trigger("up1").unwrap();
        assert_eq!(s.cached_has_file_triggers("f"), Some(true));
        s.delete_trigger("up2").unwrap();
        assert_eq!(s.cached_has_file_triggers("f"), Some(false));
        s.delete_trigger("sched").unwrap();
        assert_eq!(s.cached_has_file_triggers("f"), Some(false));
        s.delete("g", true).unwrap();
        assert_eq!(s.cached_has_file_triggers("g"), Some(false));
        // What the table says, read afresh.
        s.insert(&function("g")).unwrap();
        s.insert_trigger(&files("g2", "g")).unwrap();
        let again = Store::open(&dir.path().join("flint.db")).unwrap();
        assert!(!again.has_file_triggers("f").unwrap());
        assert!(again.has_file_triggers("g").unwrap());
        assert_eq!(s.cached_has_file_triggers("g"), Some(true));
    }

    #[test]
    fn insert_get_list_enable_delete() {
        let (_d, s) = store();
        s.insert(&function("f")).unwrap();
        s.insert(&function("g")).unwrap();
        let t = trigger("every5", "f");
        s.insert_trigger(&t).unwrap();
        s.insert_trigger(&trigger("other", "g")).unwrap();
        assert_eq!(s.get_trigger("every5").unwrap(), t);
        assert!(matches!(
            s.insert_trigger(&t),
            Err(TriggerError::Exists(n)) if n == "every5"
        ));
        assert!(matches!(
            s.insert_trigger(&trigger("x", "nope")),
            Err(TriggerError::NoFunction(n)) if n == "nope"
        ));
        assert_eq!(s.list_triggers(None).unwrap().len(), 2);
        assert_eq!(s.list_triggers(Some("g")).unwrap()[0].name, "other");
        s.set_trigger_enabled("every5", false, None).unwrap();
        let off = s.get_trigger("every5").unwrap();
        assert!(!off.enabled && off.next_fire.is_none());
        s.delete_trigger("every5").unwrap();
        assert!(matches!(
            s.get_trigger("every5"),
            Err(TriggerError::NotFound(_))
        ));
        assert!(matches!(
            s.delete_trigger("every5"),
            Err(TriggerError::NotFound(_))
        ));
    }

    #[test]
    fn a_fire_is_claimed_once() {
        let (_d, s) = store();
        s.insert(&function("f")).unwrap();
        s.insert_trigger(&trigger("t", "f")).unwrap();
        let t1 = at("2026-12-06T10:05:00.250Z");
        let t2 = at("2026-12-06T10:10:00.250Z");
        assert!(s.claim_fire("t", t1, Some(t2)).unwrap());
        assert!(!s.claim_fire("t", t1, Some(t2)).unwrap());
        let row = s.get_trigger("t").unwrap();
        assert_eq!((row.last_fire, row.next_fire), (Some(t1), Some(t2)));
        s.set_trigger_enabled("t", false, None).unwrap();
        assert!(!s.claim_fire("t", t2, None).unwrap(), "disabled");
        s.set_trigger_error("t", Some("boom")).unwrap();
        assert_eq!(
            s.get_trigger("t").unwrap().last_error.as_deref(),
            Some("boom")
        );
    }

    #[test]
    fn a_registry_from_release_0a838de_gains_an_empty_triggers_table() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("flint.db");
        let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/release-0a838de/flint.db");
        std::fs::copy(fixture, &db).unwrap();
        let s = Store::open(&db).unwrap();
        assert!(s.list_triggers(None).unwrap().is_empty());
        let f = s.list().unwrap().remove(0);
        let mut t = trigger("from-fixture", &f.name);
        t.enabled = false;
        s.insert_trigger(&t).unwrap();
        assert_eq!(s.list_triggers(Some(&f.name)).unwrap(), [t]);
    }

    #[test]
    fn deleting_a_function_with_triggers_is_refused_unless_forced() {
        let (_d, s) = store();
        s.insert(&function("f")).unwrap();
        s.insert_trigger(&trigger("b", "f")).unwrap();
        s.insert_trigger(&trigger("a", "f")).unwrap();
        let e = s.delete("f", false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "function f has triggers: a, b; delete them first (flint triggers delete NAME) \
             or delete the function with --force, which deletes them too"
        );
        assert_eq!(s.list().unwrap().len(), 1, "nothing deleted");
        s.delete("f", true).unwrap();
        assert!(s.list_triggers(None).unwrap().is_empty());
        assert!(s.list().unwrap().is_empty());
    }
}
