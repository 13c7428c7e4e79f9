//! virtio-net tests: frames through descriptor chains placed in a fake guest's queue by
//! virtio-queue's mock driver (the TAP side is exercised by vmm/tests/net_guest.rs with
//! a real guest and a real TAP in a network namespace of its own).

use virtio_queue::mock::MockSplitQueue;
use virtio_queue::{Queue, QueueOwnedT};
use vm_memory::{Bytes, GuestAddress};

use super::frame::{read_tx, write_rx, FrameError};
use super::{MAX_FRAME_LEN, VNET_HDR_LEN};
use crate::devices::virtio::chain::ChainBuffers;
use crate::devices::virtio::test_utils::{chain_at, guest_memory, W};
use crate::devices::virtio::GuestMemory;

const BUF: u64 = 0x10_0000;

/// Places one chain and returns it flattened.
fn chain(mem: &GuestMemory, bufs: &[(u64, u32, u16)]) -> ChainBuffers {
    let mock = MockSplitQueue::create(mem, GuestAddress(0), 16);
    mock.add_desc_chains(&chain_at(0, bufs), 0).unwrap();
    let mut q: Queue = mock.create_queue().unwrap();
    let c = q.iter(mem).unwrap().next().expect("one chain");
    ChainBuffers::parse(c, mem).unwrap()
}

fn arp_like(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 256) as u8).collect()
}

#[test]
fn tx_frame_is_read_after_the_header_across_segments() {
    let mem = guest_memory();
    let frame = arp_like(60);
    let mut bytes = vec![0u8; VNET_HDR_LEN];
    bytes.extend_from_slice(&frame);
    // Header and the first 20 frame bytes in one buffer, the rest in another.
    mem.write_slice(&bytes[..32], GuestAddress(BUF)).unwrap();
    mem.write_slice(&bytes[32..], GuestAddress(BUF + 0x1000))
        .unwrap();
    let c = chain(&mem, &[(BUF, 32, 0), (BUF + 0x1000, 40, 0)]);
    assert_eq!(read_tx(&c, &mem), Ok(frame));
}

#[test]
fn tx_chains_that_cannot_be_frames_are_refused() {
    let mem = guest_memory();
    let short = chain(&mem, &[(BUF, (VNET_HDR_LEN + 13) as u32, 0)]);
    assert_eq!(
        read_tx(&short, &mem),
        Err(FrameError::TooShort((VNET_HDR_LEN + 13) as u64))
    );
    let long = chain(&mem, &[(BUF, (VNET_HDR_LEN + MAX_FRAME_LEN + 1) as u32, 0)]);
    assert!(matches!(read_tx(&long, &mem), Err(FrameError::TooLong(_))));
    let writable = chain(&mem, &[(BUF, 100, 0), (BUF + 0x1000, 10, W)]);
    assert_eq!(read_tx(&writable, &mem), Err(FrameError::WritableTx));
}

#[test]
fn rx_frame_gets_a_header_with_one_buffer_and_reports_its_length() {
    let mem = guest_memory();
    mem.write_slice(&[0xaa; 64], GuestAddress(BUF)).unwrap();
    let c = chain(&mem, &[(BUF, 8, W), (BUF + 0x1000, 2048, W)]);
    let frame = arp_like(42);
    let len = write_rx(&c, &mem, &frame).unwrap();
    assert_eq!(len as usize, VNET_HDR_LEN + 42);
    let mut hdr = [0u8; 8];
    mem.read_slice(&mut hdr, GuestAddress(BUF)).unwrap();
    assert_eq!(hdr, [0u8; 8], "flags, gso_type, hdr_len, gso_size are zero");
    let mut rest = vec![0u8; 4 + 42];
    mem.read_slice(&mut rest, GuestAddress(BUF + 0x1000))
        .unwrap();
    assert_eq!(&rest[..4], &[0, 0, 1, 0], "csum_offset 0, num_buffers 1");
    assert_eq!(&rest[4..], &frame[..]);
}

#[test]
fn rx_chain_too_small_or_read_only_is_refused() {
    let mem = guest_memory();
    let small = chain(&mem, &[(BUF, 50, W)]);
    assert_eq!(
        write_rx(&small, &mem, &arp_like(42)),
        Err(FrameError::RxTooSmall {
            have: 50,
            need: (VNET_HDR_LEN + 42) as u64
        })
    );
    let read_only = chain(&mem, &[(BUF, 2048, 0)]);
    assert!(matches!(
        write_rx(&read_only, &mem, &arp_like(42)),
        Err(FrameError::RxTooSmall { have: 0, .. })
    ));
}

#[test]
fn bad_tap_names_are_refused_before_any_system_call() {
    for bad in ["", "a/b", "has space", "sixteen-bytes-xx"] {
        assert!(
            matches!(super::Tap::open(bad), Err(super::NetError::BadTapName(_))),
            "{bad:?}"
        );
    }
}
