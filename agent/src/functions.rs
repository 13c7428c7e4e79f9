//! Function management: create, update, read, list and delete, with validation and
//! nothing half-done on failure.

use crate::code::{check_bundle, CodeError};
use crate::core::Agent;
use crate::limits::{MEMORY_DEFAULT_MB, TIMEOUT_DEFAULT_S};
use crate::runtimes::RuntimeError;
use crate::store::{Function, StoreError};
use crate::validate::{self, ValidationError};
use std::collections::{BTreeMap, HashMap};

/// Why a management call failed.
#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    /// Bad setting
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// Bad code bundle
    #[error(transparent)]
    Code(#[from] CodeError),
    /// Unknown runtime
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// Registry failure, not found or already exists
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reservation refused
    #[error(transparent)]
    Reserve(#[from] crate::limiter::ReserveError),
    /// Unknown role, or secrets without an operator key
    #[error(transparent)]
    Role(#[from] crate::roles::RoleError),
    /// The data directory's disk is below `--min-free-disk-mb`
    #[error(transparent)]
    LowDisk(#[from] crate::disk::LowDisk),
    /// A bad layer list
    #[error(transparent)]
    Layer(#[from] crate::layers::LayerError),
}

/// A new function, as requested.
#[derive(Debug, Clone, Default)]
pub struct NewFunction {
    pub name: String,
    pub runtime: String,
    pub handler: String,
    /// 0 means the default.
    pub memory_mb: u32,
    /// 0 means the default.
    pub timeout_s: u32,
    pub environment: HashMap<String, String>,
    pub description: String,
    pub code_zip: Vec<u8>,
    /// "none" or "outbound"; None means flintd's `--network-default`.
    pub network: Option<String>,
    /// Execution role name (or IAM role ARN); None or empty: no role.
    pub role: Option<String>,
    /// Secret environment variables (sealed before they are stored).
    pub secret_environment: HashMap<String, String>,
    /// /tmp size in MB; 0 means the default.
    pub ephemeral_storage_mb: u32,
    /// Layer version ARNs, in order (at most five).
    pub layers: Vec<String>,
}

/// A configuration change; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct ConfigChange {
    pub runtime: Option<String>,
    pub handler: Option<String>,
    pub memory_mb: Option<u32>,
    pub timeout_s: Option<u32>,
    pub environment: Option<HashMap<String, String>>,
    pub description: Option<String>,
    /// "none" or "outbound".
    pub network: Option<String>,
    /// Execution role; `Some("")` removes it.
    pub role: Option<String>,
    /// Replaces every secret environment variable.
    pub secret_environment: Option<HashMap<String, String>>,
    /// /tmp size in MB.
    pub ephemeral_storage_mb: Option<u32>,
    /// Replaces the layer list (version ARNs, in order); empty removes every layer.
    pub layers: Option<Vec<String>>,
}

/// The role a request names: a name or an IAM role ARN; empty means none.
fn role_name(given: Option<&str>) -> Option<String> {
    given
        .map(crate::roles::name_from_arn)
        .filter(|r| !r.is_empty())
        .map(str::to_string)
}

/// Now, RFC 3339 UTC with milliseconds (LastModified).
pub(crate) fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    crate::timefmt::rfc3339_millis(now.as_secs(), now.subsec_millis())
}

impl Agent {
    /// The network of a function created without a setting (`--network-default`).
    pub fn network_default(&self) -> crate::sandbox::NetworkMode {
        self.config().network_default
    }

    fn check_settings(&self, f: &Function) -> Result<(), FunctionError> {
        validate::name(&f.name)?;
        validate::memory_on(f.memory_mb, &self.backend().limits())?;
        validate::timeout(f.timeout_s)?;
        validate::ephemeral_storage(f.ephemeral_storage_mb)?;
        if f.ephemeral_storage_mb != crate::limits::TMP_MB && !self.backend().sized_tmp() {
            return Err(ValidationError::NoEphemeralSize(self.backend().kind()).into());
        }
        validate::handler(&f.handler)?;
        if f.network == crate::sandbox::NetworkMode::Outbound && !self.backend().outbound_network()
        {
            return Err(ValidationError::NoNetwork(self.backend().kind()).into());
        }
        validate::description(&f.description)?;
        validate::environment(&f.environment)?;
        self.runtime(&f.runtime)?;
        if let Some(role) = &f.role {
            self.store().get_role(role)?;
        }
        Ok(())
    }

    /// Checks and seals secret variables for `function`: valid names, none also a
    /// plain variable, an operator key to seal them with.
    fn seal_secret_env(
        &self,
        function: &str,
        plain: &HashMap<String, String>,
        secret: &HashMap<String, String>,
    ) -> Result<BTreeMap<String, String>, FunctionError> {
        validate::environment(secret)?;
        if let Some(k) = secret.keys().find(|k| plain.contains_key(*k)) {
            return Err(ValidationError::EnvTwice(k.clone()).into());
        }
        let mut both = plain.clone();
        both.extend(secret.iter().map(|(k, v)| (k.clone(), v.clone())));
        validate::environment(&both)?;
        Ok(self.role_keys().seal_env(function, secret)?)
    }

    /// Creates a function.
    pub fn create_function(&self, req: NewFunction) -> Result<Function, FunctionError> {
        let mut f = Function {
            name: req.name,
            runtime: req.runtime,
            handler: req.handler,
            memory_mb: if req.memory_mb == 0 {
                MEMORY_DEFAULT_MB
            } else {
                req.memory_mb
            },
            timeout_s: if req.timeout_s == 0 {
                TIMEOUT_DEFAULT_S
            } else {
                req.timeout_s
            },
            environment: req.environment,
            description: req.description,
            code_sha256: String::new(),
            code_size: 0,
            last_modified: now_rfc3339(),
            revision: 1,
            reserved_concurrency: None,
            network: match req.network {
                Some(n) => validate::network(&n)?,
                None => self.network_default(),
            },
            role: role_name(req.role.as_deref()),
            secret_environment: BTreeMap::new(),
            ephemeral_storage_mb: if req.ephemeral_storage_mb == 0 {
                crate::limits::TMP_MB
            } else {
                req.ephemeral_storage_mb
            },
            layers: Vec::new(),
        };
        self.check_settings(&f)?;
        f.layers = self.resolve_layers(&req.layers, &[])?;
        f.secret_environment =
            self.seal_secret_env(&f.name, &f.environment, &req.secret_environment)?;
        match self.store().get(&f.name) {
            Ok(_) => return Err(StoreError::Exists(f.name).into()),
            Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        self.disk().check("CreateFunction")?;
        let info = check_bundle(&req.code_zip)?;
        crate::layers::tree::check_total(info.unzipped, &f.layers)?;
        f.code_sha256 = info.sha256;
        f.code_size = info.size;
        // Pinned until the row referencing it is committed: a concurrent delete of
        // a function with the same code must not collect it in between.
        let pin = self.code().pin(&f.code_sha256);
        self.code().put(&pin, &req.code_zip)?;
        let unpack_pin = self.unpacked().pin(&f.code_sha256);
        let inserted = self.store().insert(&f);
        drop(pin);
        if let Err(e) = inserted {
            self.collect_code();
            return Err(e.into());
        }
        self.unpack_ahead(&unpack_pin, &req.code_zip);
        self.idle().retire(&f.name, Some(f.revision));
        tracing::info!(function = %f.name, runtime = %f.runtime, "function created");
        Ok(f)
    }

    /// The function called `name`. Blocking: SQLite.
    pub fn get_function(&self, name: &str) -> Result<Function, FunctionError> {
        Ok(self.store().get(name)?)
    }

    /// Every function, by name. Blocking: SQLite.
    pub fn list_functions(&self) -> Result<Vec<Function>, FunctionError> {
        Ok(self.store().list()?)
    }

    /// Checks a new code bundle for `name` without storing it (UpdateFunctionCode
    /// with DryRun); returns the function unchanged.
    pub fn check_code(&self, name: &str, zip: &[u8]) -> Result<Function, FunctionError> {
        check_bundle(zip)?;
        self.get_function(name)
    }

    /// Replaces a function's code.
    pub fn update_code(&self, name: &str, zip: &[u8]) -> Result<Function, FunctionError> {
        let mut f = self.store().get(name)?;
        self.disk().check("UpdateFunctionCode")?;
        let info = check_bundle(zip)?;
        crate::layers::tree::check_total(info.unzipped, &f.layers)?;
        let pin = self.code().pin(&info.sha256);
        self.code().put(&pin, zip)?;
        let unpack_pin = self.unpacked().pin(&info.sha256);
        f.code_sha256 = info.sha256;
        f.code_size = info.size;
        f.revision += 1;
        f.last_modified = now_rfc3339();
        let updated = self.store().update(&f);
        drop(pin);
        // Either the old bundle or (when the function was deleted meanwhile) the new
        // one may now be unreferenced.
        self.collect_code();
        updated?;
        self.unpack_ahead(&unpack_pin, zip);
        self.idle().retire(&f.name, Some(f.revision));
        tracing::info!(function = %f.name, revision = f.revision, "code updated");
        Ok(f)
    }

    /// Changes a function's configuration.
    pub fn update_config(&self, name: &str, ch: ConfigChange) -> Result<Function, FunctionError> {
        let mut f = self.store().get(name)?;
        if let Some(v) = ch.runtime {
            f.runtime = v;
        }
        if let Some(v) = ch.handler {
            f.handler = v;
        }
        if let Some(v) = ch.memory_mb {
            f.memory_mb = v;
        }
        if let Some(v) = ch.timeout_s {
            f.timeout_s = v;
        }
        if let Some(v) = ch.environment {
            f.environment = v;
        }
        if let Some(v) = ch.description {
            f.description = v;
        }
        if let Some(v) = ch.network {
            f.network = validate::network(&v)?;
        }
        if let Some(v) = ch.role {
            f.role = role_name(Some(&v));
        }
        if let Some(v) = ch.ephemeral_storage_mb {
            f.ephemeral_storage_mb = v;
        }
        self.check_settings(&f)?;
        let layers_changed = ch.layers.is_some();
        if let Some(arns) = ch.layers {
            f.layers = self.resolve_layers(&arns, &f.layers)?;
            if !f.layers.is_empty() {
                // The stored code's unpacked size, for the 250 MB rule.
                let unzipped = check_bundle(&self.code().get(&f.code_sha256)?)?.unzipped;
                crate::layers::tree::check_total(unzipped, &f.layers)?;
            }
        }
        if let Some(v) = ch.secret_environment {
            f.secret_environment = self.seal_secret_env(&f.name, &f.environment, &v)?;
        } else if let Some(k) = f
            .secret_environment
            .keys()
            .find(|k| f.environment.contains_key(*k))
        {
            return Err(ValidationError::EnvTwice(k.clone()).into());
        }
        f.revision += 1;
        f.last_modified = now_rfc3339();
        self.store().update(&f)?;
        // Instances of the old revision (and so of the old /opt) are retired.
        self.idle().retire(&f.name, Some(f.revision));
        if layers_changed {
            // A deleted layer version or an /opt tree may have lost its last user.
            self.collect_code();
        }
        tracing::info!(function = %f.name, revision = f.revision, "configuration updated");
        Ok(f)
    }

    /// Sets (Some) or removes (None) a function's reserved concurrency.
    pub fn set_concurrency(
        &self,
        name: &str,
        reserved: Option<u32>,
    ) -> Result<Function, FunctionError> {
        let mut f = self.store().get(name)?;
        if let Some(n) = reserved {
            self.limiter().check_reservation(name, n)?;
        }
        f.reserved_concurrency = reserved;
        f.last_modified = now_rfc3339();
        self.store().update(&f)?;
        self.limiter().set_reservation(name, reserved);
        tracing::info!(function = %name, ?reserved, "reserved concurrency set");
        Ok(f)
    }

    /// Deletes a function, its instances, its log and its code if no one else uses it.
    /// Refused while triggers name it, unless `force` (which deletes them too).
    pub fn delete_function(&self, name: &str, force: bool) -> Result<Function, FunctionError> {
        let f = self.store().delete(name, force)?;
        self.triggers_changed();
        self.idle().retire(name, None);
        self.limiter().forget(name);
        self.logs().remove(name);
        // Its event invoke configuration goes with it, as in Lambda; its queued events
        // are dead-lettered when they come due (the function is gone).
        if let Err(e) = self.events().configs().delete_config(name) {
            tracing::warn!(function = %name, error = %e, "event invoke config not removed");
        }
        self.collect_code();
        tracing::info!(function = %name, "function deleted");
        Ok(f)
    }

    /// Unpacks newly stored code for the namespace sandbox's /var/task now, so the
    /// first cold start does not (the pin was taken before the row was written); a
    /// failure only leaves the unpack to that start.
    fn unpack_ahead(&self, pin: &crate::unpacked::UnpackPin, zip: &[u8]) {
        if !self.backend().mounts_code() {
            return;
        }
        if let Err(e) = self.unpacked().ensure(pin, || Ok(zip.to_vec())) {
            tracing::warn!(error = %e, "code not unpacked ahead");
        }
    }

    /// Removes the bundles no function or version references (and no writer has
    /// pinned).
    pub(crate) fn collect_code(&self) {
        let referenced = || match self.store().code_hashes() {
            Ok(keep) => Some(keep),
            Err(e) => {
                tracing::warn!(error = %e, "code garbage collection: registry unreadable");
                None
            }
        };
        if let Err(e) = self.code().collect_garbage(referenced) {
            tracing::warn!(error = %e, "code garbage collection");
        }
        // Unpacked directories: the same rule (plus the /opt trees of layer lists),
        // and a running instance pins its own.
        let unpacked = || {
            let mut keep = referenced()?;
            match self.layer_tree_keys() {
                Ok(trees) => keep.extend(trees),
                Err(e) => {
                    tracing::warn!(error = %e, "code garbage collection: registry unreadable");
                    return None;
                }
            }
            Some(keep)
        };
        match self.unpacked().collect_garbage(unpacked) {
            Ok(n) if n > 0 => tracing::info!(removed = n, "unpacked code directories removed"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "unpacked code garbage collection"),
        }
        // Removed directories' mount templates would hold their files.
        crate::sandbox::namespace::code_mount::drop_stale_templates();
    }
}

/// Lambda's ARN of a function: `arn:aws:lambda:REGION:ACCOUNT:function:NAME`.
pub fn arn_in(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:lambda:{region}:{account}:function:{name}")
}

impl Agent {
    /// The ARN of function `name` on this agent (`--region`, `--account-id`), the same
    /// on every front end and in the function's context.
    pub fn arn(&self, name: &str) -> String {
        arn_in(&self.config().region, &self.config().account_id, name)
    }
}
