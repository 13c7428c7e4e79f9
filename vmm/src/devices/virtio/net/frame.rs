//! Frames in and out of descriptor chains: a transmit chain is a vnet header followed by
//! the frame (device-readable); a receive chain gets a header and the frame written into
//! its device-writable buffers. Pure over guest memory, so unit tests and fuzzers can
//! drive it with any chain.

use super::{MAX_FRAME_LEN, MIN_FRAME_LEN, VNET_HDR_LEN};
use crate::devices::virtio::chain::{self, ChainBuffers, ChainError};
use crate::devices::virtio::GuestMemory;

/// Errors reading or writing a frame.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// the chain's buffers are malformed
    #[error("the chain's buffers are malformed: {0}")]
    Chain(#[from] ChainError),
    /// a transmit chain has device-writable buffers
    #[error("a transmit chain has device-writable buffers")]
    WritableTx,
    /// a transmit chain of {0} bytes is shorter than the vnet header and an Ethernet header
    #[error(
        "a transmit chain of {0} bytes is shorter than the vnet header and an Ethernet header"
    )]
    TooShort(u64),
    /// a transmit chain of {0} bytes holds a frame larger than the device sends
    #[error("a transmit chain of {0} bytes holds a frame larger than the device sends (no GSO was negotiated)")]
    TooLong(u64),
    /// a receive chain of {have} bytes cannot hold a {need}-byte frame and its header
    #[error("a receive chain of {have} bytes cannot hold a {need}-byte frame and its header")]
    RxTooSmall {
        /// Writable bytes in the chain.
        have: u64,
        /// Bytes needed.
        need: u64,
    },
}

/// The frame of a transmit chain, without its vnet header (whose fields carry nothing
/// when no offload was negotiated).
pub fn read_tx(buf: &ChainBuffers, mem: &GuestMemory) -> Result<Vec<u8>, FrameError> {
    if !buf.writable.is_empty() {
        return Err(FrameError::WritableTx);
    }
    let total = buf.readable_len();
    let hdr = VNET_HDR_LEN as u64;
    if total < hdr + MIN_FRAME_LEN as u64 {
        return Err(FrameError::TooShort(total));
    }
    if total - hdr > MAX_FRAME_LEN as u64 {
        return Err(FrameError::TooLong(total));
    }
    // Bounded by MAX_FRAME_LEN above.
    let mut frame = vec![0u8; (total - hdr) as usize];
    chain::read_bytes(mem, &buf.readable, hdr, &mut frame)?;
    Ok(frame)
}

/// Writes a zero vnet header with `num_buffers` 1 and then `frame` into a receive chain;
/// returns the bytes written (the used length).
pub fn write_rx(buf: &ChainBuffers, mem: &GuestMemory, frame: &[u8]) -> Result<u32, FrameError> {
    let need = (VNET_HDR_LEN + frame.len()) as u64;
    let have = buf.writable_len();
    if have < need {
        return Err(FrameError::RxTooSmall { have, need });
    }
    let mut hdr = [0u8; VNET_HDR_LEN];
    hdr[10..12].copy_from_slice(&1u16.to_le_bytes());
    chain::write_bytes(mem, &buf.writable, 0, &hdr)?;
    chain::write_bytes(mem, &buf.writable, VNET_HDR_LEN as u64, frame)?;
    // need <= have, a sum of u32 segment lengths bounded by the queue size; the frame
    // itself is at most 64 KiB.
    Ok(u32::try_from(need).unwrap_or(u32::MAX))
}
