//! A descriptor chain flattened into its device-readable and device-writable buffers,
//! with bounds-checked gather/scatter into guest memory. Pure over guest memory: the
//! block and vsock request parsers are built on it, and so can benchmarks be.

use std::ops::Deref;

use virtio_queue::DescriptorChain;
use vm_memory::{Address, Bytes, GuestAddress, GuestMemory as _};

use super::GuestMemory;

/// Longest chain accepted (the largest queue we offer is 256 entries).
pub const MAX_SEGMENTS: usize = 1024;

/// One guest buffer of a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Guest physical address.
    pub addr: GuestAddress,
    /// Length in bytes.
    pub len: u32,
}

/// Errors from flattening or accessing a chain.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChainError {
    /// a device-readable descriptor follows a device-writable one
    #[error("a device-readable descriptor follows a device-writable one")]
    ReadableAfterWritable,
    /// the chain has more than the maximum number of descriptors
    #[error("the chain has more than the maximum number of descriptors")]
    TooLong,
    /// a descriptor lies outside guest memory
    #[error("a descriptor lies outside guest memory")]
    OutOfGuestMemory,
    /// access past the end of the chain's buffers
    #[error("access past the end of the chain's buffers")]
    OutOfBounds,
}

/// The buffers of one descriptor chain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainBuffers {
    /// Index of the chain's head descriptor (what goes into the used ring).
    pub head: u16,
    /// Device-readable buffers, in order.
    pub readable: Vec<Segment>,
    /// Device-writable buffers, in order.
    pub writable: Vec<Segment>,
}

impl ChainBuffers {
    /// Flattens a chain (indirect tables are followed by `virtio-queue`), checking that
    /// every buffer lies inside `mem` and that writable buffers come last.
    pub fn parse<M>(chain: DescriptorChain<M>, mem: &GuestMemory) -> Result<Self, ChainError>
    where
        M: Deref,
        M::Target: vm_memory::GuestMemory,
    {
        let mut out = ChainBuffers {
            head: chain.head_index(),
            ..Default::default()
        };
        for desc in chain {
            if out.readable.len() + out.writable.len() >= MAX_SEGMENTS {
                return Err(ChainError::TooLong);
            }
            let seg = Segment {
                addr: desc.addr(),
                len: desc.len(),
            };
            if seg.len > 0 && !mem.check_range(seg.addr, seg.len as usize) {
                return Err(ChainError::OutOfGuestMemory);
            }
            if desc.is_write_only() {
                out.writable.push(seg);
            } else if out.writable.is_empty() {
                out.readable.push(seg);
            } else {
                return Err(ChainError::ReadableAfterWritable);
            }
        }
        Ok(out)
    }

    /// Total bytes of the readable buffers.
    pub fn readable_len(&self) -> u64 {
        total_len(&self.readable)
    }

    /// Total bytes of the writable buffers.
    pub fn writable_len(&self) -> u64 {
        total_len(&self.writable)
    }
}

/// Sum of the segments' lengths.
pub fn total_len(segs: &[Segment]) -> u64 {
    segs.iter().map(|s| u64::from(s.len)).sum()
}

/// Walks `segs` from byte `offset` for `len` bytes, calling `f(guest_addr, range_in_buf)`
/// for each piece.
fn walk(
    segs: &[Segment],
    mut offset: u64,
    len: usize,
    mut f: impl FnMut(GuestAddress, std::ops::Range<usize>) -> Result<(), ChainError>,
) -> Result<(), ChainError> {
    let mut done = 0usize;
    for seg in segs {
        if done == len {
            break;
        }
        let seg_len = u64::from(seg.len);
        if offset >= seg_len {
            offset -= seg_len;
            continue;
        }
        // Bounded by seg.len (a u32), so it fits in usize.
        let avail = (seg_len - offset) as usize;
        let n = avail.min(len - done);
        let addr = seg
            .addr
            .checked_add(offset)
            .ok_or(ChainError::OutOfGuestMemory)?;
        f(addr, done..done + n)?;
        done += n;
        offset = 0;
    }
    if done == len {
        Ok(())
    } else {
        Err(ChainError::OutOfBounds)
    }
}

/// Reads `buf.len()` bytes starting `offset` bytes into `segs`.
pub fn read_bytes(
    mem: &GuestMemory,
    segs: &[Segment],
    offset: u64,
    buf: &mut [u8],
) -> Result<(), ChainError> {
    let len = buf.len();
    walk(segs, offset, len, |addr, r| {
        mem.read_slice(&mut buf[r], addr)
            .map_err(|_| ChainError::OutOfGuestMemory)
    })
}

/// Writes `data` starting `offset` bytes into `segs`.
pub fn write_bytes(
    mem: &GuestMemory,
    segs: &[Segment],
    offset: u64,
    data: &[u8],
) -> Result<(), ChainError> {
    walk(segs, offset, data.len(), |addr, r| {
        mem.write_slice(&data[r], addr)
            .map_err(|_| ChainError::OutOfGuestMemory)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::virtio::test_utils::{chain_at, guest_memory, W};
    use virtio_queue::mock::MockSplitQueue;
    use virtio_queue::{Queue, QueueT};

    fn first_chain(
        mem: &GuestMemory,
        descs: &[virtio_queue::desc::RawDescriptor],
    ) -> Result<ChainBuffers, ChainError> {
        let mock = MockSplitQueue::create(mem, GuestAddress(0), 16);
        mock.add_desc_chains(descs, 0).unwrap();
        let mut q: Queue = mock.create_queue().unwrap();
        let chain = q.pop_descriptor_chain(mem).unwrap();
        ChainBuffers::parse(chain, mem)
    }

    #[test]
    fn splits_readable_and_writable() {
        let mem = guest_memory();
        let c = first_chain(
            &mem,
            &chain_at(0, &[(0x10000, 16, 0), (0x11000, 512, W), (0x12000, 1, W)]),
        )
        .unwrap();
        assert_eq!(c.head, 0);
        assert_eq!(c.readable.len(), 1);
        assert_eq!(c.writable.len(), 2);
        assert_eq!(c.readable_len(), 16);
        assert_eq!(c.writable_len(), 513);
    }

    #[test]
    fn readable_after_writable_is_rejected() {
        let mem = guest_memory();
        let r = first_chain(&mem, &chain_at(0, &[(0x10000, 16, W), (0x11000, 16, 0)]));
        assert_eq!(r, Err(ChainError::ReadableAfterWritable));
    }

    #[test]
    fn buffer_outside_memory_is_rejected() {
        let mem = guest_memory();
        let r = first_chain(&mem, &chain_at(0, &[(0xffff_0000_0000, 16, 0)]));
        assert_eq!(r, Err(ChainError::OutOfGuestMemory));
    }

    #[test]
    fn gather_and_scatter_cross_segment_boundaries() {
        let mem = guest_memory();
        let segs = [
            Segment {
                addr: GuestAddress(0x10000),
                len: 3,
            },
            Segment {
                addr: GuestAddress(0x20000),
                len: 5,
            },
        ];
        write_bytes(&mem, &segs, 1, &[1, 2, 3, 4, 5, 6]).unwrap();
        let mut out = [0u8; 8];
        read_bytes(&mem, &segs, 0, &mut out).unwrap();
        assert_eq!(out, [0, 1, 2, 3, 4, 5, 6, 0]);
        assert_eq!(
            write_bytes(&mem, &segs, 4, &[0; 5]),
            Err(ChainError::OutOfBounds)
        );
        assert_eq!(
            read_bytes(&mem, &segs, 9, &mut [0; 1]),
            Err(ChainError::OutOfBounds)
        );
    }
}
