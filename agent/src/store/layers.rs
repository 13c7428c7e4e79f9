//! Layer versions in the registry (migration 7 of [`super::SCHEMA`]).
//!
//! A layer version is a zip bundle in the code store with its metadata, numbered 1,
//! 2, ... per layer name. DeleteLayerVersion only marks the row deleted: the number is
//! never given again, the version can no longer be attached to a function, and the
//! functions (and published versions) that already name it keep running it, because
//! each names its layers with their bundle's sha256 ([`LayerRef`]).

use super::{Store, StoreError};
use rusqlite::{params, OptionalExtension};

/// One entry of a function's ordered layer list, as stored with the function (and
/// frozen with each published version).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerRef {
    pub name: String,
    pub version: u64,
    /// The layer bundle in the code store.
    pub sha256: String,
    /// Size of the zip in bytes (Lambda's `CodeSize`).
    pub code_size: u64,
    /// Bytes its files take unpacked (counts towards the 250 MB limit).
    pub unpacked_size: u64,
}

/// One published layer version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerVersion {
    pub name: String,
    pub version: u64,
    pub code_sha256: String,
    pub code_size: u64,
    pub unpacked_size: u64,
    pub description: String,
    pub compatible_runtimes: Vec<String>,
    /// RFC 3339, UTC.
    pub created: String,
    pub deleted: bool,
}

impl LayerVersion {
    /// The entry a function stores for this version.
    pub fn to_ref(&self) -> LayerRef {
        LayerRef {
            name: self.name.clone(),
            version: self.version,
            sha256: self.code_sha256.clone(),
            code_size: self.code_size,
            unpacked_size: self.unpacked_size,
        }
    }
}

/// What publishing a layer version stores.
#[derive(Debug, Clone)]
pub struct NewLayerVersion {
    pub name: String,
    pub code_sha256: String,
    pub code_size: u64,
    pub unpacked_size: u64,
    pub description: String,
    pub compatible_runtimes: Vec<String>,
    pub created: String,
}

const COLUMNS: &str = "name, version, code_sha256, code_size, unpacked_size, description, \
                       compatible_runtimes, created, deleted";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(LayerVersion, String)> {
    Ok((
        LayerVersion {
            name: r.get("name")?,
            version: r.get::<_, i64>("version")? as u64,
            code_sha256: r.get("code_sha256")?,
            code_size: r.get::<_, i64>("code_size")? as u64,
            unpacked_size: r.get::<_, i64>("unpacked_size")? as u64,
            description: r.get("description")?,
            compatible_runtimes: Vec::new(),
            created: r.get("created")?,
            deleted: r.get::<_, i64>("deleted")? != 0,
        },
        r.get("compatible_runtimes")?,
    ))
}

fn finish(raw: (LayerVersion, String)) -> Result<LayerVersion, StoreError> {
    let (mut l, runtimes) = raw;
    l.compatible_runtimes = serde_json::from_str(&runtimes)
        .map_err(|_| StoreError::Corrupt(format!("layer {}:{}", l.name, l.version)))?;
    Ok(l)
}

impl Store {
    /// Stores a new version of layer `new.name`, numbered one past its last (deleted
    /// versions included), and returns it.
    pub fn publish_layer(&self, new: &NewLayerVersion) -> Result<LayerVersion, StoreError> {
        let runtimes = serde_json::to_string(&new.compatible_runtimes)
            .map_err(|_| StoreError::Corrupt(format!("layer {}", new.name)))?;
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let version: i64 = tx.query_row(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM layers WHERE name = ?1",
            params![new.name],
            |r| r.get(0),
        )?;
        tx.execute(
            "INSERT INTO layers (name, version, code_sha256, code_size, unpacked_size, \
             description, compatible_runtimes, created, deleted) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0)",
            params![
                new.name,
                version,
                new.code_sha256,
                new.code_size as i64,
                new.unpacked_size as i64,
                new.description,
                runtimes,
                new.created
            ],
        )?;
        tx.commit()?;
        Ok(LayerVersion {
            name: new.name.clone(),
            version: version as u64,
            code_sha256: new.code_sha256.clone(),
            code_size: new.code_size,
            unpacked_size: new.unpacked_size,
            description: new.description.clone(),
            compatible_runtimes: new.compatible_runtimes.clone(),
            created: new.created.clone(),
            deleted: false,
        })
    }

