//! Boot register state of a vCPU: general registers, segment and control registers,
//! the FPU, and the identity-mapped long-mode page tables.

use kvm_bindings::{kvm_fpu, kvm_regs, kvm_sregs};
use kvm_ioctls::VcpuFd;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::gdt;
use super::layout::{
    BOOT_STACK_ADDR, GDT_ADDR, IDT_ADDR, PDPT_ADDR, PD_ADDR, PML4_ADDR, PVH_INFO_ADDR,
    ZERO_PAGE_ADDR,
};

const CR0_PE: u64 = 1;
const CR0_ET: u64 = 1 << 4;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const PAGE_PRESENT_RW: u64 = 0x3;
const PAGE_HUGE: u64 = 0x80;

/// How the boot vCPU enters the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryMode {
    /// PVH: 32-bit protected mode, paging off, `ebx` = start_info address.
    Pvh,
    /// Linux 64-bit boot protocol: long mode, identity paging, `rsi` = zero page.
    Linux64,
}

/// Errors while setting boot registers.
#[derive(Debug, thiserror::Error)]
pub enum RegsError {
    /// cannot write boot structures into guest memory: {0}
    #[error("cannot write boot structures into guest memory: {0}")]
    Memory(#[from] vm_memory::GuestMemoryError),
    /// KVM_{0} failed: {1}
    #[error("KVM_{0} failed: {1}")]
    Kvm(&'static str, kvm_ioctls::Error),
}

/// Writes the boot GDT and an empty IDT and returns the loaded segment registers.
fn setup_descriptor_tables(
    mem: &GuestMemoryMmap<()>,
    sregs: &mut kvm_sregs,
    mode: EntryMode,
) -> Result<(), RegsError> {
    let table = match mode {
        EntryMode::Pvh => gdt::boot_gdt(gdt::CODE32, gdt::TSS32),
        EntryMode::Linux64 => gdt::boot_gdt(gdt::CODE64, gdt::TSS64),
    };
    for (i, entry) in table.iter().enumerate() {
        mem.write_obj(*entry, GuestAddress(GDT_ADDR + 8 * i as u64))?;
    }
    mem.write_obj(0u64, GuestAddress(IDT_ADDR))?;
    sregs.gdt.base = GDT_ADDR;
    sregs.gdt.limit = (std::mem::size_of_val(&table) - 1) as u16;
    sregs.idt.base = IDT_ADDR;
    sregs.idt.limit = 7;

    let code = gdt::segment(table[1], 1);
    let data = gdt::segment(table[2], 2);
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = gdt::segment(table[3], 3);
    Ok(())
}

/// Identity-maps the first 1 GiB with 2 MiB pages.
pub fn write_page_tables(mem: &GuestMemoryMmap<()>) -> Result<(), RegsError> {
    mem.write_obj(PDPT_ADDR | PAGE_PRESENT_RW, GuestAddress(PML4_ADDR))?;
    mem.write_obj(PD_ADDR | PAGE_PRESENT_RW, GuestAddress(PDPT_ADDR))?;
    for i in 0..512u64 {
        mem.write_obj(
            (i << 21) | PAGE_HUGE | PAGE_PRESENT_RW,
            GuestAddress(PD_ADDR + i * 8),
        )?;
    }
    Ok(())
}

/// Sets segment and control registers for `mode`, writing the tables they point to.
pub fn setup_sregs(
    mem: &GuestMemoryMmap<()>,
    vcpu: &VcpuFd,
    mode: EntryMode,
) -> Result<(), RegsError> {
    let mut sregs = vcpu
        .get_sregs()
        .map_err(|e| RegsError::Kvm("GET_SREGS", e))?;
    setup_descriptor_tables(mem, &mut sregs, mode)?;
    match mode {
        EntryMode::Pvh => {
            sregs.cr0 = CR0_PE | CR0_ET;
            sregs.cr4 = 0;
            sregs.efer = 0;
        }
        EntryMode::Linux64 => {
            write_page_tables(mem)?;
            sregs.cr3 = PML4_ADDR;
            sregs.cr4 |= CR4_PAE;
            sregs.cr0 |= CR0_PE | CR0_PG | CR0_ET;
            sregs.efer |= EFER_LME | EFER_LMA;
        }
    }
    vcpu.set_sregs(&sregs)
        .map_err(|e| RegsError::Kvm("SET_SREGS", e))
}

/// Sets the general registers: entry point, boot stack and the boot-information pointer.
pub fn setup_regs(vcpu: &VcpuFd, mode: EntryMode, entry: u64) -> Result<(), RegsError> {
    let mut regs = kvm_regs {
        rflags: 0x2,
        rip: entry,
        ..Default::default()
    };
    match mode {
        EntryMode::Pvh => regs.rbx = PVH_INFO_ADDR,
        EntryMode::Linux64 => {
            regs.rsp = BOOT_STACK_ADDR;
            regs.rbp = BOOT_STACK_ADDR;
            regs.rsi = ZERO_PAGE_ADDR;
        }
    }
    vcpu.set_regs(&regs)
        .map_err(|e| RegsError::Kvm("SET_REGS", e))
}

/// Sets the x87/SSE state to its power-on defaults.
pub fn setup_fpu(vcpu: &VcpuFd) -> Result<(), RegsError> {
    let fpu = kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    };
    vcpu.set_fpu(&fpu).map_err(|e| RegsError::Kvm("SET_FPU", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tables_identity_map_the_first_gib() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x10_0000)]).expect("mem");
        write_page_tables(&mem).expect("tables");
        let pml4: u64 = mem.read_obj(GuestAddress(PML4_ADDR)).expect("read");
        assert_eq!(pml4, PDPT_ADDR | 3);
        let pdpt: u64 = mem.read_obj(GuestAddress(PDPT_ADDR)).expect("read");
        assert_eq!(pdpt, PD_ADDR | 3);
        let last: u64 = mem.read_obj(GuestAddress(PD_ADDR + 511 * 8)).expect("read");
        assert_eq!(last, (511 << 21) | 0x83);
    }
}
