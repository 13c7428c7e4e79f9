//! The microVM sandbox: one `flint-vmm` process per instance, booting the guest kernel
//! with the runtime's ext4 image as its read-only root (`/sbin/init` is flint-init).
//! flint-init connects over virtio-vsock to host CID 2, port 1024; in Firecracker's
//! hybrid form that reaches the Unix socket `<vsock uds>_1024`, where this backend
//! listens. The whole VMM process sits in the sandbox's cgroup, so guest memory,
//! device threads and all are capped together. Unless disabled, each flint-vmm runs in
//! its jail (`--jail`) as the first uid of a range leased for it alone, so two VMMs never
//! share a uid. With snapshots on (`--vm-snapshots`, from_snapshot.rs) a VM is restored
//! from a snapshot of one that already booted to flint-init's Hello, instead of booted.
//! A function with outbound networking gets a TAP made here before the
//! VMM starts (`net::tap`, the namespace sandboxes' pairs and egress policy) and its
//! address on the kernel command line (`ip=`).
//! Outbound VMs always boot: a snapshot holds the guest's `ip=` configuration.

pub mod from_snapshot;
pub mod select;
pub mod snapshot_key;
pub mod snapshots;
pub mod stderr_tail;

use super::namespace::cgroup::SandboxCgroup;
use super::namespace::cpu::CpuQuota;
use super::namespace::uids::{UidLease, UidRanges};
use super::net::tap::VmNet;
use super::net::Network;
use super::process::ProcessSandbox;
use super::{BackendLimits, BoxFuture, Sandbox, SandboxBackend, SandboxError, SandboxSpec};
use crate::limits::PIDS_MAX;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use stderr_tail::{StderrTail, DRAIN_WAIT};

/// The vsock port flint-init dials on the host.
pub const INIT_VSOCK_PORT: u32 = 1024;

/// What the microVM backend needs.
#[derive(Debug, Clone)]
pub struct MicroVmConfig {
    /// The flint-vmm binary.
    pub vmm: PathBuf,
    /// The guest kernel (vmlinux).
    pub kernel: PathBuf,
    /// Per-VM directories (vsock sockets, serial logs) go here.
    pub run_dir: PathBuf,
    /// cgroup parent, shared with the namespace backend's naming.
    pub cgroup_parent: String,
    /// How long the guest may take to boot and connect.
    pub boot_timeout: Duration,
    /// Memory the cgroup allows beyond the guest's RAM (VMM, device buffers), in MB.
    pub overhead_mb: u32,
    /// Jail every flint-vmm (`--jail`, an unprivileged uid of its own).
    pub jail: bool,
    /// Start VMs by restoring snapshots kept in this directory (`--vm-snapshots`);
    /// `None` boots every VM.
    pub snapshots: Option<PathBuf>,
}

/// Makes microVM sandboxes.
pub struct MicroVmBackend {
    cfg: MicroVmConfig,
    uids: std::sync::Arc<UidRanges>,
    snapshots: Option<snapshots::Snapshots>,
    network: Arc<Network>,
}

