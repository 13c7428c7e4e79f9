//! Lambda layers: zip bundles published as numbered versions of a layer name
//! (content-addressed in the code store, [`crate::code`]), attached to a function in
//! order (at most five) and unpacked one over the other into a read-only /opt in its
//! sandbox: on the host and mounted there ([`tree`], the namespace sandbox), or sent as
//! zips that flint-init unpacks (`frames`, the microVM). The registry side is
//! [`crate::store::layers`].

pub mod arn;
mod frames;
pub mod tree;

use crate::code::{check_bundle, CodeError};
use crate::core::Agent;
use crate::store::layers::{LayerRef, LayerVersion, NewLayerVersion};
use crate::store::StoreError;
use std::collections::HashSet;

/// Most layers a function may name (Lambda's).
pub const LAYERS_MAX: usize = 5;
/// Most compatible runtimes a layer version may list (Lambda's).
pub const RUNTIMES_MAX: usize = 15;
/// Longest layer version description (Lambda's).
pub const DESCRIPTION_MAX: usize = 256;

/// Why a layer operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// A layer name outside Lambda's pattern
    #[error("layer name {0:?} is invalid: use 1-140 characters of A-Z, a-z, 0-9, '-' and '_'")]
    InvalidName(String),
    /// Not a layer (version) ARN of this agent
    #[error("{0:?} is not a layer version of this agent: write arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION with this agent's region and account (flint layers versions NAME lists them), or NAME:VERSION")]
    BadArn(String),
    /// More than five layers
    #[error("1 validation error detected: Value at 'layers' failed to satisfy constraint: Member must have length less than or equal to {LAYERS_MAX} (the request names {0} layers)")]
    TooMany(usize),
    /// Two versions of one layer
    #[error("Two different versions of the same layer are not allowed: {0} is named twice; keep one of its versions")]
    Twice(String),
    /// A layer version that was never published, or deleted before it was attached
    #[error("Layer version {0} does not exist. List the versions you can attach with flint layers versions NAME (deleted versions keep running only for the functions that already named them).")]
    NoSuchVersion(String),
    /// GetLayerVersion of a version that does not exist (or was deleted)
    #[error("The resource you requested does not exist: layer version {0}; list them with flint layers versions NAME")]
    NotFound(String),
    /// Code plus layers beyond 250 MB unpacked
    #[error("Function code combined with layers exceeds the maximum allowed size of {max} bytes. The actual size is {total} bytes.", max = crate::limits::CODE_UNZIPPED_MAX)]
    TooLarge { total: u64 },
    /// Too many compatible runtimes or too long a description
    #[error("{0}")]
    Invalid(String),
    /// A bad layer bundle
    #[error(transparent)]
    Code(#[from] CodeError),
    /// The registry failed
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The data directory's disk is below `--min-free-disk-mb`
    #[error(transparent)]
    LowDisk(#[from] crate::disk::LowDisk),
}

/// A layer version to publish.
#[derive(Debug, Clone, Default)]
pub struct NewLayer {
    pub name: String,
    pub zip: Vec<u8>,
    pub description: String,
    pub compatible_runtimes: Vec<String>,
}

/// Now, RFC 3339 UTC with milliseconds (Lambda's CreatedDate).
fn now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    crate::timefmt::rfc3339_millis(now.as_secs(), now.subsec_millis())
}

impl Agent {
    /// The ARN of one layer version on this agent.
    pub fn layer_version_arn(&self, name: &str, version: u64) -> String {
        let c = self.config();
        arn::version_arn(&c.region, &c.account_id, name, version)
    }

    /// The ARN of a layer (no version) on this agent.
    pub fn layer_arn(&self, name: &str) -> String {
        let c = self.config();
        arn::layer_arn(&c.region, &c.account_id, name)
    }

    /// A layer a request names (a name or a layer ARN).
    pub fn layer_name(&self, given: &str) -> Result<String, LayerError> {
        let c = self.config();
        arn::parse_layer(given, &c.region, &c.account_id)
    }

