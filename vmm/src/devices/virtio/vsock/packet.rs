//! virtio-vsock packets (virtio 1.2, 5.10.6): the 44-byte little-endian header, reading
//! a packet out of a tx descriptor chain and writing one into an rx chain. Pure
//! functions over guest memory.

use crate::devices::virtio::chain::{self, ChainBuffers};
use crate::devices::virtio::GuestMemory;

/// Size of `struct virtio_vsock_hdr`.
pub const HEADER_SIZE: usize = 44;
/// Largest payload accepted from the guest in one packet.
pub const MAX_PKT_DATA: u32 = 64 * 1024;

/// Socket type: stream (the only one supported).
pub const TYPE_STREAM: u16 = 1;

/// Packet operations.
pub mod op {
    /// Connection request.
    pub const REQUEST: u16 = 1;
    /// Connection accepted.
    pub const RESPONSE: u16 = 2;
    /// Connection reset.
    pub const RST: u16 = 3;
    /// Shutdown (flags say which directions).
    pub const SHUTDOWN: u16 = 4;
    /// Data.
    pub const RW: u16 = 5;
    /// Credit information, unsolicited.
    pub const CREDIT_UPDATE: u16 = 6;
    /// Asks the peer for a credit update.
    pub const CREDIT_REQUEST: u16 = 7;
}

/// SHUTDOWN flag: the sender will receive no more data.
pub const SHUTDOWN_RCV: u32 = 1;
/// SHUTDOWN flag: the sender will send no more data.
pub const SHUTDOWN_SEND: u32 = 2;

/// A vsock packet header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketHeader {
    /// Source context ID.
    pub src_cid: u64,
    /// Destination context ID.
    pub dst_cid: u64,
    /// Source port.
    pub src_port: u32,
    /// Destination port.
    pub dst_port: u32,
    /// Payload length.
    pub len: u32,
    /// Socket type.
    pub type_: u16,
    /// Operation.
    pub op: u16,
    /// Operation flags.
    pub flags: u32,
    /// Sender's receive buffer size.
    pub buf_alloc: u32,
    /// Bytes the sender has consumed from its receive buffer.
    pub fwd_cnt: u32,
}

fn u32_at(b: &[u8; HEADER_SIZE], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn u64_at(b: &[u8; HEADER_SIZE], i: usize) -> u64 {
    u64::from(u32_at(b, i)) | (u64::from(u32_at(b, i + 4)) << 32)
}

fn u16_at(b: &[u8; HEADER_SIZE], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}

impl PacketHeader {
    /// Decodes the wire format.
    pub fn from_bytes(b: &[u8; HEADER_SIZE]) -> Self {
        PacketHeader {
            src_cid: u64_at(b, 0),
            dst_cid: u64_at(b, 8),
            src_port: u32_at(b, 16),
            dst_port: u32_at(b, 20),
            len: u32_at(b, 24),
            type_: u16_at(b, 28),
            op: u16_at(b, 30),
            flags: u32_at(b, 32),
            buf_alloc: u32_at(b, 36),
            fwd_cnt: u32_at(b, 40),
        }
    }

    /// Encodes the wire format.
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0u8; HEADER_SIZE];
        b[0..8].copy_from_slice(&self.src_cid.to_le_bytes());
        b[8..16].copy_from_slice(&self.dst_cid.to_le_bytes());
        b[16..20].copy_from_slice(&self.src_port.to_le_bytes());
        b[20..24].copy_from_slice(&self.dst_port.to_le_bytes());
        b[24..28].copy_from_slice(&self.len.to_le_bytes());
        b[28..30].copy_from_slice(&self.type_.to_le_bytes());
        b[30..32].copy_from_slice(&self.op.to_le_bytes());
        b[32..36].copy_from_slice(&self.flags.to_le_bytes());
        b[36..40].copy_from_slice(&self.buf_alloc.to_le_bytes());
        b[40..44].copy_from_slice(&self.fwd_cnt.to_le_bytes());
        b
    }
}

/// Why a chain does not hold a usable packet.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PacketError {
    /// the chain is shorter than a packet header
    #[error("the chain is shorter than a packet header")]
    NoHeader,
    /// header announces {len} payload bytes but the chain holds {avail} (limit 64 KiB)
    #[error("header announces {len} payload bytes but the chain holds {avail} (limit 64 KiB)")]
    BadLength {
        /// The offending header (so the connection can be reset).
        hdr: PacketHeader,
        /// Announced length.
        len: u32,
        /// Readable payload bytes present.
        avail: u64,
    },
    /// the rx buffer is too small for a packet header
    #[error("the rx buffer is too small for a packet header")]
    RxTooSmall,
    /// guest memory access failed: {0}
    #[error("guest memory access failed: {0}")]
    Memory(#[from] chain::ChainError),
}

/// Reads the packet the guest put in a tx chain: header plus `hdr.len` payload bytes.
pub fn read_tx(
    buf: &ChainBuffers,
    mem: &GuestMemory,
) -> Result<(PacketHeader, Vec<u8>), PacketError> {
    let mut raw = [0u8; HEADER_SIZE];
    chain::read_bytes(mem, &buf.readable, 0, &mut raw).map_err(|_| PacketError::NoHeader)?;
    let hdr = PacketHeader::from_bytes(&raw);
    let avail = buf.readable_len() - HEADER_SIZE as u64;
    if hdr.len > MAX_PKT_DATA || u64::from(hdr.len) > avail {
        return Err(PacketError::BadLength {
            hdr,
            len: hdr.len,
            avail,
        });
    }
    let mut data = vec![0u8; hdr.len as usize];
    chain::read_bytes(mem, &buf.readable, HEADER_SIZE as u64, &mut data)?;
    Ok((hdr, data))
}

/// Payload bytes an rx chain can take after the header.
pub fn rx_capacity(buf: &ChainBuffers) -> Result<u32, PacketError> {
    let cap = buf
        .writable_len()
        .checked_sub(HEADER_SIZE as u64)
        .ok_or(PacketError::RxTooSmall)?;
    Ok(cap.min(u64::from(MAX_PKT_DATA)) as u32)
}

/// Writes a packet into an rx chain; returns the used length. `hdr.len` is set from
/// `data`.
pub fn write_rx(
    buf: &ChainBuffers,
    mem: &GuestMemory,
    mut hdr: PacketHeader,
    data: &[u8],
) -> Result<u32, PacketError> {
    let len = u32::try_from(data.len()).map_err(|_| PacketError::RxTooSmall)?;
    if len > rx_capacity(buf)? {
        return Err(PacketError::RxTooSmall);
    }
    hdr.len = len;
    chain::write_bytes(mem, &buf.writable, 0, &hdr.to_bytes())?;
    chain::write_bytes(mem, &buf.writable, HEADER_SIZE as u64, data)?;
    Ok(HEADER_SIZE as u32 + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_with_spec_offsets() {
        let h = PacketHeader {
            src_cid: 3,
            dst_cid: 2,
            src_port: 0x1234,
            dst_port: 1024,
            len: 5,
            type_: TYPE_STREAM,
            op: op::RW,
            flags: 0,
            buf_alloc: 0x4_0000,
            fwd_cnt: 7,
        };
        let b = h.to_bytes();
        assert_eq!(&b[8..16], &2u64.to_le_bytes());
        assert_eq!(&b[20..24], &1024u32.to_le_bytes());
        assert_eq!(&b[30..32], &op::RW.to_le_bytes());
        assert_eq!(&b[40..44], &7u32.to_le_bytes());
        assert_eq!(PacketHeader::from_bytes(&b), h);
    }
}
