//! vCPU state for snapshots on aarch64: not saved. flint-vmm refuses `--snapshot-to` and
//! `--restore-from` on aarch64 before it builds a VM (vmm/README.md, "aarch64"); this
//! module gives the shared run loop (`vcpu.rs`) the types it has on x86_64, and
//! [`save`] says why it cannot, should a pause ever be asked for.

use kvm_ioctls::{Kvm, VcpuFd};

/// Errors while saving a vCPU.
#[derive(Debug, thiserror::Error)]
pub enum VcpuStateError {
    /// A KVM call failed.
    #[error("KVM_{0} failed: {1}")]
    Kvm(&'static str, kvm_ioctls::Error),
    /// Snapshots are x86_64-only.
    #[error("vCPU state cannot be saved on aarch64: snapshots need an x86_64 host")]
    Unsupported,
}

/// What a snapshot's vCPU state would include: nothing on aarch64.
#[derive(Clone, Debug, Default)]
pub struct SaveCaps {
    _nothing: (),
}

impl SaveCaps {
    /// Nothing to probe on aarch64.
    pub fn probe(_kvm: &Kvm) -> Result<Self, VcpuStateError> {
        Ok(SaveCaps::default())
    }
}

/// A saved vCPU: no value exists on aarch64.
#[derive(Debug)]
pub enum VcpuState {}

/// Refuses: aarch64 vCPU state is not saved.
pub fn save(_vcpu: &VcpuFd, _caps: &SaveCaps) -> Result<VcpuState, VcpuStateError> {
    Err(VcpuStateError::Unsupported)
}
