//! The VM-wide in-kernel state a snapshot keeps: both 8259 PICs, the IOAPIC, the PIT and
//! the kvmclock.

use kvm_bindings::{
    kvm_clock_data, kvm_irqchip, kvm_pit_state2, KVM_CLOCK_TSC_STABLE, KVM_IRQCHIP_IOAPIC,
    KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE,
};
use kvm_ioctls::VmFd;
use serde::{Deserialize, Serialize};

/// Errors while saving or restoring VM state.
#[derive(Debug, thiserror::Error)]
#[error("KVM_{0} failed: {1}")]
pub struct VmStateError(&'static str, kvm_ioctls::Error);

/// In-kernel VM state.
#[derive(Debug, Serialize, Deserialize)]
pub struct VmState {
    /// Master 8259 (KVM_GET_IRQCHIP chip 0).
    pub pic_master: kvm_irqchip,
    /// Slave 8259 (chip 1).
    pub pic_slave: kvm_irqchip,
    /// IOAPIC (chip 2).
    pub ioapic: kvm_irqchip,
    /// The i8254 PIT (KVM_GET_PIT2).
    pub pit: kvm_pit_state2,
    /// kvmclock (KVM_GET_CLOCK), without the TSC-stable flag KVM refuses on restore.
    pub clock: kvm_clock_data,
}

fn chip(vm: &VmFd, id: u32) -> Result<kvm_irqchip, VmStateError> {
    let mut chip = kvm_irqchip {
        chip_id: id,
        ..Default::default()
    };
    vm.get_irqchip(&mut chip)
        .map_err(|e| VmStateError("GET_IRQCHIP", e))?;
    Ok(chip)
}

/// Reads the VM's in-kernel state (vCPUs paused).
pub fn save(vm: &VmFd) -> Result<VmState, VmStateError> {
    let mut clock = vm.get_clock().map_err(|e| VmStateError("GET_CLOCK", e))?;
    clock.flags &= !KVM_CLOCK_TSC_STABLE;
    Ok(VmState {
        pic_master: chip(vm, KVM_IRQCHIP_PIC_MASTER)?,
        pic_slave: chip(vm, KVM_IRQCHIP_PIC_SLAVE)?,
        ioapic: chip(vm, KVM_IRQCHIP_IOAPIC)?,
        pit: vm.get_pit2().map_err(|e| VmStateError("GET_PIT2", e))?,
        clock,
    })
}

/// Loads `state` into a VM created with an irqchip and a PIT (before its vCPUs run).
pub fn restore(vm: &VmFd, state: &VmState) -> Result<(), VmStateError> {
    vm.set_pit2(&state.pit)
        .map_err(|e| VmStateError("SET_PIT2", e))?;
    vm.set_clock(&state.clock)
        .map_err(|e| VmStateError("SET_CLOCK", e))?;
    for chip in [&state.pic_master, &state.pic_slave, &state.ioapic] {
        vm.set_irqchip(chip)
            .map_err(|e| VmStateError("SET_IRQCHIP", e))?;
    }
    Ok(())
}
