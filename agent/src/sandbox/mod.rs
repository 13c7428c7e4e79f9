//! Sandboxes: the isolation boundary around one function instance. A backend makes
//! sandboxes; each runs flint-init as its PID 1 and hands the host one byte stream to
//! it. Everything above this interface (protocol, runtimes, limits, API) is shared by
//! all backends.

pub mod limits;
pub mod microvm;
pub mod namespace;
pub mod net;
pub mod network_mode;
pub mod process;

pub use limits::BackendLimits;
pub use network_mode::NetworkMode;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

/// A boxed future, for object-safe async trait methods.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Failures creating or destroying sandboxes.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// cgroup operations failed
    #[error("cgroup {path}: {message}")]
    Cgroup { path: String, message: String },
    /// Spawning the sandbox process failed
    #[error("starting sandbox process {path}: {source}")]
    Spawn {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The sandbox's network could not be set up
    #[error("sandbox network: {0}")]
    Network(#[from] net::NetError),
    /// The backend cannot mount host directories
    #[error("the {0} sandbox backend cannot mount host directories (file-event triggers) yet")]
    NoBinds(&'static str),
    /// Every host uid range is held by a live sandbox
    #[error("all {0} host uid ranges are in use: too many sandboxes at once")]
    NoUidRange(u32),
    /// The sandbox's disk-backed /tmp could not be made
    #[error(transparent)]
    TmpDisk(#[from] namespace::tmp_disk::TmpDiskError),
    /// Other I/O
    #[error("sandbox I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// How every sandbox id (and so its cgroup's name) begins.
pub const SANDBOX_ID_PREFIX: &str = "sbx-";

/// A fresh sandbox id ("sbx-" and 12 hex digits).
pub fn new_sandbox_id() -> String {
    format!(
        "{SANDBOX_ID_PREFIX}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// What a new sandbox needs to know.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    /// Unique id, also the cgroup name.
    pub id: String,
    /// Read-only root file system of the runtime.
    pub rootfs: PathBuf,
    /// Memory cap for everything in the sandbox, in MB.
    pub memory_mb: u32,
    /// Size of /tmp in MB (Lambda's ephemeral storage), on disk where the backend can.
    pub tmp_mb: u32,
    /// Loopback only, or an interface with outbound access under the egress policy.
    pub network: NetworkMode,
    /// Host directories mounted read-only inside (file-event triggers); empty for
    /// the generic sandboxes of the pre-started pool.
    pub ro_binds: Vec<RoBind>,
    /// Set for a function's own start when its runtime may be snapshotted waiting
    /// ([`crate::runtimes::RuntimeManifest::snapshots_with_runtime`]): a backend that
    /// restores from snapshots may take one after this Prepare and hand out VMs whose
    /// runtime already waits for its function. Other backends ignore it.
    pub waiting_runtime: Option<WaitingRuntime>,
}

/// A runtime started before its function, in a snapshot only that function's
/// instances restore.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitingRuntime {
    /// What flint-init gets before the snapshot (the warm pool's Prepare).
    pub prepare: flint_proto::init::Prepare,
    /// The function whose instances alone share the snapshot: siblings restored from
    /// one snapshot share the runtime's process state (address layout, stack canary,
    /// hash seeds), so a snapshot with user space running never crosses functions.
    pub function: String,
}

/// A host directory mounted read-only at `guest` inside a sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoBind {
    pub host: PathBuf,
    /// Absolute, under /mnt (the only place a sandbox has room for mount points).
    pub guest: PathBuf,
}

/// Makes sandboxes.
pub trait SandboxBackend: Send + Sync {
    /// Short name for logs and the API ("namespace", "microvm").
    fn kind(&self) -> &'static str;
    /// What this backend can run; settings beyond it are refused when a function is
    /// created or changed. Default: Lambda's limits only.
    fn limits(&self) -> BackendLimits {
        BackendLimits::lambda(self.kind())
    }
    /// True when sandboxes can be given outbound networking.
    fn outbound_network(&self) -> bool {
        false
    }
    /// True when a sandbox's /tmp can be any ephemeral storage size
    /// ([`SandboxSpec::tmp_mb`]); false when it is fixed at [`crate::limits::TMP_MB`].
    fn sized_tmp(&self) -> bool {
        false
    }
    /// A /tmp of `mb` MB for a pre-started sandbox bound to a function of that size
    /// (its own /tmp has the pool's, [`crate::limits::TMP_MB`]): flint-init swaps it in
    /// at Configure. Every backend whose [`SandboxBackend::sized_tmp`] is true gives
    /// one; the others' pre-started sandboxes serve only functions of the pool's size.
    /// Blocking (the disk may be made now).
    fn tmp_for_pool_hit(&self, mb: u32) -> Result<std::os::fd::OwnedFd, SandboxError> {
        Err(SandboxError::Io(std::io::Error::other(format!(
            "the {} backend keeps its pre-started sandboxes' /tmp at {} MB, not {mb} MB",
            self.kind(),
            crate::limits::TMP_MB
        ))))
    }
    /// True when the code reaches the sandbox as a read-only mount of the bundle
    /// unpacked once on the host ([`crate::unpacked`]); false when flint-init unpacks
    /// the zip itself (the microVM: its memory is the VM's own).
    fn mounts_code(&self) -> bool {
        false
    }
    /// Starts a sandbox; returns once its flint-init stream is connected.
    fn create<'a>(
        &'a self,
        spec: &'a SandboxSpec,
    ) -> BoxFuture<'a, Result<Box<dyn Sandbox>, SandboxError>>;
    /// Stops what the backend keeps running ahead of need (the namespace backend's
    /// parked launchers); called at agent stop, after every sandbox was destroyed.
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// One running sandbox.
pub trait Sandbox: Send + Sync {
    /// The sandbox id.
    fn id(&self) -> &str;
    /// The host end of the flint-init stream (taken once).
    fn take_stream(&mut self) -> Option<tokio::net::UnixStream>;
    /// True when the kernel's OOM killer has killed a process in this sandbox.
    fn oom_killed(&self) -> bool;
    /// Peak memory use of the sandbox so far, in bytes, when known.
    fn memory_peak(&self) -> Option<u64>;
    /// Applies the CPU quota in proportion to memory, once the instance has finished
    /// its init (which, as on Lambda, runs unthrottled).
    fn limit_cpu(&self) -> Result<(), SandboxError>;
    /// Stops everything in the sandbox between invocations (cgroup freezer), so
    /// nothing a handler left running uses CPU while the instance is idle.
    fn freeze(&self) -> Result<(), SandboxError>;
    /// Lets a frozen sandbox run again; called before its next invocation.
    fn thaw(&self) -> Result<(), SandboxError>;
    /// Kills everything in the sandbox and removes every trace of it. Idempotent.
    fn destroy(&mut self) -> BoxFuture<'_, Result<(), SandboxError>>;
}
