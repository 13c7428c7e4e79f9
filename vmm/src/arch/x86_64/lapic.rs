//! Local APIC setup: LINT0 delivers the legacy PIC's interrupts (ExtINT), LINT1 is NMI,
//! as on a PC whose firmware put the APIC in virtual-wire mode.

use kvm_bindings::kvm_lapic_state;
use kvm_ioctls::VcpuFd;

const APIC_LVT0: usize = 0x350;
const APIC_LVT1: usize = 0x360;
const DELIVERY_MODE_MASK: u32 = 0x700;
const MODE_NMI: u32 = 0x4;
const MODE_EXTINT: u32 = 0x7;

/// Errors while configuring the local APIC.
#[derive(Debug, thiserror::Error)]
pub enum LapicError {
    /// KVM_{0} failed: {1}
    #[error("KVM_{0} failed: {1}")]
    Kvm(&'static str, kvm_ioctls::Error),
}

fn read_reg(state: &kvm_lapic_state, offset: usize) -> u32 {
    let mut bytes = [0u8; 4];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = state.regs[offset + i] as u8;
    }
    u32::from_le_bytes(bytes)
}

fn write_reg(state: &mut kvm_lapic_state, offset: usize, value: u32) {
    for (i, b) in value.to_le_bytes().iter().enumerate() {
        state.regs[offset + i] = *b as _;
    }
}

fn with_mode(reg: u32, mode: u32) -> u32 {
    (reg & !DELIVERY_MODE_MASK) | (mode << 8)
}

/// Applies the virtual-wire LINT0/LINT1 configuration to an APIC register page.
pub fn set_lints(state: &mut kvm_lapic_state) {
    let lvt0 = read_reg(state, APIC_LVT0);
    write_reg(state, APIC_LVT0, with_mode(lvt0, MODE_EXTINT));
    let lvt1 = read_reg(state, APIC_LVT1);
    write_reg(state, APIC_LVT1, with_mode(lvt1, MODE_NMI));
}

/// Configures LINT0/LINT1 of `vcpu`'s in-kernel local APIC.
pub fn setup_lapic(vcpu: &VcpuFd) -> Result<(), LapicError> {
    let mut state = vcpu
        .get_lapic()
        .map_err(|e| LapicError::Kvm("GET_LAPIC", e))?;
    set_lints(&mut state);
    vcpu.set_lapic(&state)
        .map_err(|e| LapicError::Kvm("SET_LAPIC", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lints_get_extint_and_nmi_and_keep_other_bits() {
        let mut state = kvm_lapic_state::default();
        write_reg(&mut state, APIC_LVT0, 0x0001_0000 | 0x100);
        set_lints(&mut state);
        assert_eq!(read_reg(&state, APIC_LVT0), 0x0001_0700);
        assert_eq!(read_reg(&state, APIC_LVT1), 0x400);
    }
}
