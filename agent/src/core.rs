//! The agent's state, shared by every API front end: the registry, the code store,
//! the runtimes, the sandbox backend, the idle instances and the sandbox pool.

use crate::code::CodeStore;
use crate::config::{Backend, Config};
use crate::limiter::Limiter;
use crate::logs::Logs;
use crate::metering::{Meter, MeterError};
use crate::metrics::Metrics;
use crate::observe::{InvocationObserver, InvocationRecord};
use crate::pools::idle::IdleInstances;
use crate::pools::occupancy::Occupancy;
use crate::pools::prestart::SandboxPool;
use crate::runtimes::{Runtime, RuntimeError, Runtimes};
use crate::sandbox::microvm::select::choose_here;
use crate::sandbox::microvm::{MicroVmBackend, MicroVmConfig};
use crate::sandbox::namespace::NamespaceBackend;
use crate::sandbox::SandboxBackend;
use crate::start_gate::StartGate;
use crate::store::Store;
use crate::triggers::state::TriggerState;
use std::sync::{Arc, RwLock};

/// Failures opening the agent's state.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Data directory problems
    #[error("data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// Registry problems
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Code store problems
    #[error(transparent)]
    Code(#[from] crate::code::CodeError),
    /// Runtime images problems
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// Metering database problems
    #[error(transparent)]
    Meter(#[from] MeterError),
    /// A setting the sandbox backend cannot honour (`--pool-warm`)
    #[error(transparent)]
    Invalid(#[from] crate::validate::ValidationError),
    /// Event queue problems
    #[error(transparent)]
    Events(#[from] crate::events::QueueError),
    /// The role signing key cannot be used
    #[error(transparent)]
    RoleKey(#[from] crate::roles::token::TokenError),
    /// The operator key cannot be used
    #[error(transparent)]
    SecretsKey(#[from] crate::secrets::KeyError),
    /// The webhook client cannot be set up (its CA file)
    #[error(transparent)]
    Webhook(#[from] crate::events::webhook::http::WebhookError),
}

/// Everything an API call works on. Its fields are private: API handlers call the
/// domain methods (`functions.rs`, `invoke/`, `node.rs`), which reach the parts
/// through the crate-private accessors below.
pub struct Agent {
    config: Config,
    store: Store,
    code: CodeStore,
    /// Bundles unpacked once per hash for the namespace sandbox's /var/task.
    unpacked: crate::unpacked::UnpackCache,
    logs: Logs,
    /// Idle instances per function (warm starts).
    idle: Arc<IdleInstances>,
    backend: Arc<dyn SandboxBackend>,
    limiter: Arc<Limiter>,
    /// Stores every invocation for usage reports.
    meter: Arc<Meter>,
    /// Prometheus counters, histograms and gauges.
    metrics: Arc<Metrics>,
    /// Pre-started generic sandboxes (the warm pool of `--pool-*`).
    sandbox_pool: Arc<SandboxPool>,
    occupancy: Arc<Occupancy>,
    /// Admits cold starts a few at a time.
    start_gate: StartGate,
    /// The durable queue of asynchronous invocations and its dispatcher.
    events: Arc<crate::events::dispatcher::Dispatcher>,
    observers: RwLock<Vec<Arc<dyn InvocationObserver>>>,
    runtimes: RwLock<Runtimes>,
    /// The trigger scheduler's wake-up and counters.
    trigger_state: Arc<TriggerState>,
    /// The file-event watchers' wake-up and counters.
    files: Arc<crate::triggers::files::state::FilesState>,
    /// Role credentials' signing key and the secrets' operator key.
    role_keys: crate::roles::keys::RoleKeys,
    /// The data directory's free-space floor and use (`disk/`).
    disk: Arc<crate::disk::Disk>,
}

impl Agent {
    /// Opens the agent with the sandbox backend `config` asks for (or, for `auto`,
    /// the one this host can run).
    pub fn open(config: Config) -> Result<Arc<Self>, OpenError> {
        let backend = choose_backend(&config);
        Self::open_with(config, backend)
    }

    /// Opens the data directory, the database and the images with `backend` making
    /// the sandboxes; starts the reaper and the sandbox pool.
    pub fn open_with(
        config: Config,
        backend: Arc<dyn SandboxBackend>,
    ) -> Result<Arc<Self>, OpenError> {
        let data = &config.data_dir;
        std::fs::create_dir_all(data).map_err(|source| OpenError::DataDir {
            path: data.clone(),
            source,
        })?;
        let store = Store::open(&data.join("flint.db"))?;
        let code = CodeStore::open(&data.join("code"))?;
        let unpacked = crate::unpacked::UnpackCache::open(&data.join("unpacked"))?;
        let logs =
            Logs::open(&data.join("logs"), config.function_log_max_bytes).map_err(|source| {
                OpenError::DataDir {
                    path: data.join("logs"),
                    source,
                }
            })?;
        let runtimes = Runtimes::scan(&config.images_dir)?;
        if runtimes.is_empty() {
            tracing::warn!(images = %config.images_dir.display(), "no runtime images: run images/build-rootfs.sh");
        } else {
            tracing::info!(runtimes = ?runtimes.names(), "runtimes available");
        }
        tracing::info!(backend = backend.kind(), "sandbox backend ready");
        crate::validate::pool_warm(config.sandbox_pool.floors.keys(), &backend.limits())?;
        // Functions stored under another backend that this one cannot run: said once
        // here (their invocations fail with the backend's reason).
        for f in store.list()? {
            if let Err(e) = crate::validate::memory_on(f.memory_mb, &backend.limits()) {
                tracing::warn!(function = %f.name, "cannot run on this backend: {e}");
            }
        }
        let occupancy = Occupancy::new();
        let idle = IdleInstances::new(config.keep_alive, config.freeze_after, occupancy.clone());
        idle.spawn_reaper();
        idle.spawn_freezer();
        let limiter = Limiter::new(config.concurrency_limit, config.function_rate_limit);
        let meter = Meter::open(&data.join("metering.db"), config.prices)?;
        if let Some(keep) = config.metering_retention {
            meter.keep_for(&data.join("metering.db"), keep)?;
        }
        let disk = Arc::new(crate::disk::Disk::new(data, config.min_free_disk_mb));
        let metrics = Metrics::new();
        let trigger_state = TriggerState::new(&metrics);
        let files = crate::triggers::files::state::FilesState::new(&metrics);
        let sandbox_pool = SandboxPool::new(
            config.sandbox_pool.clone(),
            backend.clone(),
            occupancy.clone(),
        );
        let start_gate = StartGate::new(
            config.parallel_starts,
            config.start_queue_wait,
            config.start_min_free_mb,
        );
        tracing::info!(
            parallel = config.parallel_starts,
            queue_ms = config.start_queue_wait.as_millis() as u64,
            min_free_mb = config.start_min_free_mb,
            "start scheduler"
        );
        let queue = Arc::new(crate::events::sqlite::SqliteQueue::open(
            &data.join("events.db"),
        )?);
        let events = crate::events::dispatcher::Dispatcher::new(
            queue.clone(),
            queue.clone(),
            queue,
            config.events,
        )?;
        let role_keys = crate::roles::keys::RoleKeys {
            signing: crate::roles::token::SigningKey::load_or_create(data)?,
            operator: crate::secrets::OperatorKey::load(config.secrets_key_file.as_deref())?,
            ttl: config.credentials_ttl,
        };
        if role_keys.operator.is_none() {
            tracing::info!(
                "no operator key (--secrets-key-file, FLINT_SECRETS_KEY): secrets are refused"
            );
        }
        let agent = Arc::new(Self {
            role_keys,
            config,
            store,
            code,
            unpacked,
            logs,
            idle,
            backend,
            limiter,
            meter,
            metrics,
            sandbox_pool,
            occupancy,
            start_gate,
            events,
            observers: RwLock::new(Vec::new()),
            runtimes: RwLock::new(runtimes),
            trigger_state,
            files,
            disk,
        });
        let weak = Arc::downgrade(&agent);
        let catalogue: std::sync::Weak<dyn crate::pools::prestart::Catalogue> = weak.clone();
        agent.sandbox_pool.spawn_manager(catalogue);
        let host: std::sync::Weak<dyn crate::triggers::scheduler::Host> = weak;
        crate::triggers::files::supervisor::spawn(host.clone(), agent.files.clone());
        crate::triggers::scheduler::spawn(host, agent.trigger_state.clone());
        crate::triggers::queue::supervisor::spawn(&agent);
        agent.observe(agent.meter.clone());
        agent.observe(agent.metrics.clone());
        crate::metrics::gauges::register(&agent.metrics, &agent);
        crate::events::metrics::register(&agent.metrics, &agent.events);
        crate::disk::metrics::register(&agent.metrics, &agent.disk);
        crate::metrics::vm_starts::register(&agent.metrics);
        for f in agent.store.list()? {
            agent.idle.retire(&f.name, Some(f.revision));
            agent
                .limiter
                .set_reservation(&f.name, f.reserved_concurrency);
        }
        // Runs queued events through `Agent::run_queued` (invoke/events.rs).
        agent.events.start(Arc::new(Arc::downgrade(&agent)));
        let poster = crate::events::webhook::http::HttpPoster::new(
            agent.config.destination_ca_file.as_deref(),
        )?;
        agent.events.start_webhooks(Arc::new(poster));
        Ok(agent)
    }

    /// Adds an observer of invocations (metering, metrics).
    pub fn observe(&self, o: Arc<dyn InvocationObserver>) {
        self.observers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(o);
    }

    /// Tells every observer about a finished invocation.
    pub fn record(&self, rec: &InvocationRecord) {
        for o in self
            .observers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            o.invocation(rec);
        }
    }

    /// Tells every observer about a refused invocation.
    pub fn record_throttle(&self, function: &str, limit: &str) {
        for o in self
            .observers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            o.throttled(function, limit);
        }
    }

    /// The validated configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn role_keys(&self) -> &crate::roles::keys::RoleKeys {
        &self.role_keys
    }

    pub(crate) fn trigger_state(&self) -> &Arc<TriggerState> {
        &self.trigger_state
    }

    pub(crate) fn files_triggers(&self) -> &Arc<crate::triggers::files::state::FilesState> {
        &self.files
    }

    pub(crate) fn unpacked(&self) -> &crate::unpacked::UnpackCache {
        &self.unpacked
    }

    pub(crate) fn code(&self) -> &CodeStore {
        &self.code
    }

    pub(crate) fn logs(&self) -> &Logs {
        &self.logs
    }

    pub(crate) fn idle(&self) -> &Arc<IdleInstances> {
        &self.idle
    }

    pub(crate) fn backend(&self) -> &Arc<dyn SandboxBackend> {
        &self.backend
    }

    pub(crate) fn limiter(&self) -> &Arc<Limiter> {
        &self.limiter
    }

    /// The metering store (usage reports read it).
    pub(crate) fn meter(&self) -> &Arc<Meter> {
        &self.meter
    }

    /// The Prometheus registry (the `/metrics` listener serves it).
    pub(crate) fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub(crate) fn sandbox_pool(&self) -> &Arc<SandboxPool> {
        &self.sandbox_pool
    }

    pub(crate) fn occupancy(&self) -> &Arc<Occupancy> {
        &self.occupancy
    }

    /// The data directory's free-space floor (`--min-free-disk-mb`).
    pub(crate) fn disk(&self) -> &crate::disk::Disk {
        &self.disk
    }

    pub(crate) fn start_gate(&self) -> &StartGate {
        &self.start_gate
    }

    pub(crate) fn events(&self) -> &Arc<crate::events::dispatcher::Dispatcher> {
        &self.events
    }

    /// Destroys every pre-started sandbox and idle instance (agent shutdown).
    pub(crate) async fn shutdown_pools(&self) {
        self.sandbox_pool.shutdown().await;
        self.idle.shutdown().await;
        self.backend.shutdown().await;
    }

    /// Runs blocking work (SQLite, file I/O) off the async workers; a panic in it
    /// is resumed here.
    pub(crate) async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&Agent) -> T + Send + 'static,
    ) -> T {
        let me = self.clone();
        match tokio::task::spawn_blocking(move || work(&me)).await {
            Ok(v) => v,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("blocking work cancelled: {e}"),
        }
    }

    /// Looks a runtime up, rescanning the images once if it is unknown (so images
    /// built while the agent runs become usable).
    pub fn runtime(&self, name: &str) -> Result<Runtime, RuntimeError> {
        if let Ok(rt) = self
            .runtimes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
        {
            return Ok(rt.clone());
        }
        let fresh = Runtimes::scan(&self.config.images_dir)?;
        let r = fresh.get(name).cloned();
        *self.runtimes.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        r
    }
}

/// The sandbox backend `config` asks for; for `auto`, the one this host can run.
fn choose_backend(config: &Config) -> Arc<dyn SandboxBackend> {
    let microvm = match config.backend {
        Backend::Namespace => false,
        Backend::MicroVm => {
            tracing::info!("sandbox backend: microvm (asked for)");
            true
        }
        Backend::Auto => {
            let c = choose_here(&config.kernel, &config.vmm_path);
            tracing::info!(
                backend = if c.microvm { "microvm" } else { "namespace" },
                reason = %c.reason,
                "sandbox backend chosen automatically"
            );
            c.microvm
        }
    };
    if microvm {
        Arc::new(MicroVmBackend::new(
            MicroVmConfig {
                vmm: config.vmm_path.clone(),
                kernel: config.kernel.clone(),
                run_dir: config.vm_run_dir.clone(),
                cgroup_parent: config.cgroup_parent.clone(),
                boot_timeout: config.vm_boot_timeout,
                overhead_mb: 64,
                jail: config.vm_jail,
                snapshots: config
                    .vm_snapshots
                    .then(|| config.data_dir.join("vm-snapshots")),
            },
            crate::sandbox::net::Network::new(
                config.network.clone(),
                &config.data_dir.join("network"),
            ),
        ))
    } else {
        Arc::new(NamespaceBackend::new(
            config.init_path.clone(),
            config.cgroup_parent.clone(),
            crate::sandbox::net::Network::new(
                config.network.clone(),
                &config.data_dir.join("network"),
            ),
            &config.data_dir.join("ephemeral"),
            config.parked_launchers,
        ))
    }
}

impl crate::pools::prestart::Catalogue for Agent {
    fn runtime(&self, name: &str) -> Result<Runtime, RuntimeError> {
        Agent::runtime(self, name)
    }
}

impl crate::metrics::gauges::Source for Agent {
    fn concurrency_in_use(&self) -> u32 {
        self.limiter.in_use()
    }

    fn concurrency_limit(&self) -> u32 {
        self.limiter.agent_limit()
    }

    fn idle_instances(&self) -> usize {
        self.idle.idle_count()
    }

    fn sandboxes(&self) -> flint_proto::v1::SandboxCounts {
        self.capacity().sandboxes.unwrap_or_default()
    }

    fn pools(&self) -> Vec<crate::pools::key::PoolStatus> {
        self.sandbox_pool.status()
    }

    fn metering_dropped(&self) -> u64 {
        self.meter.dropped()
    }
}
