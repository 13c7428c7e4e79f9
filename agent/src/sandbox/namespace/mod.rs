//! The namespace sandbox: flint-init as PID 1 of fresh user (its own host uid range,
//! [`uids`]), PID, mount, network, IPC, UTS and cgroup namespaces, pivoted into the
//! runtime's read-only root file system, inside a cgroup that caps memory, processes
//! and CPU. The host end of the flint-init stream is
//! one end of a Unix socketpair. For hosts without hardware virtualisation.

pub mod cgroup;
pub mod code_mount;
pub mod cpu;
pub mod mount_api;
pub mod own_cwd;
pub mod sweep;
pub mod tmp_disk;
pub mod uids;

use super::net::{Network, SandboxNet};
use super::process::ProcessSandbox;
use super::{BoxFuture, NetworkMode, Sandbox, SandboxBackend, SandboxError, SandboxSpec};
use crate::limits::PIDS_MAX;
use cgroup::SandboxCgroup;
use cpu::CpuQuota;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use tmp_disk::TmpDisks;
use tokio::io::AsyncBufReadExt;
use uids::{UidLease, UidRanges};

/// Makes namespace sandboxes.
pub struct NamespaceBackend {
    init_path: PathBuf,
    cgroup_parent: String,
    uids: Arc<UidRanges>,
    network: Arc<Network>,
    tmp_disks: Arc<TmpDisks>,
}

impl NamespaceBackend {
    /// A backend running `init_path` under cgroup `cgroup_parent`, with /tmp images
    /// in `ephemeral_dir`; removes sandboxes a previous agent left behind (cgroups,
    /// sandbox links, the nftables table, /tmp images and their loop devices).
    pub fn new(
        init_path: PathBuf,
        cgroup_parent: String,
        network: Network,
        ephemeral_dir: &Path,
    ) -> Self {
        let stale = sweep::remove_stale(&cgroup_parent);
        if stale > 0 {
            tracing::info!(stale, "removed sandboxes left by an earlier run");
        }
        let stale = super::net::sweep::remove_leftovers();
        if stale > 0 {
            tracing::info!(
                stale,
                "removed sandbox links and the nftables table left by an earlier run"
            );
        }
        // After the stale sandboxes are gone: their /tmp loop devices clear themselves.
        let tmp_disks = Arc::new(TmpDisks::new(ephemeral_dir));
        Self {
            init_path,
            cgroup_parent,
            uids: UidRanges::new(),
            network: Arc::new(network),
            tmp_disks,
        }
    }
}

impl SandboxBackend for NamespaceBackend {
    fn kind(&self) -> &'static str {
        "namespace"
    }

    fn outbound_network(&self) -> bool {
        true
    }

    fn sized_tmp(&self) -> bool {
        true
    }

    fn mounts_code(&self) -> bool {
        true
    }

    fn create<'a>(
        &'a self,
        spec: &'a SandboxSpec,
    ) -> BoxFuture<'a, Result<Box<dyn Sandbox>, SandboxError>> {
        Box::pin(async move {
            let lease = self
                .uids
                .lease()
                .ok_or(SandboxError::NoUidRange(uids::SLOTS))?;
            let net = match spec.network {
                NetworkMode::None => None,
                NetworkMode::Outbound => {
                    let network = self.network.clone();
                    let id = spec.id.clone();
                    Some(
                        tokio::task::spawn_blocking(move || network.attach(&id))
                            .await
                            .map_err(|e| SandboxError::Io(std::io::Error::other(e)))??,
                    )
                }
            };
            let tmp = {
                let (disks, id, mb) = (self.tmp_disks.clone(), spec.id.clone(), spec.tmp_mb);
                tokio::task::spawn_blocking(move || disks.take(&id, mb))
                    .await
                    .map_err(|e| SandboxError::Io(std::io::Error::other(e)))??
            };
            let cg = SandboxCgroup::create(
                &self.cgroup_parent,
                &spec.id,
                spec.memory_mb,
                PIDS_MAX,
                CpuQuota::for_memory(spec.memory_mb),
            )?;
            let guest_net = net.as_ref().map(|n| GuestNet {
                netns_fd: n.netns_fd(),
                resolv: self.network.resolv_conf().to_path_buf(),
            });
            let result = spawn(
                &self.init_path,
                spec,
                &cg,
                lease.base(),
                guest_net.as_ref(),
                tmp.as_raw_fd(),
            );
            // flint-init inherited the /tmp mount; the sandbox alone holds it now.
            drop(tmp);
            let mut sandbox = ProcessSandbox::new(&spec.id, cg);
            match result {
                Ok((child, stream)) => {
                    sandbox.child = Some(child);
                    sandbox.stream = Some(stream);
                    Ok(Box::new(NamespaceSandbox {
                        proc: sandbox,
                        net,
                        _uids: lease,
                    }) as Box<dyn Sandbox>)
                }
                Err(e) => {
                    let _ = sandbox.teardown().await;
                    Err(e)
                }
            }
        })
    }
}

