//! x86_64 machine setup: memory layout, boot information, and vCPU register state.

pub mod boot_info;
pub mod cpuid;
pub mod gdt;
pub mod lapic;
pub mod layout;
pub mod mptable;
pub mod msr;
pub mod regs;
pub mod vcpu_state;
pub mod vm_state;

use kvm_bindings::CpuId;
use kvm_ioctls::VcpuFd;
use vm_memory::GuestMemoryMmap;

pub use regs::EntryMode;

/// Errors while configuring a vCPU.
#[derive(Debug, thiserror::Error)]
pub enum VcpuSetupError {
    /// KVM_SET_CPUID2 failed: {0}
    #[error("KVM_SET_CPUID2 failed: {0}")]
    Cpuid(kvm_ioctls::Error),
    /// Cannot set the boot MSRs
    #[error(transparent)]
    Msr(#[from] msr::MsrError),
    /// Cannot set the boot registers
    #[error(transparent)]
    Regs(#[from] regs::RegsError),
    /// Cannot configure the local APIC
    #[error(transparent)]
    Lapic(#[from] lapic::LapicError),
}

/// Where and how the boot vCPU enters the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootEntry {
    /// Entry protocol.
    pub mode: EntryMode,
    /// Guest physical address of the first instruction.
    pub addr: u64,
}

/// Where a stopped vCPU was, for error messages: `rip 0x...`.
pub fn guest_ip(vcpu: &VcpuFd) -> String {
    format!("rip {:#x}", vcpu.get_regs().map(|r| r.rip).unwrap_or(0))
}

/// Configures vCPU `index` of `count`. Only the boot vCPU (index 0) gets boot registers;
/// the others wait for the guest's INIT/SIPI in the in-kernel local APIC.
pub fn setup_vcpu(
    vcpu: &VcpuFd,
    mem: &GuestMemoryMmap<()>,
    supported_cpuid: &CpuId,
    index: u8,
    count: u8,
    entry: BootEntry,
) -> Result<(), VcpuSetupError> {
    let cpuid = cpuid::for_vcpu(supported_cpuid, index, count);
    vcpu.set_cpuid2(&cpuid).map_err(VcpuSetupError::Cpuid)?;
    msr::setup_msrs(vcpu)?;
    lapic::setup_lapic(vcpu)?;
    if index == 0 {
        regs::setup_regs(vcpu, entry.mode, entry.addr)?;
        regs::setup_fpu(vcpu)?;
        regs::setup_sregs(mem, vcpu, entry.mode)?;
    }
    Ok(())
}