impl MicroVmBackend {
    /// A backend whose outbound VMs get TAPs of `network`; removes sandboxes a previous
    /// agent left behind (cgroups, per-VM directories, TAPs and the nftables table).
    pub fn new(cfg: MicroVmConfig, network: Network) -> Self {
        let stale = super::namespace::sweep::remove_stale(&cfg.cgroup_parent);
        if stale > 0 {
            tracing::info!(stale, "removed microVMs left by an earlier run");
        }
        let stale = super::net::sweep::remove_leftovers();
        if stale > 0 {
            tracing::info!(
                stale,
                "removed microVM TAPs and the nftables table left by an earlier run"
            );
        }
        if let Ok(rd) = std::fs::read_dir(&cfg.run_dir) {
            for e in rd.flatten().filter(|e| e.file_name() != "failed") {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        if !cfg.jail {
            tracing::warn!("flint-vmm runs without its jail (--vm-jail false)");
        }
        let snapshots = cfg
            .snapshots
            .as_deref()
            .and_then(|root| match snapshots::Snapshots::open(root) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "microVM snapshots are off: their directory cannot be used");
                    None
                }
            });
        Self {
            cfg,
            uids: UidRanges::new(),
            snapshots,
            network: Arc::new(network),
        }
    }

    /// A VM not started yet: its directory, cgroup and (jailed) uid range.
    fn new_vm(&self, id: &str, memory_mb: u32) -> Result<MicroVm, SandboxError> {
        let dir = self.cfg.run_dir.join(id);
        std::fs::create_dir_all(&dir)?;
        let cg = match SandboxCgroup::create(
            &self.cfg.cgroup_parent,
            id,
            memory_mb + self.cfg.overhead_mb,
            PIDS_MAX,
            // The function's share; the VMM's own overhead buys no CPU.
            CpuQuota::for_memory(memory_mb),
        ) {
            Ok(cg) => cg,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let uid = if self.cfg.jail {
            match self.uids.lease() {
                Some(lease) => Some(lease),
                None => {
                    let _ = std::fs::remove_dir_all(&dir);
                    return Err(SandboxError::NoUidRange(super::namespace::uids::SLOTS));
                }
            }
        } else {
            None
        };
        Ok(MicroVm {
            proc: ProcessSandbox::new(id, cg),
            dir,
            uid,
            net: None,
        })
    }

    /// Starts `launch` in a new VM for `spec`; the VM is removed when it fails.
    async fn start(
        &self,
        id: &str,
        spec: &SandboxSpec,
        launch: Launch<'_>,
    ) -> Result<MicroVm, SandboxError> {
        let mut vm = self.new_vm(id, spec.memory_mb)?;
        if spec.network == super::NetworkMode::Outbound {
            let network = self.network.clone();
            let owned_id = id.to_string();
            let owner = vm.uid.as_ref().map(|l| l.base());
            let made =
                tokio::task::spawn_blocking(move || network.attach_tap(&owned_id, owner)).await;
            match made {
                Ok(Ok(n)) => vm.net = Some(n),
                Ok(Err(e)) => {
                    let _ = vm.destroy().await;
                    return Err(e.into());
                }
                Err(e) => {
                    let _ = vm.destroy().await;
                    return Err(SandboxError::Io(std::io::Error::other(e)));
                }
            }
        }
        match vm.boot(&self.cfg, spec, launch).await {
            Ok(()) => Ok(vm),
            Err(e) => {
                let _ = vm.destroy().await;
                Err(e)
            }
        }
    }
}

/// How a VM starts.
#[derive(Debug, Clone, Copy)]
pub enum Launch<'a> {
    /// Boot the kernel with `disk` as root; with `snapshot_to`, flint-vmm writes a
    /// snapshot there on SIGUSR1 and exits.
    Boot {
        disk: &'a Path,
        snapshot_to: Option<&'a Path>,
    },
    /// Restore the snapshot in this directory.
    Restore(&'a Path),
}

/// The ext4 root disk that images/build-ext4.sh makes next to a runtime's tree.
pub fn root_disk(rootfs_tree: &Path) -> PathBuf {
    rootfs_tree.with_file_name("rootfs.ext4")
}

fn spawn_err(path: &Path, e: std::io::Error) -> SandboxError {
    SandboxError::Spawn {
        path: path.to_path_buf(),
        source: e,
    }
}

/// The largest memory size a microVM function can have, in MB: flint-vmm's own limit
/// on `--mem-mib` (guest RAM below the MMIO gap), which gets the function's memory size.
pub const MAX_MEMORY_MB: u32 = {
    assert!(flint_vmm::config::MAX_MEM_MIB <= crate::limits::MEMORY_MAX_MB as u64);
    flint_vmm::config::MAX_MEM_MIB as u32
};

impl SandboxBackend for MicroVmBackend {
    fn kind(&self) -> &'static str {
        "microvm"
    }

    fn limits(&self) -> BackendLimits {
        BackendLimits {
            backend: self.kind(),
            max_memory_mb: MAX_MEMORY_MB,
        }
    }

    fn outbound_network(&self) -> bool {
        true
    }

    fn create<'a>(
        &'a self,
        spec: &'a SandboxSpec,
    ) -> BoxFuture<'a, Result<Box<dyn Sandbox>, SandboxError>> {
        Box::pin(async move {
            if !spec.ro_binds.is_empty() {
                return Err(SandboxError::NoBinds("microvm"));
            }
            let disk = root_disk(&spec.rootfs);
            if !disk.is_file() {
                return Err(SandboxError::Io(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!(
                        "no microVM root disk {}: build it with images/build-ext4.sh RUNTIME FLINT_INIT_STATIC_BINARY",
                        disk.display()
                    ),
                )));
            }
            // An outbound VM's guest takes its address from the kernel command line
            // (`ip=`) at boot, so a snapshot (with another VM's address) cannot serve it.
            let restorable = spec.network == super::NetworkMode::None;
            if let (Some(store), true) = (&self.snapshots, restorable) {
                match from_snapshot::restore(self, store, spec, &disk).await {
                    Ok(vm) => return Ok(Box::new(vm) as Box<dyn Sandbox>),
                    Err(from_snapshot::FromSnapshotError::BootFailed(e)) => return Err(e),
                    Err(e) => {
                        tracing::warn!(sandbox = %spec.id, error = %e, "microVM not restored from a snapshot; booting it");
                    }
                }
            }
            let launch = Launch::Boot {
                disk: &disk,
                snapshot_to: None,
            };
            let vm = self.start(&spec.id, spec, launch).await?;
            snapshots::StartCounts::bump(&snapshots::STARTS.boots);
            Ok(Box::new(vm) as Box<dyn Sandbox>)
        })
    }
}

