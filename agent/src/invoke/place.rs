//! Placement: where an invocation runs. An idle instance of its function (a warm
//! start); else, once the start scheduler admits a cold start, a pre-started sandbox
//! from the sandbox pool bound to the function; else a new sandbox.

use super::session::{Binding, CodeMount, Session, StartError, Started};
use super::{InvokeError, Timings};
use crate::code::CodeError;
use crate::core::Agent;
use crate::limiter::Throttle;
use crate::limits::{INIT_TIMEOUT_S, TMP_MB};
use crate::pools::key::PoolKey;
use crate::pools::occupancy::{Guard, Phase};
use crate::pools::prestart::{prepare_message, RefillTicket};
use crate::runtimes::Runtime;
use crate::sandbox::{new_sandbox_id, SandboxSpec, WaitingRuntime};
use crate::start_gate::StartSlot;
use crate::store::Function;
use flint_proto::init::Configure;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

/// Where the invocation will run.
pub(super) enum Placed {
    /// An instance, with the output of its init phase (empty when warm) and, for a
    /// cold start, its count as starting (dropped once it counts as busy).
    Ready {
        session: Box<Session>,
        init_log: Vec<u8>,
        starting: Option<Guard>,
        /// A pool hit's refill, held until its first invocation ends.
        refill: Option<RefillTicket>,
    },
    /// A cold start whose init failed (a function error, reported as such).
    InitFailed(super::session::InitFailure),
}

impl Agent {
    /// An instance of `f` (its `version`) for one invocation; `timings` gets the cold
    /// start's phases.
    pub(super) async fn place(
        self: &Arc<Self>,
        f: &Function,
        version: &str,
        timings: &mut Timings,
    ) -> Result<Placed, InvokeError> {
        let revision = instance_revision(f, version);
        if let Some(session) = self.idle().take(&f.name, version, revision) {
            return Ok(Placed::Ready {
                session: Box::new(session),
                init_log: Vec::new(),
                starting: None,
                refill: None,
            });
        }
        let starting = self
            .occupancy()
            .enter(&f.name, Phase::Starting, f.memory_mb);
        let slot = self
            .start_gate()
            .enter()
            .await
            .map_err(|t| self.refuse_start(f, t))?;
        let (started, refill) = self.start_instance(f, version, &slot).await?;
        match started {
            Started::Ready(mut session) => {
                timings.cold_start = true;
                timings.pool_hit = session.pool_hit();
                timings.start = session.start_timings();
                timings.init_duration_ns = session.init_duration().as_nanos() as u64;
                let init_log = session.take_output();
                Ok(Placed::Ready {
                    session: Box::new(session),
                    init_log,
                    starting: Some(starting),
                    refill,
                })
            }
            Started::InitFailed(failure) => Ok(Placed::InitFailed(failure)),
        }
    }

    /// A cold start the start gate refused: logged and counted.
    fn refuse_start(&self, f: &Function, t: Throttle) -> InvokeError {
        tracing::info!(error = %t, "cold start refused");
        self.record_throttle(&f.name, t.name());
        t.into()
    }

