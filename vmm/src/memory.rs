//! Guest RAM: one anonymous private mapping starting at the architecture's `RAM_START`
//! (0 on x86_64, below the MMIO gap; 2 GiB on aarch64, above the devices).

use vm_memory::{GuestAddress, GuestMemoryMmap};

use crate::arch::current::layout::{MAX_MEM_BYTES, RAM_START};

/// Errors while creating guest memory.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// guest memory of {0} bytes is more than this machine's memory map holds ({MAX_MEM_BYTES} bytes)
    #[error("guest memory of {0} bytes is more than this machine's memory map holds ({MAX_MEM_BYTES} bytes)")]
    TooLarge(u64),
    /// cannot map guest memory: {0}
    #[error("cannot map guest memory: {0}")]
    Mmap(#[from] vm_memory::mmap::FromRangesError),
}

/// Maps `bytes` of guest RAM at guest physical address `RAM_START`.
pub fn create_guest_memory(bytes: u64) -> Result<GuestMemoryMmap<()>, MemoryError> {
    if bytes > MAX_MEM_BYTES {
        return Err(MemoryError::TooLarge(bytes));
    }
    Ok(GuestMemoryMmap::<()>::from_ranges(&[(
        GuestAddress(RAM_START),
        bytes as usize,
    )])?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::{Bytes, GuestMemory};

    #[test]
    fn maps_one_region_at_ram_start() {
        let mem = create_guest_memory(4 << 20).expect("mem");
        assert_eq!(mem.num_regions(), 1);
        assert_eq!(mem.last_addr(), GuestAddress(RAM_START + (4 << 20) - 1));
        mem.write_obj(0xabu8, GuestAddress(RAM_START + (4 << 20) - 1))
            .expect("write");
    }

    #[test]
    fn refuses_memory_overlapping_the_gap() {
        assert!(matches!(
            create_guest_memory(MAX_MEM_BYTES + 4096),
            Err(MemoryError::TooLarge(_))
        ));
    }
}
