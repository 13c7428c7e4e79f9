//! Restoring a VM from a snapshot directory in a new process: the memory file mapped
//! privately (copy-on-write, read on demand), the same devices in the same slots, then
//! the in-kernel VM state, every vCPU's state, and the devices' state.

use std::sync::{Arc, PoisonError};

use super::{attach, serial_output, vcpu_context, Vmm, VmmError};
use crate::arch::current::layout::SERIAL_IRQ;
use crate::arch::current::{vcpu_state, vm_state};
use crate::bus::MmioBus;
use crate::config::RestoreConfig;
use crate::kvm::KvmVm;
use crate::legacy::serial::SerialPort;
use crate::legacy::PioDevices;
use crate::snapshot::{memory, SnapshotState, MEMORY_FILE};
use crate::timing::BootTimes;

/// The devices the VM in `opts.dir` will have once restored: the snapshot's, with the
/// restore's own vsock socket and TAP put in.
pub fn restored_devices(opts: &RestoreConfig) -> Result<crate::config::DeviceSpec, VmmError> {
    let state = SnapshotState::load(&opts.dir)?;
    let mut devices = state.machine.devices;
    override_host_side(&mut devices, opts)?;
    Ok(devices)
}

/// Puts the restore's own host-side endpoints (vsock socket, TAP) into `devices`.
fn override_host_side(
    devices: &mut crate::config::DeviceSpec,
    opts: &RestoreConfig,
) -> Result<(), VmmError> {
    if let Some(uds) = &opts.vsock_uds {
        match devices.vsock.as_mut() {
            Some((path, _)) => *path = uds.clone(),
            None => {
                return Err(VmmError::Mismatch(
                    "--vsock-uds given but the snapshotted VM has no vsock device".into(),
                ))
            }
        }
    }
    if let Some(tap) = &opts.net_tap {
        match devices.net.as_mut() {
            Some((name, _)) => *name = tap.clone(),
            None => {
                return Err(VmmError::Mismatch(
                    "--net-tap given but the snapshotted VM has no network device".into(),
                ))
            }
        }
    }
    Ok(())
}

impl Vmm {
    /// Restores the VM snapshotted in `opts.dir` (refused if the snapshot's format
    /// version or host CPU model differ from this flint-vmm and host).
    pub fn restore(opts: &RestoreConfig, times: Arc<BootTimes>) -> Result<Self, VmmError> {
        let _span = tracing::info_span!("restore", dir = %opts.dir.display()).entered();
        let started = std::time::Instant::now();
        let state = SnapshotState::load(&opts.dir)?;
        let loaded_us = started.elapsed().as_micros();
        let mut machine = state.machine.clone();
        override_host_side(&mut machine.devices, opts)?;
        if state.vcpus.len() != usize::from(machine.vcpus) {
            return Err(VmmError::Mismatch(format!(
                "{} vCPU states for {} vCPUs",
                state.vcpus.len(),
                machine.vcpus
            )));
        }

        let kvm = KvmVm::new()?;
        let vm_created_us = started.elapsed().as_micros();
        let mem = memory::map_private(&opts.dir.join(MEMORY_FILE), machine.mem_mib << 20)?;
        kvm.register_memory(&mem)?;
        let memory_us = started.elapsed().as_micros();

        let mut vcpus = Vec::with_capacity(state.vcpus.len());
        for index in 0..machine.vcpus {
            vcpus.push(kvm.create_vcpu(u64::from(index))?);
        }
        vm_state::restore(kvm.fd(), &state.vm)?;
        for (index, (vcpu, saved)) in vcpus.iter().zip(&state.vcpus).enumerate() {
            vcpu_state::restore(vcpu, saved).map_err(|e| VmmError::RestoreVcpu(index as u8, e))?;
        }

        let cpu_state_us = started.elapsed().as_micros();
        // Devices last: a restored device may raise its interrupt at once, which must land
        // in the restored interrupt controllers.
        let mut bus = MmioBus::new();
        let (_, transports) =
            attach::attach_devices(&machine.devices, &kvm, &mem, &mut bus, times.clone())?;
        if transports.len() != state.virtio.len() {
            return Err(VmmError::Mismatch(format!(
                "{} virtio devices for {} saved states",
                transports.len(),
                state.virtio.len()
            )));
        }
        for (slot, (transport, saved)) in transports.iter().zip(&state.virtio).enumerate() {
            transport
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .restore(saved)
                .map_err(|e| VmmError::RestoreDevice(slot, e))?;
        }
        let serial = SerialPort::from_snapshot(
            &state.legacy.serial,
            kvm.irq_line(SERIAL_IRQ)?,
            serial_output(opts.serial_log.as_deref())?,
            times.clone(),
        )?;
        let pio = PioDevices::with_i8042(serial, state.legacy.i8042.clone());
        let ctx = vcpu_context(&kvm, pio, bus, times)?;
        tracing::info!(
            loaded_us,
            vm_created_us,
            memory_us,
            cpu_state_us,
            done_us = started.elapsed().as_micros(),
            "restore phases (cumulative microseconds)"
        );
        Ok(Vmm {
            kvm,
            mem,
            vcpus,
            ctx,
            transports,
            machine,
            snapshot_to: None,
            cmdline: String::new(),
            entry: None,
            workaround: false,
        })
    }
}
