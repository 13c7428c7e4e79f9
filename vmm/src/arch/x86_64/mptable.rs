//! The Intel MultiProcessor Specification 1.4 table: lets a guest without ACPI find its
//! CPUs, the IOAPIC and how ISA interrupts are wired. Built as bytes, then written at
//! [`MPTABLE_ADDR`] (the start of the EBDA, where Linux looks for it).

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::layout::{IOAPIC_ADDR, IRQ_MAX, LAPIC_ADDR, MPTABLE_ADDR};

const SPEC_REV: u8 = 4;
const APIC_VERSION: u8 = 0x14;
const IOAPIC_VERSION: u8 = 0x11;
const CPU_ENABLED: u8 = 1;
const CPU_BSP: u8 = 2;
const CPU_SIGNATURE: u32 = 0x600;
const CPU_FEATURES_FPU_APIC: u32 = 0x201;
const ENTRY_PROCESSOR: u8 = 0;
const ENTRY_BUS: u8 = 1;
const ENTRY_IOAPIC: u8 = 2;
const ENTRY_IO_INTERRUPT: u8 = 3;
const ENTRY_LOCAL_INTERRUPT: u8 = 4;
const IRQ_INT: u8 = 0;
const IRQ_NMI: u8 = 1;
const IRQ_EXTINT: u8 = 3;
const BUS_ISA: u8 = 0;
const FLOATING_LEN: usize = 16;
const HEADER_LEN: usize = 44;
/// Space reserved for the table (up to the end of the EBDA's first KiB).
const MAX_LEN: usize = 1024;

/// Errors while writing the MP table.
#[derive(Debug, thiserror::Error)]
pub enum MptableError {
    /// {0} vCPUs do not fit in the MP table
    #[error("{0} vCPUs do not fit in the MP table")]
    TooManyCpus(u8),
    /// cannot write the MP table into guest memory: {0}
    #[error("cannot write the MP table into guest memory: {0}")]
    Memory(#[from] vm_memory::GuestMemoryError),
}

fn checksum(bytes: &[u8]) -> u8 {
    let sum = bytes.iter().fold(0u8, |acc, b| acc.wrapping_add(*b));
    0u8.wrapping_sub(sum)
}

fn entries(cpus: u8) -> (Vec<u8>, u16) {
    let mut out = Vec::new();
    let mut count = 0u16;
    for id in 0..cpus {
        let flags = CPU_ENABLED | if id == 0 { CPU_BSP } else { 0 };
        out.extend_from_slice(&[ENTRY_PROCESSOR, id, APIC_VERSION, flags]);
        out.extend_from_slice(&CPU_SIGNATURE.to_le_bytes());
        out.extend_from_slice(&CPU_FEATURES_FPU_APIC.to_le_bytes());
        out.extend_from_slice(&[0u8; 8]);
        count += 1;
    }
    out.extend_from_slice(&[ENTRY_BUS, BUS_ISA]);
    out.extend_from_slice(b"ISA   ");
    count += 1;
    let ioapic_id = cpus;
    out.extend_from_slice(&[ENTRY_IOAPIC, ioapic_id, IOAPIC_VERSION, CPU_ENABLED]);
    out.extend_from_slice(&(IOAPIC_ADDR as u32).to_le_bytes());
    count += 1;
    for irq in 0..=IRQ_MAX as u8 {
        out.extend_from_slice(&[
            ENTRY_IO_INTERRUPT,
            IRQ_INT,
            0,
            0,
            BUS_ISA,
            irq,
            ioapic_id,
            irq,
        ]);
        count += 1;
    }
    out.extend_from_slice(&[ENTRY_LOCAL_INTERRUPT, IRQ_EXTINT, 0, 0, BUS_ISA, 0, 0, 0]);
    out.extend_from_slice(&[ENTRY_LOCAL_INTERRUPT, IRQ_NMI, 0, 0, BUS_ISA, 0, 0xff, 1]);
    count += 2;
    (out, count)
}

/// Builds the floating pointer structure followed by the configuration table, as it
/// must sit at guest address `base`.
pub fn build(cpus: u8, base: u64) -> Result<Vec<u8>, MptableError> {
    let (body, count) = entries(cpus);
    let table_len = HEADER_LEN + body.len();
    if FLOATING_LEN + table_len > MAX_LEN {
        return Err(MptableError::TooManyCpus(cpus));
    }
    let mut floating = Vec::with_capacity(FLOATING_LEN);
    floating.extend_from_slice(b"_MP_");
    floating.extend_from_slice(&((base as u32) + FLOATING_LEN as u32).to_le_bytes());
    floating.extend_from_slice(&[1, SPEC_REV, 0, 0, 0, 0, 0, 0]);
    floating[10] = checksum(&floating);

    let mut table = Vec::with_capacity(table_len);
    table.extend_from_slice(b"PCMP");
    table.extend_from_slice(&(table_len as u16).to_le_bytes());
    table.extend_from_slice(&[SPEC_REV, 0]);
    table.extend_from_slice(b"FLINT   ");
    table.extend_from_slice(b"MICROVM     ");
    table.extend_from_slice(&[0u8; 6]);
    table.extend_from_slice(&count.to_le_bytes());
    table.extend_from_slice(&(LAPIC_ADDR as u32).to_le_bytes());
    table.extend_from_slice(&[0u8; 4]);
    table.extend_from_slice(&body);
    table[7] = checksum(&table);

    floating.extend_from_slice(&table);
    Ok(floating)
}

/// Writes the MP table for `cpus` vCPUs into guest memory.
pub fn write(mem: &GuestMemoryMmap<()>, cpus: u8) -> Result<(), MptableError> {
    let bytes = build(cpus, MPTABLE_ADDR)?;
    mem.write_slice(&bytes, GuestAddress(MPTABLE_ADDR))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(bytes: &[u8]) -> u8 {
        bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b))
    }

    #[test]
    fn both_structures_checksum_to_zero() {
        let bytes = build(4, MPTABLE_ADDR).expect("build");
        assert_eq!(&bytes[..4], b"_MP_");
        assert_eq!(sum(&bytes[..FLOATING_LEN]), 0);
        let table = &bytes[FLOATING_LEN..];
        assert_eq!(&table[..4], b"PCMP");
        assert_eq!(
            usize::from(u16::from_le_bytes([table[4], table[5]])),
            table.len()
        );
        assert_eq!(sum(table), 0);
        let pointer = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        assert_eq!(u64::from(pointer), MPTABLE_ADDR + FLOATING_LEN as u64);
    }

    #[test]
    fn entry_count_covers_cpus_bus_ioapic_and_irqs() {
        let bytes = build(2, MPTABLE_ADDR).expect("build");
        let table = &bytes[FLOATING_LEN..];
        let count = u16::from_le_bytes([table[34], table[35]]);
        assert_eq!(count, 2 + 1 + 1 + 24 + 2);
        // The second processor entry is enabled but not the BSP.
        let cpu1 = &table[HEADER_LEN + 20..HEADER_LEN + 40];
        assert_eq!(
            (cpu1[0], cpu1[1], cpu1[3]),
            (ENTRY_PROCESSOR, 1, CPU_ENABLED)
        );
    }

    #[test]
    fn too_many_cpus_is_an_error() {
        assert!(build(32, MPTABLE_ADDR).is_ok());
        assert!(matches!(
            build(60, MPTABLE_ADDR),
            Err(MptableError::TooManyCpus(60))
        ));
    }
}