    /// A new instance of `f`: from the sandbox pool when it has a sandbox ready (with
    /// the ticket that holds the pool's refill back while the hit is served), else
    /// from a sandbox made now.
    async fn start_instance(
        self: &Arc<Self>,
        f: &Function,
        version: &str,
        slot: &StartSlot,
    ) -> Result<(Started, Option<RefillTicket>), InvokeError> {
        let rt = self.runtime(&f.runtime)?;
        let init_timeout = Duration::from_secs(INIT_TIMEOUT_S);
        let err = |source: StartError| InvokeError::Sandbox {
            function: f.name.clone(),
            source,
        };
        let key = PoolKey {
            runtime: rt.manifest.name.clone(),
            memory_mb: f.memory_mb,
            network: f.network,
        };
        // A function with mounts (file-event triggers) or interpreter start options
        // (JAVA_TOOL_OPTIONS...) needs a sandbox made for it; so does a /tmp size other
        // than the pool's, unless the backend can hand a pre-started sandbox a /tmp of
        // that size with Configure.
        let ro_binds = match self.files_mounts_cached(&f.name) {
            Some(none) => none,
            None => {
                let name = f.name.clone();
                self.blocking(move |a| a.files_mounts(&name).map_err(InvokeError::from))
                    .await?
            }
        };
        let start_options = crate::pools::key::sets_start_options(
            f.environment.keys().chain(f.secret_environment.keys()),
        );
        let other_tmp = f.ephemeral_storage_mb != TMP_MB;
        let pool = if ro_binds.is_empty()
            && !start_options
            && (!other_tmp || self.backend().sized_tmp())
        {
            self.sandbox_pool().take(&key)
        } else {
            None
        };
        if let Some(pre) = pool {
            let refill = self.sandbox_pool().refill_after();
            let mut binding = self.binding(f, version, &rt).await?;
            if other_tmp {
                let mb = f.ephemeral_storage_mb;
                let tmp = self
                    .blocking(move |a| a.backend().tmp_for_pool_hit(mb))
                    .await;
                binding.tmp_mount = Some(tmp.map_err(|e| err(StartError::Sandbox(e)))?);
            }
            match Session::bind(pre, binding, init_timeout).await {
                Ok(started) => return Ok((started, Some(refill))),
                Err(e) => {
                    tracing::warn!(error = %e, "pre-started sandbox unusable; starting a new one");
                }
            }
        }
        self.start_gate()
            .room_for_sandbox(slot)
            .await
            .map_err(|t| self.refuse_start(f, t))?;
        // A runtime that may wait in a snapshot does so for the functions that could
        // have taken a pool sandbox (the same Prepare serves them).
        let waiting_runtime = (rt.manifest.snapshots_with_runtime()
            && ro_binds.is_empty()
            && !start_options
            && !other_tmp)
            .then(|| WaitingRuntime {
                prepare: prepare_message(&rt, f.memory_mb, TMP_MB),
                function: f.name.clone(),
            });
        let sandbox = SandboxSpec {
            id: new_sandbox_id(),
            rootfs: rt.rootfs.clone(),
            memory_mb: f.memory_mb,
            tmp_mb: f.ephemeral_storage_mb,
            network: f.network,
            ro_binds,
            waiting_runtime,
        };
        let mut binding = self.binding(f, version, &rt).await?;
        crate::triggers::files::mounts::add_env(
            &mut binding.configure.environment,
            &sandbox.ro_binds,
        );
        Session::start(self.backend().as_ref(), &sandbox, binding, init_timeout)
            .await
            .map(|started| (started, None))
            .map_err(err)
    }

