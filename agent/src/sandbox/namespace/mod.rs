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
pub mod parked;
pub mod sweep;
pub mod tmp_disk;
pub mod uids;

use super::net::{Network, SandboxNet};
use super::process::ProcessSandbox;
use super::{BoxFuture, NetworkMode, Sandbox, SandboxBackend, SandboxError, SandboxSpec};
use crate::limits::PIDS_MAX;
use cgroup::SandboxCgroup;
use cpu::CpuQuota;
use parked::{ParkedLauncher, ParkedLaunchers};
use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
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
    /// Launchers waiting in cgroups of their own (`--parked-launchers`); none when off.
    parked: Option<Arc<ParkedLaunchers>>,
}

impl NamespaceBackend {
    /// A backend running `init_path` under cgroup `cgroup_parent`, with /tmp images
    /// in `ephemeral_dir`; removes sandboxes a previous agent left behind (cgroups,
    /// sandbox links, the nftables table, /tmp images and their loop devices). Keeps
    /// `parked` launchers waiting in cgroups of their own ([`parked`]; 0: none).
    pub fn new(
        init_path: PathBuf,
        cgroup_parent: String,
        network: Network,
        ephemeral_dir: &Path,
        parked: usize,
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
        let parked = start_parking(parked, &init_path, &cgroup_parent);
        Self {
            init_path,
            cgroup_parent,
            uids: UidRanges::new(),
            network: Arc::new(network),
            tmp_disks,
            parked,
        }
    }

    /// A parked launcher made ready for `spec`: its cgroup renamed to the sandbox's id
    /// and given the sandbox's memory cap and CPU weight (the pid limit it has had
    /// since it was parked), all before the sandbox's code exists. None when none is
    /// parked, or (discarded then) when the cgroup could not be prepared.
    async fn claim_parked(&self, spec: &SandboxSpec) -> Option<ParkedLauncher> {
        let mut p = self.parked.as_ref()?.take()?;
        let prepared = p
            .cgroup
            .rename(&self.cgroup_parent, &spec.id)
            .and_then(|()| p.cgroup.set_limits(spec.memory_mb));
        match prepared {
            Ok(()) => Some(p),
            Err(e) => {
                tracing::warn!(sandbox = %spec.id, error = %e, "parked launcher unusable; starting a new one");
                p.discard().await;
                None
            }
        }
    }
}

/// The parked launchers `n` asks for, when this host allows them (cgroup v1, whose
/// cgroups can be renamed, and a tokio runtime for the refill).
fn start_parking(n: usize, init: &Path, parent: &str) -> Option<Arc<ParkedLaunchers>> {
    if n == 0 {
        return None;
    }
    if cgroups_rs::fs::hierarchies::auto().v2() {
        tracing::info!(
            "parked launchers are off: cgroup v2 cannot rename a cgroup (sandboxes join theirs at start)"
        );
        return None;
    }
    if tokio::runtime::Handle::try_current().is_err() {
        tracing::warn!("parked launchers are off: no async runtime for their refill");
        return None;
    }
    tracing::info!(
        parked = n,
        "sandbox launchers wait in their cgroups ahead of need"
    );
    Some(ParkedLaunchers::start(
        n,
        init.to_path_buf(),
        parent.to_string(),
    ))
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

    fn tmp_for_pool_hit(&self, mb: u32) -> Result<OwnedFd, SandboxError> {
        let id = format!("pool-hit-{}", uuid::Uuid::new_v4().simple());
        Ok(self.tmp_disks.take(&id, mb)?)
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
            let guest_net = net.as_ref().map(|n| GuestNet {
                netns_fd: n.netns_fd(),
                resolv: self.network.resolv_conf().to_path_buf(),
            });
            let words = sandbox_words(spec, lease.base(), guest_net.as_ref());
            let parked = match self.claim_parked(spec).await {
                Some(p) => match start_parked(&p, &words, guest_net.as_ref(), tmp.as_raw_fd()) {
                    Ok(stream) => Some((p, stream)),
                    Err(e) => {
                        // It died while parked: start one the usual way.
                        tracing::warn!(sandbox = %spec.id, error = %e, "parked launcher gone; starting a new one");
                        p.discard().await;
                        None
                    }
                },
                None => None,
            };
            let (mut sandbox, result) = match parked {
                Some((p, stream)) => {
                    let (child, cg) = p.into_parts();
                    let mut sandbox = ProcessSandbox::new(&spec.id, cg);
                    sandbox.child = Some(child);
                    (sandbox, Ok((None, stream)))
                }
                None => {
                    let cg = SandboxCgroup::create(
                        &self.cgroup_parent,
                        &spec.id,
                        spec.memory_mb,
                        PIDS_MAX,
                        CpuQuota::for_memory(spec.memory_mb),
                    )?;
                    let r = spawn(
                        &self.init_path,
                        spec,
                        &words,
                        &cg,
                        guest_net.as_ref(),
                        tmp.as_raw_fd(),
                    );
                    (
                        ProcessSandbox::new(&spec.id, cg),
                        r.map(|(c, s)| (Some(c), s)),
                    )
                }
            };
            // flint-init inherited the /tmp mount; the sandbox alone holds it now.
            drop(tmp);
            match result {
                Ok((child, stream)) => {
                    if let Some(child) = child {
                        sandbox.child = Some(child);
                    }
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

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(p) = &self.parked {
                p.shutdown().await;
            }
        })
    }
}

