//! A virtqueue whose descriptor table the fuzzer writes: the first bytes of the input
//! are up to 16 raw split descriptors (guest address, length, flags and `next` exactly
//! as a guest would write them, loops and wild addresses included), the rest is the
//! guest memory the buffers usually point into. The head of the chain is descriptor 0.

use flint_vmm::devices::virtio::chain::{ChainBuffers, ChainError};
use flint_vmm::devices::virtio::GuestMemory;
use virtio_queue::desc::{split::Descriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress};

/// Guest memory size: 1 MiB at address 0.
pub const MEM_SIZE: usize = 1 << 20;
/// Where the input's data bytes are written in guest memory.
pub const DATA_AT: u64 = 0x1_0000;
/// Queue size (descriptors in the table).
pub const QUEUE_SIZE: u16 = 16;
/// Bytes of one descriptor in the input: address (u64), length (u32), flags, next (u16).
pub const DESC_BYTES: usize = 16;

/// Guest memory, and the first chain of a queue built from `input`: `None` when the
/// input is too short or the queue yields no chain, `Some(Err)` when the chain itself is
/// refused by [`ChainBuffers::parse`].
pub fn first_chain(input: &[u8]) -> Option<(GuestMemory, Result<ChainBuffers, ChainError>)> {
    let (&count, rest) = input.split_first()?;
    let count = usize::from(count % QUEUE_SIZE as u8) + 1;
    if rest.len() < count * DESC_BYTES {
        return None;
    }
    let (table, data) = rest.split_at(count * DESC_BYTES);
    let mem = GuestMemory::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).ok()?;
    let data = &data[..data.len().min(MEM_SIZE - DATA_AT as usize)];
    mem.write_slice(data, GuestAddress(DATA_AT)).ok()?;
    let mock = MockSplitQueue::create(&mem, GuestAddress(0), QUEUE_SIZE);
    for (i, d) in table.chunks_exact(DESC_BYTES).enumerate() {
        let u64_at = |o: usize| u64::from_le_bytes(d[o..o + 8].try_into().expect("8 bytes"));
        let u32_at = |o: usize| u32::from_le_bytes(d[o..o + 4].try_into().expect("4 bytes"));
        let u16_at = |o: usize| u16::from_le_bytes(d[o..o + 2].try_into().expect("2 bytes"));
        let desc = Descriptor::new(u64_at(0), u32_at(8), u16_at(12), u16_at(14));
        mock.desc_table()
            .store(i as u16, RawDescriptor::from(desc))
            .ok()?;
    }
    mock.avail().ring().ref_at(0).ok()?.store(0);
    mock.avail().idx().store(1);
    let mut q: Queue = mock.create_queue().ok()?;
    let chain = q.pop_descriptor_chain(&mem)?;
    let parsed = ChainBuffers::parse(chain, &mem);
    Some((mem, parsed))
}

/// Encodes descriptors as [`first_chain`] reads them (for seed inputs and tests).
pub fn encode(descs: &[(u64, u32, u16, u16)], data: &[u8]) -> Vec<u8> {
    let mut v = vec![(descs.len() as u8).wrapping_sub(1)];
    for &(addr, len, flags, next) in descs {
        v.extend_from_slice(&addr.to_le_bytes());
        v.extend_from_slice(&len.to_le_bytes());
        v.extend_from_slice(&flags.to_le_bytes());
        v.extend_from_slice(&next.to_le_bytes());
    }
    v.extend_from_slice(data);
    v
}