    /// What flint-init needs to make a sandbox an instance of `f` (the code zip is
    /// read off the async workers).
    async fn binding<'f>(
        self: &Arc<Self>,
        f: &'f Function,
        version: &str,
        rt: &Runtime,
    ) -> Result<Binding<'f>, InvokeError> {
        let (name, sha) = (f.name.clone(), f.code_sha256.clone());
        let mounts_code = self.backend().mounts_code();
        let layers = f.layers.clone();
        // The layers reach the sandbox as a mount of their tree on the host, or (a
        // backend that cannot mount it) as zips flint-init unpacks; never not at all.
        // No blocking hop for the common function without layers.
        let (opt_mount, layer_frames) = if layers.is_empty() {
            (None, Vec::new())
        } else {
            self.blocking(move |agent| {
                if !mounts_code {
                    return Ok::<_, InvokeError>((None, agent.layer_frames(&layers)?));
                }
                let (dir, pin) = agent.opt_tree(&layers).map_err(InvokeError::from)?;
                Ok((Some(CodeMount { dir, pin }), Vec::new()))
            })
            .await?
        };
        let (code_zip, code_mount) = match self.unpacked_mount(mounts_code, &sha) {
            Some(ready) => (Vec::new(), Some(ready)),
            None => {
                self.blocking(move |agent| agent.code_for_start(&name, &sha, mounts_code))
                    .await?
            }
        };
        let role = self.role_binding(f)?;
        let mut environment = f.environment.clone();
        environment.extend(self.role_keys().open_env(&f.name, &f.secret_environment)?);
        let configure = Configure {
            function_name: f.name.clone(),
            function_version: version.to_string(),
            handler: f.handler.clone(),
            memory_mb: f.memory_mb,
            timeout_s: f.timeout_s,
            environment,
            code_zip,
            code_mount: code_mount.is_some(),
            opt_mount: opt_mount.is_some(),
            layer_count: layer_frames.len() as u32,
            bootstrap: rt.manifest.bootstrap.clone(),
            runtime: rt.manifest.name.clone(),
            function_arn: self.arn(&f.name),
            tmp_mb: f.ephemeral_storage_mb,
            log_group: format!("/flint/lambda/{}", f.name),
            log_stream: String::new(),
            region: self.config().region.clone(),
            credentials: role.credentials,
            credentials_auth_token: role.auth_token,
            // Set by Session::bind when a /tmp goes with it.
            tmp_mount: false,
        };
        Ok(Binding {
            configure,
            function: &f.name,
            version: version.to_string(),
            revision: instance_revision(f, version),
            calls: role.calls,
            retire_at: role.retire_at,
            code_mount,
            opt_mount,
            layer_frames,
            tmp_mount: None,
        })
    }

    /// The code's mount when the backend mounts code and the bundle is unpacked
    /// already (every start of it after the first): no blocking hop.
    fn unpacked_mount(&self, mounts_code: bool, sha: &str) -> Option<CodeMount> {
        if !mounts_code {
            return None;
        }
        // Pinned before it is looked at: a collection cannot remove it between.
        let pin = self.unpacked().pin(sha);
        let dir = self.unpacked().unpacked(&pin)?;
        Some(CodeMount { dir, pin })
    }

    /// The code of `name` (bundle `sha`) for a start: the zip, or for a backend that
    /// mounts code its unpacked directory, unpacked first if need be. Blocking.
    fn code_for_start(
        &self,
        name: &str,
        sha: &str,
        mounts_code: bool,
    ) -> Result<(Vec<u8>, Option<CodeMount>), InvokeError> {
        let read = || match self.code().get(sha) {
            Ok(z) => Ok(z),
            // Deleted (or its code replaced) since this invocation read it: a deleted
            // function is NOT_FOUND, as if the call had come a moment later.
            Err(CodeError::Missing(sha)) => match self.store().get(name) {
                Ok(_) => Err(InvokeError::from(CodeError::Missing(sha))),
                Err(e) => Err(InvokeError::from(e)),
            },
            Err(e) => Err(InvokeError::from(e)),
        };
        if !mounts_code {
            return Ok((read()?, None));
        }
        let pin = self.unpacked().pin(sha);
        let mut failed = None;
        let dir = self.unpacked().ensure(&pin, || {
            read().map_err(|e| {
                failed = Some(e);
                CodeError::Missing(sha.to_string())
            })
        });
        match (dir, failed) {
            (Ok(dir), _) => Ok((Vec::new(), Some(CodeMount { dir, pin }))),
            (Err(_), Some(e)) => Err(e),
            (Err(e), None) => Err(InvokeError::from(e)),
        }
    }
}

/// What an idle instance must have been configured for to serve `f` at `version`:
/// $LATEST's revision, or a fingerprint of a published version's snapshot (a function
/// deleted and created again numbers its versions from 1 again: an instance of the old
/// version 1 still running then must not serve the new one).
pub(crate) fn instance_revision(f: &Function, version: &str) -> u64 {
    if version == flint_proto::lambda::LATEST {
        return f.revision;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (&f.last_modified, &f.code_sha256, f.revision).hash(&mut h);
    h.finish()
}
