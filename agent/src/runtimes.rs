//! The runtimes this host can run: one per image built by images/build-rootfs.sh,
//! described by the image's runtime.json. Adding a runtime is adding a recipe.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Runtime lookup failures.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// Unknown runtime name
    #[error(
        "unknown runtime {name:?}: {why}this host offers {available}; any other language runs \
         on runtime \"provided\" (alias provided.al2023): put an executable named bootstrap in \
         the bundle that speaks the Lambda Runtime API"
    )]
    Unknown {
        name: String,
        /// Why a runtime Lambda has is missing here ("" when nothing is known about it).
        why: &'static str,
        available: String,
    },
    /// Images directory unreadable
    #[error("cannot read runtime images in {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What an image's runtime.json says.
#[derive(Debug, Clone, Deserialize)]
pub struct RuntimeManifest {
    pub name: String,
    /// The runtime process flint-init starts (argv).
    pub bootstrap: Vec<String>,
    #[serde(default)]
    pub description: String,
    /// Other names for the same runtime (for example provided.al2023).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The runtime can start before its function is known (FLINT_PRESTART, waiting on
    /// GET /flint/v1/function), so warm-pool sandboxes have it running already.
    #[serde(default)]
    pub prestart: bool,
    /// The pre-started runtime, waiting for its function, has seeded no random
    /// generator that the function's instances restored from one snapshot would then
    /// share (a fresh kernel seed cannot reach one), so a microVM snapshot of that
    /// function may be taken with it waiting (vmm/README.md). Only with `prestart`.
    #[serde(default)]
    pub snapshot_runtime: bool,
}

impl RuntimeManifest {
    /// True when microVM snapshots of this runtime are taken with it started and
    /// waiting for its function ([`Self::snapshot_runtime`] of a `prestart` runtime).
    pub fn snapshots_with_runtime(&self) -> bool {
        self.prestart && self.snapshot_runtime
    }
}

/// One runnable runtime.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub manifest: RuntimeManifest,
    /// The read-only root file system tree.
    pub rootfs: PathBuf,
}

/// All runtimes found in the images directory.
#[derive(Debug, Clone, Default)]
pub struct Runtimes {
    by_name: BTreeMap<String, Runtime>,
}

impl Runtimes {
    /// Scans `images_dir/<name>/{runtime.json,rootfs}`. Folders without both are skipped.
    pub fn scan(images_dir: &Path) -> Result<Self, RuntimeError> {
        let io = |source| RuntimeError::Io {
            path: images_dir.to_path_buf(),
            source,
        };
        let mut by_name = BTreeMap::new();
        for entry in std::fs::read_dir(images_dir).map_err(io)? {
            let dir = entry.map_err(io)?.path();
            let (manifest_path, rootfs) = (dir.join("runtime.json"), dir.join("rootfs"));
            if !rootfs.is_dir() {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&manifest_path) else {
                continue;
            };
            let manifest: RuntimeManifest = match serde_json::from_str(&text) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(path = %manifest_path.display(), error = %e, "skipping unreadable runtime manifest");
                    continue;
                }
            };
            if manifest.bootstrap.is_empty() {
                tracing::warn!(path = %manifest_path.display(), "skipping runtime without bootstrap");
                continue;
            }
            let rt = Runtime { manifest, rootfs };
            for alias in rt.manifest.aliases.clone() {
                by_name.insert(alias, rt.clone());
            }
            by_name.insert(rt.manifest.name.clone(), rt);
        }
        Ok(Self { by_name })
    }

    /// Looks a runtime up by name or alias.
    pub fn get(&self, name: &str) -> Result<&Runtime, RuntimeError> {
        self.by_name.get(name).ok_or_else(|| RuntimeError::Unknown {
            name: name.chars().take(64).collect(),
            why: missing_reason(name),
            available: if self.by_name.is_empty() {
                "no runtime (build images with images/build-rootfs.sh)".to_string()
            } else {
                self.names().join(", ")
            },
        })
    }

    /// Every name and alias, sorted.
    pub fn names(&self) -> Vec<String> {
        self.by_name.keys().cloned().collect()
    }

    /// True when no runtime is available.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// Why one of Lambda's runtimes has no image here, for the runtimes that cannot have one.
