//! The agent's state, shared by every API front end: the registry, the code store,
//! the runtimes, the sandbox backend and the pool of idle instances.

use crate::code::CodeStore;
use crate::config::{Backend, Config};
use crate::limiter::Limiter;
use crate::logs::Logs;
use crate::metering::{Meter, MeterError};
use crate::metrics::Metrics;
use crate::observe::{InvocationObserver, InvocationRecord};
use crate::occupancy::Occupancy;
use crate::pool::Pool;
use crate::runtimes::{Runtime, RuntimeError, Runtimes};
use crate::sandbox::microvm::select::choose_here;
use crate::sandbox::microvm::{MicroVmBackend, MicroVmConfig};
use crate::sandbox::namespace::NamespaceBackend;
use crate::sandbox::SandboxBackend;
use crate::start_gate::StartGate;
use crate::store::Store;
use crate::warm_pool::WarmPool;
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
    /// Event queue problems
    #[error(transparent)]
    Events(#[from] crate::events::QueueError),
}

/// Everything an API call works on.
pub struct Agent {
    pub config: Config,
    pub store: Store,
    pub code: CodeStore,
    pub logs: Logs,
    pub pool: Arc<Pool>,
    pub backend: Arc<dyn SandboxBackend>,
    pub limiter: Arc<Limiter>,
    /// Stores every invocation for usage reports.
    pub meter: Arc<Meter>,
    /// Prometheus counters, histograms and gauges.
    pub metrics: Arc<Metrics>,
    pub warm_pool: Arc<WarmPool>,
    pub occupancy: Arc<Occupancy>,
    /// Admits cold starts a few at a time.
    pub start_gate: StartGate,
    /// The durable queue of asynchronous invocations and its dispatcher.
    pub events: Arc<crate::events::dispatcher::Dispatcher>,
    observers: RwLock<Vec<Arc<dyn InvocationObserver>>>,
    runtimes: RwLock<Runtimes>,
}

impl Agent {
    /// Opens the data directory, the database and the images; starts the reaper.
    pub fn open(config: Config) -> Result<Arc<Self>, OpenError> {
        let data = &config.data_dir;
        std::fs::create_dir_all(data).map_err(|source| OpenError::DataDir {
            path: data.clone(),
            source,
        })?;
        let store = Store::open(&data.join("flint.db"))?;
        let code = CodeStore::open(&data.join("code"))?;
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
        let backend: Arc<dyn SandboxBackend> = if microvm {
            Arc::new(MicroVmBackend::new(MicroVmConfig {
                vmm: config.vmm_path.clone(),
                kernel: config.kernel.clone(),
                run_dir: config.vm_run_dir.clone(),
                cgroup_parent: config.cgroup_parent.clone(),
                boot_timeout: config.vm_boot_timeout,
                overhead_mb: 64,
            }))
        } else {
            Arc::new(NamespaceBackend::new(
                config.init_path.clone(),
                config.cgroup_parent.clone(),
            ))
        };
        tracing::info!(backend = backend.kind(), "sandbox backend ready");
        let occupancy = Occupancy::new();
        let pool = Pool::new(config.keep_alive, occupancy.clone());
        pool.spawn_reaper();
        let limiter = Limiter::new(config.concurrency_limit, config.function_rate_limit);
        let meter = Meter::open(&data.join("metering.db"), config.prices)?;
        let metrics = Metrics::new();
        let warm_pool = WarmPool::new(config.pool.clone(), backend.clone(), occupancy.clone());
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
        let events =
            crate::events::dispatcher::Dispatcher::new(queue.clone(), queue, config.events)?;
        let agent = Arc::new(Self {
            config,
            store,
            code,
            logs,
            pool,
            backend,
            limiter,
            meter,
            metrics,
            warm_pool,
            occupancy,
            start_gate,
            events,
            observers: RwLock::new(Vec::new()),
            runtimes: RwLock::new(runtimes),
        });
        let weak = Arc::downgrade(&agent);
        let catalogue: std::sync::Weak<dyn crate::warm_pool::Catalogue> = weak;
        agent.warm_pool.spawn_manager(catalogue);
        agent.observe(agent.meter.clone());
        agent.observe(agent.metrics.clone());
        crate::metrics::gauges::register(&agent.metrics, &agent);
        crate::events::metrics::register(&agent.metrics, &agent.events);
        for f in agent.store.list()? {
            agent.pool.retire(&f.name, Some(f.revision));
            agent
                .limiter
                .set_reservation(&f.name, f.reserved_concurrency);
        }
        // Runs queued events through `Agent::run_queued` (event_runner.rs).
        agent.events.start(Arc::new(Arc::downgrade(&agent)));
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

impl crate::warm_pool::Catalogue for Agent {
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
        self.pool.idle_count()
    }

    fn sandboxes(&self) -> flint_proto::v1::SandboxCounts {
        self.capacity().sandboxes.unwrap_or_default()
    }

    fn pools(&self) -> Vec<crate::pool_key::PoolStatus> {
        self.warm_pool.status()
    }

    fn metering_dropped(&self) -> u64 {
        self.meter.dropped()
    }
}
