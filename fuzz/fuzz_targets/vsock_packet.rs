//! flint-vmm's vsock packet parser (`vmm/src/devices/virtio/vsock/packet.rs`) on a
//! descriptor chain the fuzzer writes (`flint_fuzz::virtq`): a tx chain read as a
//! packet, and the same chain used as an rx buffer for a reply.
#![no_main]

use flint_fuzz::virtq::first_chain;
use flint_vmm::devices::virtio::vsock::packet::{read_tx, rx_capacity, write_rx, HEADER_SIZE};
use flint_vmm::devices::virtio::vsock::PacketHeader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((mem, Ok(chain))) = first_chain(data) else {
        return;
    };
    if let Ok((hdr, payload)) = read_tx(&chain, &mem) {
        assert_eq!(payload.len(), hdr.len as usize);
        assert!(payload.len() as u64 + HEADER_SIZE as u64 <= chain.readable_len());
    }
    if let Ok(cap) = rx_capacity(&chain) {
        let reply = vec![0x5a; (cap as usize).min(512)];
        let hdr = PacketHeader::from_bytes(&[0u8; HEADER_SIZE]);
        if let Ok(used) = write_rx(&chain, &mem, hdr, &reply) {
            assert!(u64::from(used) <= chain.writable_len());
        }
    }
});
