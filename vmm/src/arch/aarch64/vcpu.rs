//! aarch64 vCPU set-up: KVM_ARM_VCPU_INIT with the host's preferred target and PSCI 0.2
//! (KVM then answers the guest's PSCI calls itself: CPU_ON brings up secondaries, and
//! SYSTEM_OFF/SYSTEM_RESET come out as KVM_EXIT_SYSTEM_EVENT, see
//! [`crate::exit::VmExit::from_system_event`]). Secondary vCPUs start powered off; the
//! boot vCPU starts at the kernel's entry in EL1h with interrupts masked and the device
//! tree's address in x0.

use kvm_bindings::{
    kvm_vcpu_init, KVM_ARM_VCPU_POWER_OFF, KVM_ARM_VCPU_PSCI_0_2, KVM_REG_ARM64,
    KVM_REG_ARM64_SYSREG, KVM_REG_ARM_CORE, KVM_REG_SIZE_U64,
};
use kvm_ioctls::{VcpuFd, VmFd};

/// Errors while configuring a vCPU.
#[derive(Debug, thiserror::Error)]
pub enum VcpuSetupError {
    /// KVM_ARM_PREFERRED_TARGET failed.
    #[error("KVM_ARM_PREFERRED_TARGET failed: {0}")]
    PreferredTarget(kvm_ioctls::Error),
    /// KVM_ARM_VCPU_INIT failed.
    #[error("KVM_ARM_VCPU_INIT failed: {0}")]
    Init(kvm_ioctls::Error),
    /// A register could not be read or written.
    #[error("KVM_{op}_ONE_REG {reg} failed: {err}")]
    Reg {
        /// GET or SET.
        op: &'static str,
        /// Register name.
        reg: &'static str,
        /// KVM's error.
        err: kvm_ioctls::Error,
    },
}

/// PSTATE at entry: EL1 with SP_EL1 (EL1h), and D, A, I, F masked, as booting.rst asks.
pub const PSTATE_BOOT: u64 = 0x3c5;

/// Offsets in `struct kvm_regs` (`user_pt_regs` first: x0-x30, sp, pc, pstate).
const X0_OFFSET: u64 = 0;
const PC_OFFSET: u64 = 32 * 8;
const PSTATE_OFFSET: u64 = 33 * 8;

/// The ONE_REG id of the 64-bit core register at byte `offset` of `struct kvm_regs`.
pub const fn core_reg(offset: u64) -> u64 {
    KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE as u64 | (offset / 4)
}

/// The ONE_REG id of system register (op0, op1, CRn, CRm, op2).
pub const fn sys_reg(op0: u64, op1: u64, crn: u64, crm: u64, op2: u64) -> u64 {
    KVM_REG_ARM64
        | KVM_REG_SIZE_U64
        | KVM_REG_ARM64_SYSREG as u64
        | (op0 << 14)
        | (op1 << 11)
        | (crn << 7)
        | (crm << 3)
        | op2
}

/// MPIDR_EL1: the vCPU's affinity, the `reg` of its device tree node.
pub const MPIDR_EL1: u64 = sys_reg(3, 0, 0, 0, 5);

/// Initialises vCPU `index`: preferred target, PSCI 0.2, and powered off unless it is
/// the boot vCPU.
pub fn init(vm: &VmFd, vcpu: &VcpuFd, index: u8) -> Result<(), VcpuSetupError> {
    let mut kvi = kvm_vcpu_init::default();
    vm.get_preferred_target(&mut kvi)
        .map_err(VcpuSetupError::PreferredTarget)?;
    kvi.features[0] |= 1 << KVM_ARM_VCPU_PSCI_0_2;
    if index > 0 {
        kvi.features[0] |= 1 << KVM_ARM_VCPU_POWER_OFF;
    }
    vcpu.vcpu_init(&kvi).map_err(VcpuSetupError::Init)
}

fn set(vcpu: &VcpuFd, reg: &'static str, id: u64, value: u64) -> Result<(), VcpuSetupError> {
    vcpu.set_one_reg(id, &value.to_le_bytes())
        .map(|_| ())
        .map_err(|err| VcpuSetupError::Reg {
            op: "SET",
            reg,
            err,
        })
}

/// Points the boot vCPU at the kernel: PC = `entry`, x0 = `fdt_addr`, PSTATE EL1h masked.
pub fn setup_boot_regs(vcpu: &VcpuFd, entry: u64, fdt_addr: u64) -> Result<(), VcpuSetupError> {
    set(vcpu, "pstate", core_reg(PSTATE_OFFSET), PSTATE_BOOT)?;
    set(vcpu, "pc", core_reg(PC_OFFSET), entry)?;
    set(vcpu, "x0", core_reg(X0_OFFSET), fdt_addr)
}

/// Reads the vCPU's program counter.
pub fn pc(vcpu: &VcpuFd) -> Result<u64, VcpuSetupError> {
    get(vcpu, "pc", core_reg(PC_OFFSET))
}

fn get(vcpu: &VcpuFd, reg: &'static str, id: u64) -> Result<u64, VcpuSetupError> {
    let mut bytes = [0u8; 8];
    vcpu.get_one_reg(id, &mut bytes)
        .map_err(|err| VcpuSetupError::Reg {
            op: "GET",
            reg,
            err,
        })?;
    Ok(u64::from_le_bytes(bytes))
}

/// Reads the vCPU's MPIDR_EL1 (KVM derives it from the vCPU id).
pub fn mpidr(vcpu: &VcpuFd) -> Result<u64, VcpuSetupError> {
    get(vcpu, "MPIDR_EL1", MPIDR_EL1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_ids_match_the_kernel_encoding() {
        // From the arm64 KVM uapi: KVM_REG_ARM64 | U64 | CORE | (offset of pc / 4).
        assert_eq!(core_reg(PC_OFFSET), 0x6030_0000_0010_0040);
        assert_eq!(core_reg(X0_OFFSET), 0x6030_0000_0010_0000);
        // MPIDR_EL1 = op0 3, op1 0, CRn 0, CRm 0, op2 5.
        assert_eq!(MPIDR_EL1, 0x6030_0000_0013_c005);
    }
}
