//! Taking a snapshot of a running VM: pause every vCPU (flag, then kick signals until each
//! thread reports its state), quiesce the devices, read the in-kernel VM state, write the
//! memory file and then the state file.

use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use super::{Vmm, VmmError};
use crate::arch::current::vcpu_state::VcpuState;
use crate::arch::current::vm_state;
use crate::exit::VmExit;
use crate::pause;
use crate::snapshot::{memory, SnapshotError, SnapshotState, MEMORY_FILE, STATE_FILE};
use crate::vcpu::VmEvent;

/// How long the vCPUs get to pause.
const PAUSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a vCPU that has not paused yet is kicked again.
const KICK_INTERVAL: Duration = Duration::from_millis(1);

/// Pauses every vCPU; returns their states, or the VM's end if it ended meanwhile.
fn pause_all(
    vmm: &Vmm,
    threads: &[libc::pthread_t],
    events: &Receiver<VmEvent>,
) -> Result<Result<Vec<VcpuState>, VmExit>, VmmError> {
    let started = Instant::now();
    vmm.ctx.pause.request();
    let mut states: Vec<Option<VcpuState>> = threads.iter().map(|_| None).collect();
    while states.iter().any(Option::is_none) {
        for (thread, state) in threads.iter().zip(&states) {
            if state.is_none() {
                // A thread that already left KVM_RUN ignores the signal.
                let _ = pause::kick(*thread);
            }
        }
        match events.recv_timeout(KICK_INTERVAL) {
            Ok(VmEvent::Paused(index, state)) => {
                let state = (*state).map_err(|e| VmmError::SaveVcpu(index, e))?;
                if let Some(slot) = states.get_mut(usize::from(index)) {
                    *slot = Some(state);
                }
            }
            Ok(VmEvent::Exit(exit)) => return Ok(Err(exit)),
            Ok(VmEvent::SnapshotRequested) => {}
            Err(RecvTimeoutError::Timeout) if started.elapsed() > PAUSE_TIMEOUT => {
                return Err(VmmError::PauseTimeout(PAUSE_TIMEOUT))
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Err(VmmError::NoExitReason),
        }
    }
    Ok(Ok(states.into_iter().flatten().collect()))
}

/// Writes `vmm` to `dir` and returns the VM's end: [`VmExit::Snapshot`], or how the VM
/// ended if it did so before every vCPU paused.
pub(super) fn take(
    vmm: &Vmm,
    dir: &Path,
    threads: &[libc::pthread_t],
    events: &Receiver<VmEvent>,
) -> Result<VmExit, VmmError> {
    let _span = tracing::info_span!("snapshot", dir = %dir.display()).entered();
    let started = Instant::now();
    let vcpus = match pause_all(vmm, threads, events)? {
        Ok(states) => states,
        Err(exit) => return Ok(exit),
    };
    let paused_us = started.elapsed().as_micros();
    let legacy = vmm.ctx.pio.snapshot();
    let virtio = vmm
        .transports
        .iter()
        .map(|t| t.lock().unwrap_or_else(PoisonError::into_inner).snapshot())
        .collect();
    let vm = vm_state::save(vmm.kvm.fd())?;
    std::fs::create_dir_all(dir).map_err(|source| SnapshotError::Io {
        what: "create snapshot directory",
        path: dir.to_owned(),
        source,
    })?;
    // A state file is only ever next to the memory file it belongs to.
    let state_path = dir.join(STATE_FILE);
    match std::fs::remove_file(&state_path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(SnapshotError::Io {
                what: "remove the old snapshot state",
                path: state_path,
                source: e,
            }
            .into())
        }
        _ => {}
    }
    memory::save(&vmm.mem, &dir.join(MEMORY_FILE))?;
    SnapshotState::new(vmm.machine.clone(), vm, vcpus, legacy, virtio).store(dir)?;
    tracing::info!(
        paused_us,
        total_us = started.elapsed().as_micros(),
        "snapshot written; the VM stops"
    );
    Ok(VmExit::Snapshot(dir.display().to_string()))
}