fn missing_reason(name: &str) -> &'static str {
    if name.starts_with("dotnet") {
        "Lambda's .NET runtimes cannot be built here: .NET is not in this host's package sources (Debian bookworm); "
    } else if name.starts_with("powershell") {
        "PowerShell cannot be built here: it is not in this host's package sources (Debian bookworm); "
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_manifests_and_aliases() {
        let dir = tempfile::tempdir().unwrap();
        let py = dir.path().join("python3.11");
        std::fs::create_dir_all(py.join("rootfs")).unwrap();
        std::fs::write(
            py.join("runtime.json"),
            r#"{"name":"python3.11","bootstrap":["/var/runtime/bootstrap"]}"#,
        )
        .unwrap();
        let custom = dir.path().join("provided");
        std::fs::create_dir_all(custom.join("rootfs")).unwrap();
        std::fs::write(
            custom.join("runtime.json"),
            r#"{"name":"provided","bootstrap":["/var/task/bootstrap"],"aliases":["provided.al2023"]}"#,
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("half-built")).unwrap();
        let rts = Runtimes::scan(dir.path()).unwrap();
        assert_eq!(rts.names(), ["provided", "provided.al2023", "python3.11"]);
        assert_eq!(
            rts.get("provided.al2023").unwrap().manifest.bootstrap,
            ["/var/task/bootstrap"]
        );
        let err = rts.get("cobol").unwrap_err().to_string();
        assert!(err.contains("python3.11"), "{err}");
        assert!(
            err.contains("\"provided\""),
            "how to host any language: {err}"
        );
        for name in ["dotnet8", "dotnet6", "powershell"] {
            let err = rts.get(name).unwrap_err().to_string();
            assert!(err.contains("not in this host's package sources"), "{err}");
            assert!(
                err.contains("this host offers provided, provided.al2023, python3.11"),
                "{err}"
            );
            assert!(err.contains("executable named bootstrap"), "{err}");
        }
    }

    #[test]
    fn every_recipe_in_the_repository_is_a_valid_catalogue_entry() {
        let recipes = Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/runtimes");
        let mut prestart = BTreeMap::new();
        let mut in_snapshot = BTreeMap::new();
        for entry in std::fs::read_dir(&recipes).unwrap() {
            let dir = entry.unwrap().path();
            let text = std::fs::read_to_string(dir.join("runtime.json")).unwrap();
            let m: RuntimeManifest =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            assert_eq!(
                Some(m.name.as_str()),
                dir.file_name().and_then(|n| n.to_str())
            );
            assert!(m.bootstrap[0].starts_with('/'), "{m:?}");
            in_snapshot.insert(m.name.clone(), m.snapshots_with_runtime());
            prestart.insert(m.name, m.prestart);
        }
        assert_eq!(prestart.get("nodejs18.x"), Some(&true), "{prestart:?}");
        assert_eq!(prestart.get("python3.11"), Some(&true), "{prestart:?}");
        assert_eq!(prestart.get("provided"), Some(&false), "{prestart:?}");
        assert_eq!(prestart.get("ruby3.2"), Some(&true), "{prestart:?}");
        // The JVM takes on its function's environment at hand-over (Environment.java).
        assert_eq!(prestart.get("java17"), Some(&true), "{prestart:?}");
        // Snapshotted waiting: the JVM and Python runtimes seed no generator before
        // their function (images/tests checks Python's imports), Ruby's seeds its
        // default Random again when it gets its function. V8 seeds Math.random at start
        // and JavaScript cannot seed it again: Node.js instances would share it.
        let waiting: Vec<&str> = in_snapshot
            .iter()
            .filter(|(_, w)| **w)
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(
            waiting,
            ["java17", "python3.11", "ruby3.2"],
            "{in_snapshot:?}"
        );
    }

    #[test]
    fn a_runtime_is_snapshotted_waiting_only_if_it_prestarts() {
        let m = |json: &str| serde_json::from_str::<RuntimeManifest>(json).unwrap();
        let both = m(r#"{"name":"a","bootstrap":["/b"],"prestart":true,"snapshot_runtime":true}"#);
        assert!(both.snapshots_with_runtime());
        let no_prestart = m(r#"{"name":"a","bootstrap":["/b"],"snapshot_runtime":true}"#);
        assert!(!no_prestart.snapshots_with_runtime());
        let default = m(r#"{"name":"a","bootstrap":["/b"],"prestart":true}"#);
        assert!(!default.snapshots_with_runtime());
    }
}