/// What flint-init needs to join a sandbox network made by flintd.
struct GuestNet {
    netns_fd: std::os::fd::RawFd,
    resolv: PathBuf,
}

fn spawn(
    init: &std::path::Path,
    spec: &SandboxSpec,
    cg: &SandboxCgroup,
    uid_base: u32,
    net: Option<&GuestNet>,
    tmp_fd: RawFd,
) -> Result<(tokio::process::Child, tokio::net::UnixStream), SandboxError> {
    let (host, guest) = std::os::unix::net::UnixStream::pair()?;
    let guest_fd = guest.as_raw_fd();
    let mut cmd = tokio::process::Command::new(init);
    cmd.arg("sandbox")
        .arg("--rootfs")
        .arg(&spec.rootfs)
        .arg("--fd")
        .arg(guest_fd.to_string())
        .arg("--hostname")
        .arg("flint")
        .arg("--uid-base")
        .arg(uid_base.to_string())
        .arg("--tmp-fd")
        .arg(tmp_fd.to_string());
    for f in cg.procs_files() {
        cmd.arg("--cgroup").arg(f);
    }
    for b in &spec.ro_binds {
        let mut v = b.host.clone().into_os_string();
        v.push(":");
        v.push(&b.guest);
        cmd.arg("--ro-bind").arg(v);
    }
    let netns_fd = net.map(|n| n.netns_fd);
    if let Some(n) = net {
        cmd.arg("--netns-fd")
            .arg(n.netns_fd.to_string())
            .arg("--resolv-conf")
            .arg(&n.resolv);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // SAFETY: the closure runs in the forked child before exec and only calls fcntl,
    // which is async-signal-safe; guest_fd, tmp_fd and netns_fd are open in the child
    // (inherited: the sandbox holds them until the child has started).
    unsafe {
        cmd.pre_exec(move || {
            for fd in [guest_fd, tmp_fd].into_iter().chain(netns_fd) {
                if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|source| SandboxError::Spawn {
        path: init.to_path_buf(),
        source,
    })?;
    drop(guest);
    if let Some(stderr) = child.stderr.take() {
        let id = spec.id.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::debug!(sandbox = %id, "flint-init: {line}");
            }
        });
    }
    host.set_nonblocking(true)?;
    Ok((child, tokio::net::UnixStream::from_std(host)?))
}

/// One namespace sandbox: the launcher process (whose child is PID 1 inside), its
/// network when outbound, and its host uid range (link and ranges are returned after
/// the processes are gone: fields drop in order).
pub struct NamespaceSandbox {
    proc: ProcessSandbox,
    net: Option<SandboxNet>,
    _uids: UidLease,
}

impl Sandbox for NamespaceSandbox {
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
        // The launcher's death kills PID 1 (PDEATHSIG), and with it the whole PID
        // namespace; the cgroup sweep covers anything that escaped. Then the link.
        Box::pin(async move {
            let r = self.proc.teardown().await;
            if let Some(net) = self.net.take() {
                let _ = tokio::task::spawn_blocking(move || drop(net)).await;
            }
            r
        })
    }
}
