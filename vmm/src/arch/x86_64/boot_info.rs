//! Boot information handed to the kernel: the PVH `hvm_start_info` with its memory map,
//! or the Linux `boot_params` zero page with its e820 table.

use linux_loader::loader::bootparam::{boot_e820_entry, boot_params, setup_header};
use linux_loader::loader::elf::start_info::{hvm_memmap_table_entry, hvm_start_info};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::layout::{
    CMDLINE_ADDR, EBDA_START, HIMEM_START, MMIO_GAP_END, MMIO_GAP_START, PVH_INFO_ADDR,
    PVH_MEMMAP_ADDR, ZERO_PAGE_ADDR,
};

const E820_RAM: u32 = 1;
const E820_RESERVED: u32 = 2;
const XEN_HVM_START_MAGIC: u32 = 0x336e_c578;
const KERNEL_BOOT_FLAG_MAGIC: u16 = 0xaa55;
const KERNEL_HDR_MAGIC: u32 = 0x5372_6448;
const KERNEL_LOADER_OTHER: u8 = 0xff;
const KERNEL_MIN_ALIGNMENT: u32 = 0x0100_0000;
const E820_MAX_ENTRIES: usize = 128;

/// Errors while writing boot information.
#[derive(Debug, thiserror::Error)]
pub enum BootInfoError {
    /// cannot write boot information into guest memory: {0}
    #[error("cannot write boot information into guest memory: {0}")]
    Memory(#[from] vm_memory::GuestMemoryError),
    /// guest memory of {0} bytes is too small (must exceed 1 MiB)
    #[error("guest memory of {0} bytes is too small (must exceed 1 MiB)")]
    MemoryTooSmall(u64),
}

/// One range of the guest physical memory map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemRange {
    /// Start address.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// E820 type (1 = RAM, 2 = reserved).
    pub kind: u32,
}

/// The guest's memory map for `mem_bytes` of RAM starting at 0 (below the MMIO gap).
pub fn memory_map(mem_bytes: u64) -> Result<Vec<MemRange>, BootInfoError> {
    if mem_bytes <= HIMEM_START {
        return Err(BootInfoError::MemoryTooSmall(mem_bytes));
    }
    Ok(vec![
        MemRange {
            addr: 0,
            size: EBDA_START,
            kind: E820_RAM,
        },
        MemRange {
            addr: HIMEM_START,
            size: mem_bytes - HIMEM_START,
            kind: E820_RAM,
        },
        MemRange {
            addr: MMIO_GAP_START,
            size: MMIO_GAP_END - MMIO_GAP_START,
            kind: E820_RESERVED,
        },
    ])
}

/// Writes the PVH start info and memory map; `cmdline` is at [`CMDLINE_ADDR`].
pub fn write_pvh_info(mem: &GuestMemoryMmap<()>, mem_bytes: u64) -> Result<(), BootInfoError> {
    let map = memory_map(mem_bytes)?;
    for (i, range) in map.iter().enumerate() {
        let entry = hvm_memmap_table_entry {
            addr: range.addr,
            size: range.size,
            type_: range.kind,
            reserved: 0,
        };
        let at = PVH_MEMMAP_ADDR + (i * std::mem::size_of::<hvm_memmap_table_entry>()) as u64;
        mem.write_obj(entry, GuestAddress(at))?;
    }
    let info = hvm_start_info {
        magic: XEN_HVM_START_MAGIC,
        version: 1,
        cmdline_paddr: CMDLINE_ADDR,
        memmap_paddr: PVH_MEMMAP_ADDR,
        memmap_entries: map.len() as u32,
        ..Default::default()
    };
    mem.write_obj(info, GuestAddress(PVH_INFO_ADDR))?;
    Ok(())
}

/// Writes the Linux zero page. `header` is the bzImage setup header, if any;
/// `cmdline_len` excludes the terminating NUL.
pub fn write_zero_page(
    mem: &GuestMemoryMmap<()>,
    mem_bytes: u64,
    header: Option<setup_header>,
    cmdline_len: usize,
) -> Result<(), BootInfoError> {
    let map = memory_map(mem_bytes)?;
    let mut params = boot_params::default();
    if let Some(hdr) = header {
        params.hdr = hdr;
    }
    params.hdr.type_of_loader = KERNEL_LOADER_OTHER;
    params.hdr.boot_flag = KERNEL_BOOT_FLAG_MAGIC;
    params.hdr.header = KERNEL_HDR_MAGIC;
    params.hdr.cmd_line_ptr = CMDLINE_ADDR as u32;
    params.hdr.cmdline_size = cmdline_len as u32;
    params.hdr.kernel_alignment = KERNEL_MIN_ALIGNMENT;
    for (i, range) in map.iter().take(E820_MAX_ENTRIES).enumerate() {
        params.e820_table[i] = boot_e820_entry {
            addr: range.addr,
            size: range.size,
            type_: range.kind,
        };
    }
    params.e820_entries = map.len() as u8;
    mem.write_obj(params, GuestAddress(ZERO_PAGE_ADDR))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem() -> GuestMemoryMmap<()> {
        GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x20_0000)]).expect("mem")
    }

    #[test]
    fn memory_map_skips_the_ebda_and_reserves_the_gap() {
        let map = memory_map(128 << 20).expect("map");
        assert_eq!(map[0].size, EBDA_START);
        assert_eq!(
            (map[1].addr, map[1].size),
            (HIMEM_START, (128 << 20) - HIMEM_START)
        );
        assert_eq!((map[2].addr, map[2].kind), (MMIO_GAP_START, E820_RESERVED));
        assert!(memory_map(HIMEM_START).is_err());
    }

    #[test]
    fn pvh_info_points_at_cmdline_and_memmap() {
        let m = mem();
        write_pvh_info(&m, 0x20_0000).expect("write");
        let info: hvm_start_info = m.read_obj(GuestAddress(PVH_INFO_ADDR)).expect("read");
        assert_eq!(info.magic, XEN_HVM_START_MAGIC);
        assert_eq!(info.cmdline_paddr, CMDLINE_ADDR);
        assert_eq!(info.memmap_entries, 3);
        let second: hvm_memmap_table_entry = m
            .read_obj(GuestAddress(PVH_MEMMAP_ADDR + 24))
            .expect("read");
        assert_eq!((second.addr, second.type_), (HIMEM_START, E820_RAM));
    }

    #[test]
    fn zero_page_carries_header_magic_cmdline_and_e820() {
        let m = mem();
        write_zero_page(&m, 0x20_0000, None, 42).expect("write");
        let p: boot_params = m.read_obj(GuestAddress(ZERO_PAGE_ADDR)).expect("read");
        assert_eq!({ p.hdr.header }, KERNEL_HDR_MAGIC);
        assert_eq!({ p.hdr.cmd_line_ptr }, CMDLINE_ADDR as u32);
        assert_eq!({ p.hdr.cmdline_size }, 42);
        assert_eq!(p.e820_entries, 3);
        assert_eq!({ p.e820_table[1].addr }, HIMEM_START);
    }
}