    /// One version of a layer, deleted or not; None when it was never published.
    pub fn layer_version(
        &self,
        name: &str,
        version: u64,
    ) -> Result<Option<LayerVersion>, StoreError> {
        let conn = self.lock();
        let raw = conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM layers WHERE name = ?1 AND version = ?2"),
                params![name, version as i64],
                row,
            )
            .optional()?;
        raw.map(finish).transpose()
    }

    /// The live (not deleted) versions of layer `name`, newest first (Lambda's order).
    pub fn layer_versions(&self, name: &str) -> Result<Vec<LayerVersion>, StoreError> {
        self.query_layers(
            &format!(
                "SELECT {COLUMNS} FROM layers WHERE name = ?1 AND deleted = 0 \
                 ORDER BY version DESC"
            ),
            params![name],
        )
    }

    /// The newest live version of every layer that has one, by name.
    pub fn latest_layers(&self) -> Result<Vec<LayerVersion>, StoreError> {
        self.query_layers(
            &format!(
                "SELECT {COLUMNS} FROM layers AS l WHERE deleted = 0 AND version = \
                 (SELECT MAX(version) FROM layers WHERE name = l.name AND deleted = 0) \
                 ORDER BY name"
            ),
            [],
        )
    }

    fn query_layers(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<LayerVersion>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(sql)?;
        let raws = stmt.query_map(params, row)?;
        let mut out = Vec::new();
        for r in raws {
            out.push(finish(r?)?);
        }
        Ok(out)
    }

    /// Marks a layer version deleted; false when there was no live version to delete.
    pub fn delete_layer_version(&self, name: &str, version: u64) -> Result<bool, StoreError> {
        let conn = self.lock();
        let n = conn.execute(
            "UPDATE layers SET deleted = 1 WHERE name = ?1 AND version = ?2 AND deleted = 0",
            params![name, version as i64],
        )?;
        Ok(n > 0)
    }

    /// The ordered layer list of every function and published version that has
    /// layers (the unpacked /opt trees to keep).
    pub fn layer_lists(&self) -> Result<Vec<Vec<LayerRef>>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT layers FROM functions WHERE layers != '[]' \
             UNION ALL SELECT json_extract(config, '$.layers') FROM versions \
             WHERE json_array_length(config, '$.layers') > 0",
        )?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for r in rows {
            let list: Vec<LayerRef> = serde_json::from_str(&r?)
                .map_err(|_| StoreError::Corrupt("a function's layer list".into()))?;
            out.push(list);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(name: &str, sha: &str) -> NewLayerVersion {
        NewLayerVersion {
            name: name.into(),
            code_sha256: sha.into(),
            code_size: 10,
            unpacked_size: 20,
            description: "d".into(),
            compatible_runtimes: vec!["python3.11".into()],
            created: "2026-12-06T00:00:00.000+0000".into(),
        }
    }

    #[test]
    fn numbers_are_never_reused_and_deleted_versions_stay_readable() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("f.db")).unwrap();
        assert_eq!(s.publish_layer(&new("a", "11")).unwrap().version, 1);
        assert_eq!(s.publish_layer(&new("a", "22")).unwrap().version, 2);
        assert_eq!(s.publish_layer(&new("b", "33")).unwrap().version, 1);
        assert!(s.delete_layer_version("a", 2).unwrap());
        assert!(!s.delete_layer_version("a", 2).unwrap());
        assert_eq!(s.publish_layer(&new("a", "44")).unwrap().version, 3);
        let versions: Vec<u64> = s
            .layer_versions("a")
            .unwrap()
            .iter()
            .map(|l| l.version)
            .collect();
        assert_eq!(versions, [3, 1]);
        let gone = s.layer_version("a", 2).unwrap().unwrap();
        assert!(gone.deleted && gone.compatible_runtimes == ["python3.11"]);
        assert!(s.layer_version("a", 9).unwrap().is_none());
        let latest: Vec<(String, u64)> = s
            .latest_layers()
            .unwrap()
            .into_iter()
            .map(|l| (l.name, l.version))
            .collect();
        assert_eq!(latest, [("a".to_string(), 3), ("b".to_string(), 1)]);
    }

    #[test]
    fn a_deleted_layer_keeps_its_bundle_while_a_function_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("f.db")).unwrap();
        let l = s.publish_layer(&new("a", "ab")).unwrap();
        let mut f = super::super::tests::sample("f");
        f.layers = vec![l.to_ref()];
        s.insert(&f).unwrap();
        s.delete_layer_version("a", 1).unwrap();
        assert!(s.code_hashes().unwrap().contains("ab"));
        assert_eq!(s.layer_lists().unwrap(), vec![vec![l.to_ref()]]);
        assert_eq!(s.get("f").unwrap().layers, vec![l.to_ref()]);
        f.layers.clear();
        s.update(&f).unwrap();
        assert!(!s.code_hashes().unwrap().contains("ab"));
        assert!(s.layer_lists().unwrap().is_empty());
    }
}
