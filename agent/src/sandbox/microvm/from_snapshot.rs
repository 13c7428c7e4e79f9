//! Starting a microVM from a snapshot. Per (runtime, memory size) the first start boots
//! one VM with `--snapshot-to`, waits for flint-init's Hello, sends flint-vmm SIGUSR1
//! (it writes the snapshot and exits 5) and stores the snapshot (snapshots.rs); that
//! start and every later one restore it (`--restore-from`) with the VM's own vsock
//! socket, serial log, cgroup and jail uid. The VMM resets the guest's vsock
//! connections on restore, flint-init dials again and says Hello again, and the
//! backend's first message on the new stream is Resume: fresh seed bytes and the host's
//! time (guest-init/src/resume.rs). A restore that fails deletes the snapshot; the
//! caller then boots the VM, and the next start builds the snapshot again.
//!
//! A function's start whose runtime may wait in a snapshot ([`SandboxSpec::waiting_runtime`])
//! uses a snapshot of that function's own: the VM to snapshot is also sent the runtime's
//! Prepare, and is snapshotted once flint-init reports Prepared (the runtime started and
//! waiting for its function). Its restores then need only Configure.

use super::snapshot_key::SnapshotKey;
use super::snapshots::{self, Snapshots, StartCounts, STARTS};
use super::{Launch, MicroVm, MicroVmBackend};
use crate::sandbox::{new_sandbox_id, Sandbox, SandboxError, SandboxSpec};
use flint_proto::frame::tokio_io::{read_frame, write_frame};
use flint_proto::init::{guest_message::Msg, host_message, GuestMessage, HostMessage, Resume};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Seed bytes sent in Resume.
pub const SEED_BYTES: usize = 64;
/// flint-vmm's exit status after writing a snapshot.
pub const EXIT_SNAPSHOT_WRITTEN: i32 = 5;
/// How long flint-vmm may take to write a snapshot and exit.
const SNAPSHOT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a VM was not restored.
#[derive(Debug, thiserror::Error)]
pub enum FromSnapshotError {
    /// The snapshot's inputs cannot be read
    #[error(transparent)]
    Key(#[from] super::snapshot_key::KeyError),
    /// The store failed
    #[error(transparent)]
    Store(#[from] snapshots::StoreError),
    /// An earlier build of this key failed
    #[error("building the snapshot {0} failed less than {retry} s ago; booting instead", retry = snapshots::BUILD_RETRY_AFTER.as_secs())]
    FailedBefore(String),
    /// The VM could not be set up, or the VM to snapshot did not boot to Hello: booting
    /// instead would fail the same way, so this is the start's error
    #[error(transparent)]
    BootFailed(SandboxError),
    /// Building the snapshot failed
    #[error("building the snapshot {dir}: {message}")]
    Build { dir: PathBuf, message: String },
    /// The restore failed
    #[error("restoring the snapshot {dir}: {source}")]
    Restore { dir: PathBuf, source: SandboxError },
}

/// Restores a VM for `spec` from its snapshot, building the snapshot first if needed.
pub async fn restore(
    backend: &MicroVmBackend,
    store: &Snapshots,
    spec: &SandboxSpec,
    disk: &Path,
) -> Result<MicroVm, FromSnapshotError> {
    let cfg = &backend.cfg;
    let waiting = spec.waiting_runtime.as_ref();
    let key = SnapshotKey::new(&cfg.kernel, disk, &cfg.vmm, spec.memory_mb, waiting)?;
    let dir = match store.ready(&key) {
        Some(dir) => dir,
        None => {
            let lock = store.build_lock(&key);
            let _one_build = lock.lock().await;
            match store.ready(&key) {
                Some(dir) => dir,
                None if store.failed_before(&key) => {
                    return Err(FromSnapshotError::FailedBefore(key.dir_name()))
                }
                None => build(backend, store, &key, spec, disk).await?,
            }
        }
    };
    // A VM that cannot even be set up (cgroup, uid range) would not boot either: that
    // is the start's error, and says nothing about the snapshot.
    let mut vm = backend
        .new_vm(&spec.id, spec.memory_mb)
        .map_err(FromSnapshotError::BootFailed)?;
    let restored = match vm.boot(&backend.cfg, spec, Launch::Restore(&dir)).await {
        Ok(()) => Ok(vm),
        Err(e) => {
            let _ = vm.destroy().await;
            Err(e)
        }
    };
    match restored {
        Ok(vm) => {
            if waiting.is_some() {
                StartCounts::bump(&STARTS.restores_waiting);
                store.used(&key);
            } else {
                StartCounts::bump(&STARTS.restores);
            }
            tracing::info!(sandbox = %spec.id, snapshot = %key.dir_name(), runtime_waiting = waiting.is_some(), "microVM restored from its snapshot");
            Ok(vm)
        }
        Err(source) => {
            StartCounts::bump(&STARTS.restore_failures);
            store.discard(&key);
            Err(FromSnapshotError::Restore { dir, source })
        }
    }
}

/// Boots a VM to flint-init's Hello (and, for a waiting runtime, Prepared) and
/// snapshots it into the store.
async fn build(
    backend: &MicroVmBackend,
    store: &Snapshots,
    key: &SnapshotKey,
    spec: &SandboxSpec,
    disk: &Path,
) -> Result<PathBuf, FromSnapshotError> {
    let tmp = store.start_build(key)?;
    let id = new_sandbox_id();
    tracing::info!(sandbox = %id, snapshot = %key.dir_name(), "booting a microVM to snapshot it");
    let launch = Launch::Boot {
        disk,
        snapshot_to: Some(&tmp),
    };
    let failed = || {
        let _ = std::fs::remove_dir_all(&tmp);
        StartCounts::bump(&STARTS.snapshot_build_failures);
        store.mark_failed(key);
    };
    let result = match backend.start(&id, spec, launch).await {
        Ok(mut vm) => {
            let r = snapshot_when_ready(&mut vm, backend.cfg.boot_timeout, spec).await;
            let _ = vm.destroy().await;
            r
        }
        Err(e) => {
            failed();
            return Err(FromSnapshotError::BootFailed(e));
        }
    };
    let fail = |message: String| {
        failed();
        FromSnapshotError::Build {
            dir: store.dir(key),
            message,
        }
    };
    result.map_err(fail)?;
    let dir = store
        .finish_build(key, &tmp)
        .map_err(|e| fail(e.to_string()))?;
    StartCounts::bump(&STARTS.snapshot_builds);
    tracing::info!(snapshot = %dir.display(), "microVM snapshot built");
    Ok(dir)
}

/// Waits for Hello on `vm`'s stream (and with a waiting runtime in `spec`, sends its
/// Prepare and waits for Prepared), then has flint-vmm snapshot the VM and exit.
async fn snapshot_when_ready(
    vm: &mut MicroVm,
    timeout: Duration,
    spec: &SandboxSpec,
) -> Result<(), String> {
    let mut stream = vm.take_stream().ok_or("the booted VM gave no stream")?;
    let hello = tokio::time::timeout(timeout, read_frame::<_, GuestMessage>(&mut stream)).await;
    match hello {
        Ok(Ok(GuestMessage {
            msg: Some(Msg::Hello(h)),
        })) if h.protocol_version == flint_proto::init::PROTOCOL_VERSION => {}
        Ok(Ok(other)) => return Err(format!("expected flint-init's Hello, got {other:?}")),
        Ok(Err(e)) => return Err(format!("reading flint-init's Hello: {e}")),
        Err(_) => return Err(format!("no Hello from flint-init within {timeout:?}")),
    }
    if let Some(w) = &spec.waiting_runtime {
        let prepare = HostMessage {
            msg: Some(host_message::Msg::Prepare(w.prepare.clone())),
        };
        write_frame(&mut stream, &prepare)
            .await
            .map_err(|e| format!("sending Prepare: {e}"))?;
        let init_timeout = Duration::from_secs(crate::limits::INIT_TIMEOUT_S);
        tokio::time::timeout(init_timeout, until_prepared(&mut stream))
            .await
            .map_err(|_| {
                format!("the runtime did not wait for its function within {init_timeout:?}")
            })??;
    }
    let child = vm.proc.child.as_mut().ok_or("flint-vmm is not running")?;
    let pid = child.id().ok_or("flint-vmm already exited")?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGUSR1,
    )
    .map_err(|e| format!("signalling flint-vmm to snapshot: {e}"))?;
    let status = tokio::time::timeout(SNAPSHOT_WRITE_TIMEOUT, child.wait())
        .await
        .map_err(|_| {
            format!("flint-vmm did not write the snapshot within {SNAPSHOT_WRITE_TIMEOUT:?}")
        })?
        .map_err(|e| format!("waiting for flint-vmm: {e}"))?;
    // The stream's Hello connection ends with the VM; the restored VM dials again.
    drop(stream);
    if status.code() != Some(EXIT_SNAPSHOT_WRITTEN) {
        return Err(format!(
            "flint-vmm exited with {status} instead of {EXIT_SNAPSHOT_WRITTEN} (snapshot written)"
        ));
    }
    Ok(())
}

/// Reads `stream` until flint-init reports Prepared; its InitError or the runtime's
/// exit is the error. The runtime's output before it is dropped (it belongs to no
/// function).
async fn until_prepared(stream: &mut tokio::net::UnixStream) -> Result<(), String> {
    loop {
        let msg = read_frame::<_, GuestMessage>(&mut *stream)
            .await
            .map_err(|e| format!("reading flint-init's Prepared: {e}"))?;
        match msg.msg {
            Some(Msg::Prepared(_)) => return Ok(()),
            Some(Msg::InitError(e)) => {
                return Err(format!(
                    "the runtime failed to start: {} {}",
                    e.error_type,
                    String::from_utf8_lossy(&e.payload)
                ))
            }
            Some(Msg::RuntimeExit(x)) => {
                return Err(format!(
                    "the runtime exited before it waited for its function (code {}, signal {})",
                    x.exit_code, x.signal
                ))
            }
            _ => {}
        }
    }
}

/// The Resume message: [`SEED_BYTES`] from the host's CSPRNG and its wall-clock time.
pub fn resume_message() -> std::io::Result<HostMessage> {
    let mut seed = vec![0u8; SEED_BYTES];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut seed)?;
    let unix_time_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(std::io::Error::other)?
        .as_nanos() as u64;
    Ok(HostMessage {
        msg: Some(host_message::Msg::Resume(Resume { seed, unix_time_ns })),
    })
}

/// Sends Resume, the restored guest's first message.
pub async fn send_resume(stream: &mut tokio::net::UnixStream) -> Result<(), SandboxError> {
    let msg = resume_message()?;
    write_frame(stream, &msg)
        .await
        .map_err(|e| SandboxError::Io(std::io::Error::other(format!("sending Resume: {e}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_resume_has_its_own_seed_and_the_time() {
        let a = resume_message().unwrap();
        let b = resume_message().unwrap();
        let (Some(host_message::Msg::Resume(a)), Some(host_message::Msg::Resume(b))) =
            (a.msg, b.msg)
        else {
            panic!("not Resume");
        };
        assert_eq!(a.seed.len(), SEED_BYTES);
        assert_ne!(a.seed, b.seed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        assert!(a.unix_time_ns <= b.unix_time_ns && b.unix_time_ns <= now);
        assert!(now - a.unix_time_ns < 5_000_000_000);
    }
}