/// What flint-init needs to join a sandbox network made by flintd.
struct GuestNet {
    netns_fd: std::os::fd::RawFd,
    resolv: PathBuf,
}

/// The words of `flint-init sandbox` for `spec` that name no descriptor and no cgroup
/// (a parked launcher gets these over its control socket).
fn sandbox_words(spec: &SandboxSpec, uid_base: u32, net: Option<&GuestNet>) -> Vec<OsString> {
    let mut w: Vec<OsString> = vec![
        "--rootfs".into(),
        spec.rootfs.clone().into_os_string(),
        "--hostname".into(),
        "flint".into(),
        "--uid-base".into(),
        uid_base.to_string().into(),
    ];
    for b in &spec.ro_binds {
        let mut v = b.host.clone().into_os_string();
        v.push(":");
        v.push(&b.guest);
        w.push("--ro-bind".into());
        w.push(v);
    }
    if let Some(n) = net {
        w.push("--resolv-conf".into());
        w.push(n.resolv.clone().into_os_string());
    }
    w
}

/// Hands a claimed parked launcher its sandbox; returns the host end of the stream.
fn start_parked(
    p: &ParkedLauncher,
    words: &[OsString],
    net: Option<&GuestNet>,
    tmp_fd: RawFd,
) -> Result<tokio::net::UnixStream, SandboxError> {
    let (host, guest) = std::os::unix::net::UnixStream::pair()?;
    let mut fds = vec![guest.as_raw_fd(), tmp_fd];
    fds.extend(net.map(|n| n.netns_fd));
    p.start(words, &fds)?;
    drop(guest);
    host.set_nonblocking(true)?;
    Ok(tokio::net::UnixStream::from_std(host)?)
}

fn spawn(
    init: &std::path::Path,
    spec: &SandboxSpec,
    words: &[OsString],
    cg: &SandboxCgroup,
    net: Option<&GuestNet>,
    tmp_fd: RawFd,
) -> Result<(tokio::process::Child, tokio::net::UnixStream), SandboxError> {
    let (host, guest) = std::os::unix::net::UnixStream::pair()?;
    let guest_fd = guest.as_raw_fd();
    let mut cmd = tokio::process::Command::new(init);
    cmd.arg("sandbox")
        .args(words)
        .arg("--fd")
        .arg(guest_fd.to_string())
        .arg("--tmp-fd")
        .arg(tmp_fd.to_string());
    for f in cg.procs_files() {
        cmd.arg("--cgroup").arg(f);
    }
    let netns_fd = net.map(|n| n.netns_fd);
    if let Some(n) = net {
        cmd.arg("--netns-fd").arg(n.netns_fd.to_string());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::RoBind;

    #[test]
    fn sandbox_words_name_no_descriptor_and_no_cgroup() {
        // A parked launcher refuses these in its message: its descriptors come as
        // SCM_RIGHTS and it is already in its cgroup.
        let spec = SandboxSpec {
            id: "sbx-0123456789ab".into(),
            rootfs: "/images/python3.11/rootfs".into(),
            memory_mb: 128,
            tmp_mb: 512,
            network: NetworkMode::Outbound,
            ro_binds: vec![RoBind {
                host: "/srv/in:box".into(),
                guest: "/mnt/in".into(),
            }],
            waiting_runtime: None,
        };
        let net = GuestNet {
            netns_fd: 9,
            resolv: "/var/lib/flint/network/resolv.conf".into(),
        };
        let words: Vec<String> = sandbox_words(&spec, 1 << 30, Some(&net))
            .into_iter()
            .map(|w| w.into_string().unwrap())
            .collect();
        for w in ["--fd", "--tmp-fd", "--netns-fd", "--cgroup"] {
            assert!(!words.iter().any(|x| x == w), "{w} in {words:?}");
        }
        let joined = words.join(" ");
        assert!(
            joined.contains("--rootfs /images/python3.11/rootfs"),
            "{joined}"
        );
        assert!(joined.contains("--uid-base 1073741824"), "{joined}");
        assert!(joined.contains("--ro-bind /srv/in:box:/mnt/in"), "{joined}");
        assert!(
            joined.contains("--resolv-conf /var/lib/flint/network/resolv.conf"),
            "{joined}"
        );
        let words = sandbox_words(&spec, 1 << 30, None);
        assert!(!words.iter().any(|w| w == "--resolv-conf"));
    }
}
