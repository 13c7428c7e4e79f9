//! Guest RAM: one anonymous private mapping starting at guest address 0, below the MMIO gap.

use vm_memory::{GuestAddress, GuestMemoryMmap};

use crate::arch::current::layout::MAX_MEM_BYTES;

/// Errors while creating guest memory.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// guest memory of {0} bytes does not fit below the MMIO gap ({MAX_MEM_BYTES} bytes)
    #[error("guest memory of {0} bytes does not fit below the MMIO gap ({MAX_MEM_BYTES} bytes)")]
    TooLarge(u64),
    /// cannot map guest memory: {0}
    #[error("cannot map guest memory: {0}")]
    Mmap(#[from] vm_memory::mmap::FromRangesError),
}

/// Maps `bytes` of guest RAM at guest physical address 0.
pub fn create_guest_memory(bytes: u64) -> Result<GuestMemoryMmap<()>, MemoryError> {
    if bytes > MAX_MEM_BYTES {
        return Err(MemoryError::TooLarge(bytes));
    }
    Ok(GuestMemoryMmap::<()>::from_ranges(&[(
        GuestAddress(0),
        bytes as usize,
    )])?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::{Bytes, GuestMemory};

    #[test]
    fn maps_one_region_at_zero() {
        let mem = create_guest_memory(4 << 20).expect("mem");
        assert_eq!(mem.num_regions(), 1);
        assert_eq!(mem.last_addr(), GuestAddress((4 << 20) - 1));
        mem.write_obj(0xabu8, GuestAddress((4 << 20) - 1))
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