/// One microVM: the flint-vmm process and its per-VM directory.
pub struct MicroVm {
    proc: ProcessSandbox,
    dir: PathBuf,
    /// The jailed VMM's uid range (its first uid and gid), held until the VM is gone.
    uid: Option<UidLease>,
    /// The TAP and addresses of an outbound VM, deleted after the VMM is gone.
    net: Option<VmNet>,
}

impl MicroVm {
    async fn boot(
        &mut self,
        cfg: &MicroVmConfig,
        spec: &SandboxSpec,
        launch: Launch<'_>,
    ) -> Result<(), SandboxError> {
        let uds = self.dir.join("vsock.sock");
        let mut listen_path = uds.clone().into_os_string();
        listen_path.push(format!("_{INIT_VSOCK_PORT}"));
        let listener = tokio::net::UnixListener::bind(&listen_path)?;
        let serial = self.dir.join("serial.log");
        let mut cmd = tokio::process::Command::new(&cfg.vmm);
        if let Some(lease) = &self.uid {
            // The jailed VMM reaches this directory (bind-mounted into its root) and
            // connects to the listener as its own uid.
            let id = lease.base();
            let jail = self.dir.join("jail");
            std::fs::create_dir(&jail)?;
            std::os::unix::fs::chown(&self.dir, Some(id), Some(id))?;
            std::os::unix::fs::chown(&listen_path, Some(id), Some(id))?;
            if let Launch::Boot {
                snapshot_to: Some(to),
                ..
            } = launch
            {
                std::os::unix::fs::chown(to, Some(id), Some(id))?;
            }
            cmd.arg("--jail")
                .arg(&jail)
                .arg("--jail-uid")
                .arg(id.to_string())
                .arg("--jail-gid")
                .arg(id.to_string());
        }
        match launch {
            Launch::Boot { disk, snapshot_to } => {
                cmd.arg("--kernel")
                    .arg(&cfg.kernel)
                    .arg("--rootfs")
                    .arg(disk)
                    .arg("--mem-mib")
                    .arg(spec.memory_mb.to_string());
                if let Some(to) = snapshot_to {
                    cmd.arg("--snapshot-to").arg(to);
                }
            }
            // The machine (memory, vCPUs, disk, vsock CID) comes from the snapshot; the
            // host side below (vsock socket, serial log, timings) is this VM's own.
            Launch::Restore(dir) => {
                cmd.arg("--restore-from").arg(dir);
            }
        }
        cmd.arg("--vsock-uds")
            .arg(&uds)
            .arg("--serial-log")
            .arg(&serial)
            .arg("--timings")
            .arg(self.dir.join("timings.json"));
        if let Some(net) = &self.net {
            cmd.arg("--net-tap").arg(net.tap());
            // Only a boot reads the command line (create() never restores an outbound VM).
            if matches!(launch, Launch::Boot { .. }) {
                cmd.arg("--cmdline").arg(format!(
                    "{} {}",
                    flint_vmm::config::DEFAULT_CMDLINE,
                    net.kernel_ip_param()
                ));
            }
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let procs: Vec<CString> = self
            .proc
            .cgroup
            .as_ref()
            .map(|c| c.procs_files())
            .unwrap_or_default()
            .iter()
            .filter_map(|p| CString::new(p.as_os_str().as_bytes()).ok())
            .collect();
        // SAFETY: runs in the forked child before exec; only open(2), write(2) and
        // close(2) on paths prepared before the fork, all async-signal-safe. Writing
        // "0" to cgroup.procs moves the writing process, so the VMM is capped before
        // its first instruction.
        unsafe {
            cmd.pre_exec(move || {
                for p in &procs {
                    let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    let n = libc::write(fd, b"0".as_ptr().cast(), 1);
                    libc::close(fd);
                    if n != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| spawn_err(&cfg.vmm, e))?;
        let stderr = child
            .stderr
            .take()
            .map(|e| StderrTail::spawn(e, self.proc.id.clone()));
        let booted = tokio::select! {
            accepted = tokio::time::timeout(cfg.boot_timeout, listener.accept()) => match accepted {
                Ok(Ok((stream, _))) => Boot::Connected(stream),
                Ok(Err(e)) => Boot::Failed(e),
                Err(_) => Boot::TimedOut,
            },
            status = child.wait() => Boot::Exited(
                status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
            ),
        };
        let result = match booted {
            Boot::Connected(stream) => Ok(stream),
            Boot::Failed(e) => Err(SandboxError::Io(e)),
            Boot::TimedOut => Err(SandboxError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "the microVM's flint-init did not connect within {:?}; flint-vmm stderr: {}; serial log: {}",
                    cfg.boot_timeout,
                    stderr.as_ref().map_or_else(|| "(not captured)".into(), StderrTail::render),
                    tail(&serial)
                ),
            ))),
            Boot::Exited(status) => {
                let said = match stderr {
                    Some(t) => t.render_after(DRAIN_WAIT).await,
                    None => "(not captured)".into(),
                };
                Err(SandboxError::Io(std::io::Error::other(format!(
                    "flint-vmm exited ({status}) before flint-init connected; flint-vmm stderr: {said}; serial log: {}",
                    tail(&serial)
                ))))
            }
        };
        self.proc.child = Some(child);
        drop(listener);
        let _ = std::fs::remove_file(&listen_path);
        if result.is_err() {
            keep_failed_log(&cfg.run_dir, &self.proc.id, &serial);
        }
        let mut stream = result?;
        if let Launch::Restore(_) = launch {
            // The first message after a restore: fresh entropy and the time.
            from_snapshot::send_resume(&mut stream).await?;
        }
        self.proc.stream = Some(stream);
        Ok(())
    }
}

/// How a boot ended.
enum Boot {
    /// flint-init connected.
    Connected(tokio::net::UnixStream),
    /// Accepting the connection failed.
    Failed(std::io::Error),
    /// flint-init did not connect within the boot timeout.
    TimedOut,
    /// flint-vmm exited first, with this status.
    Exited(String),
}

/// Failed boots' serial logs kept for the operator.
const FAILED_LOGS_KEPT: usize = 10;

/// Keeps the serial log of a VM that failed to boot as `<run_dir>/failed/<id>.serial.log`
/// (the newest ten).
fn keep_failed_log(run_dir: &Path, id: &str, serial: &Path) {
    let dir = run_dir.join("failed");
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let _ = std::fs::copy(serial, dir.join(format!("{id}.serial.log")));
    let mut logs: Vec<_> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
                .collect()
        })
        .unwrap_or_default();
    logs.sort();
    while logs.len() > FAILED_LOGS_KEPT {
        let (_, p) = logs.remove(0);
        let _ = std::fs::remove_file(p);
    }
    tracing::warn!(sandbox = %id, log = %dir.join(format!("{id}.serial.log")).display(), "microVM failed to boot; serial log kept");
}

/// The last lines of a serial log, for error messages.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(6).collect();
    if lines.is_empty() {
        return "(empty)".into();
    }
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

impl Sandbox for MicroVm {
    fn id(&self) -> &str {
        &self.proc.id
    }

    fn take_stream(&mut self) -> Option<tokio::net::UnixStream> {
        self.proc.stream.take()
    }

    fn oom_killed(&self) -> bool {
        self.proc.oom_killed()
    }

    fn memory_peak(&self) -> Option<u64> {
        self.proc.memory_peak()
    }

    fn limit_cpu(&self) -> Result<(), SandboxError> {
        self.proc.limit_cpu()
    }

    fn freeze(&self) -> Result<(), SandboxError> {
        self.proc.freeze()
    }

    fn thaw(&self) -> Result<(), SandboxError> {
        self.proc.thaw()
    }

    fn destroy(&mut self) -> BoxFuture<'_, Result<(), SandboxError>> {
        Box::pin(async move {
            let result = self.proc.teardown().await;
            let _ = std::fs::remove_dir_all(&self.dir);
            if let Some(net) = self.net.take() {
                let _ = tokio::task::spawn_blocking(move || drop(net)).await;
            }
            result
        })
    }
}

impl Drop for MicroVm {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
