//! What a file-event trigger adds to its function's sandboxes: its directory,
//! bind-mounted read-only at `/mnt/flint/<trigger>` (flint-init makes the mount
//! before the sandbox's root is sealed), and environment variables naming it:
//! `FLINT_FILES_ROOT=/mnt/flint` always, and `FLINT_FILES_DIR` (the one directory)
//! when the function has exactly one file-event trigger.
//!
//! Pre-started pool sandboxes are generic (made before anyone knows their function),
//! so a function with such a mount is always started in a sandbox made for it.

use super::spec::{mount_path, MOUNT_ROOT};
use crate::core::Agent;
use crate::sandbox::RoBind;
use crate::store::StoreError;
use crate::triggers::model::TriggerKind;
use std::collections::HashMap;
use std::path::PathBuf;

impl Agent {
    /// The read-only mounts of `function`'s file-event triggers (enabled or not)
    /// whose directories exist now.
    pub(crate) fn files_mounts(&self, function: &str) -> Result<Vec<RoBind>, StoreError> {
        let mut out = Vec::new();
        if !self.store().has_file_triggers(function)? {
            return Ok(out);
        }
        for t in self.store().list_triggers(Some(function))? {
            let TriggerKind::Files(spec) = &t.kind else {
                continue;
            };
            if !std::path::Path::new(&spec.dir).is_dir() {
                tracing::warn!(trigger = %t.name, dir = %spec.dir, "watched directory missing: not mounted in the sandbox");
                continue;
            }
            out.push(RoBind {
                host: PathBuf::from(&spec.dir),
                guest: PathBuf::from(mount_path(&t.name)),
            });
        }
        Ok(out)
    }

    /// [`files_mounts`](Self::files_mounts) when that needs no SQLite: none, for a
    /// function known to have no file-event triggers.
    pub(crate) fn files_mounts_cached(&self, function: &str) -> Option<Vec<RoBind>> {
        (self.store().cached_has_file_triggers(function) == Some(false)).then(Vec::new)
    }

    /// Retires `function`'s idle instances: its mounts changed (a file-event trigger
    /// was created or deleted), so new ones are made with the current set.
    pub(crate) fn files_mounts_changed(&self, function: &str) {
        if let Ok(f) = self.store().get(function) {
            self.idle().retire(&f.name, Some(f.revision));
        }
    }
}

/// Adds the variables naming the mounts to a function's environment.
pub fn add_env(env: &mut HashMap<String, String>, mounts: &[RoBind]) {
    if mounts.is_empty() {
        return;
    }
    env.insert("FLINT_FILES_ROOT".into(), MOUNT_ROOT.into());
    if let [one] = mounts {
        env.insert(
            "FLINT_FILES_DIR".into(),
            one.guest.to_string_lossy().into_owned(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_mount_is_named_in_the_environment() {
        let mut env = HashMap::new();
        add_env(&mut env, &[]);
        assert!(env.is_empty());
        let m = |n: &str| RoBind {
            host: "/srv/x".into(),
            guest: PathBuf::from(mount_path(n)),
        };
        add_env(&mut env, &[m("uploads")]);
        assert_eq!(env["FLINT_FILES_DIR"], "/mnt/flint/uploads");
        assert_eq!(env["FLINT_FILES_ROOT"], "/mnt/flint");
        let mut env = HashMap::new();
        add_env(&mut env, &[m("a"), m("b")]);
        assert!(!env.contains_key("FLINT_FILES_DIR"));
    }
}