    /// Publishes a new version of a layer. Blocking: SQLite and the code store.
    pub fn publish_layer(&self, new: NewLayer) -> Result<LayerVersion, LayerError> {
        arn::check_name(&new.name)?;
        if new.compatible_runtimes.len() > RUNTIMES_MAX {
            return Err(LayerError::Invalid(format!(
                "1 validation error detected: Value at 'compatibleRuntimes' failed to satisfy \
                 constraint: Member must have length less than or equal to {RUNTIMES_MAX}"
            )));
        }
        if new.description.chars().count() > DESCRIPTION_MAX {
            return Err(LayerError::Invalid(format!(
                "the description is longer than {DESCRIPTION_MAX} characters: shorten it"
            )));
        }
        self.disk().check("PublishLayerVersion")?;
        let info = check_bundle(&new.zip)?;
        // Pinned until the row that references it is committed.
        let pin = self.code().pin(&info.sha256);
        self.code().put(&pin, &new.zip)?;
        let published = self.store().publish_layer(&NewLayerVersion {
            name: new.name,
            code_sha256: info.sha256,
            code_size: info.size,
            unpacked_size: info.unzipped,
            description: new.description,
            compatible_runtimes: new.compatible_runtimes,
            created: now(),
        });
        drop(pin);
        let l = published?;
        tracing::info!(layer = %l.name, version = l.version, "layer version published");
        Ok(l)
    }

    /// The newest live version of every layer. Blocking: SQLite.
    pub fn list_layers(&self) -> Result<Vec<LayerVersion>, LayerError> {
        Ok(self.store().latest_layers()?)
    }

    /// A layer's live versions, newest first. Blocking: SQLite.
    pub fn list_layer_versions(&self, name: &str) -> Result<Vec<LayerVersion>, LayerError> {
        arn::check_name(name)?;
        Ok(self.store().layer_versions(name)?)
    }

    /// One live layer version. Blocking: SQLite.
    pub fn get_layer_version(&self, name: &str, version: u64) -> Result<LayerVersion, LayerError> {
        arn::check_name(name)?;
        match self.store().layer_version(name, version)? {
            Some(l) if !l.deleted => Ok(l),
            _ => Err(LayerError::NotFound(self.layer_version_arn(name, version))),
        }
    }

    /// Deletes a layer version (Lambda's DeleteLayerVersion: no error when there is
    /// none). Functions that name it keep it. Blocking: SQLite.
    pub fn delete_layer_version(&self, name: &str, version: u64) -> Result<(), LayerError> {
        arn::check_name(name)?;
        if self.store().delete_layer_version(name, version)? {
            tracing::info!(layer = %name, version, "layer version deleted");
            self.collect_code();
        }
        Ok(())
    }

    /// The layer list a function asks for (version ARNs, in order), checked: at most
    /// five, each a live version of this agent (or one in `kept`, the function's
    /// current list: a deleted version it already names stays), no layer twice. Every
    /// backend carries layers (mounted, or as zips). Blocking: SQLite.
    pub(crate) fn resolve_layers(
        &self,
        arns: &[String],
        kept: &[LayerRef],
    ) -> Result<Vec<LayerRef>, LayerError> {
        if arns.len() > LAYERS_MAX {
            return Err(LayerError::TooMany(arns.len()));
        }
        let c = self.config();
        let mut seen = HashSet::new();
        let mut out = Vec::with_capacity(arns.len());
        for given in arns {
            let (name, version) = arn::parse_version_arn(given, &c.region, &c.account_id)?;
            if !seen.insert(name.clone()) {
                return Err(LayerError::Twice(self.layer_arn(&name)));
            }
            if let Some(k) = kept.iter().find(|k| k.name == name && k.version == version) {
                out.push(k.clone());
                continue;
            }
            match self.store().layer_version(&name, version)? {
                Some(l) if !l.deleted => out.push(l.to_ref()),
                _ => {
                    return Err(LayerError::NoSuchVersion(
                        self.layer_version_arn(&name, version),
                    ))
                }
            }
        }
        Ok(out)
    }

    /// The /opt tree of `layers` on the host (unpacked now unless it is there), pinned
    /// for as long as the pin lives. Blocking: unpacking.
    pub(crate) fn opt_tree(
        &self,
        layers: &[LayerRef],
    ) -> Result<(std::path::PathBuf, crate::unpacked::UnpackPin), CodeError> {
        let pin = self.unpacked().pin(&tree::tree_key(layers));
        let dir = self.unpacked().ensure_with(&pin, |dir| {
            tree::fill(dir, layers, |l| self.code().get(&l.sha256))
        })?;
        Ok((dir, pin))
    }

    /// The cache keys of every /opt tree a function or published version needs (kept
    /// by unpacked-code garbage collection). Blocking: SQLite.
    pub(crate) fn layer_tree_keys(&self) -> Result<HashSet<String>, StoreError> {
        Ok(self
            .store()
            .layer_lists()?
            .iter()
            .map(|l| tree::tree_key(l))
            .collect())
    }
}
