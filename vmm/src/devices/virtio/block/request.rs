//! virtio-blk requests: parsing a flattened descriptor chain into a [`Request`] and
//! executing it against a [`Disk`]. Both steps are plain functions over guest memory,
//! so benchmarks and tests can call them without a queue or a transport.

use vm_memory::{Address, Bytes, GuestAddress};

use super::disk::Disk;
use super::{
    bindings, ID_BYTES, SECTOR_SHIFT, SECTOR_SIZE, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK,
    VIRTIO_BLK_S_UNSUPP,
};
use crate::devices::virtio::chain::{self, ChainBuffers, ChainError, Segment};
use crate::devices::virtio::GuestMemory;

/// Size of the request header (type, reserved, sector).
pub const HEADER_SIZE: usize = 16;
/// Bytes copied per step between the disk and guest memory.
const CHUNK: usize = 64 * 1024;

/// What a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestType {
    /// Read sectors into the guest.
    In,
    /// Write guest data to sectors.
    Out,
    /// Flush written data to stable storage.
    Flush,
    /// Return the device ID string.
    GetId,
    /// Anything else (answered with UNSUPP).
    Unsupported(u32),
}

impl From<u32> for RequestType {
    fn from(t: u32) -> Self {
        match t {
            bindings::VIRTIO_BLK_T_IN => RequestType::In,
            bindings::VIRTIO_BLK_T_OUT => RequestType::Out,
            bindings::VIRTIO_BLK_T_FLUSH => RequestType::Flush,
            bindings::VIRTIO_BLK_T_GET_ID => RequestType::GetId,
            other => RequestType::Unsupported(other),
        }
    }
}

/// Why a chain is not a request at all (it is then returned unused, length 0).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    /// malformed descriptor chain: {0}
    #[error("malformed descriptor chain: {0}")]
    Chain(#[from] ChainError),
    /// the readable part is shorter than the 16-byte request header
    #[error("the readable part is shorter than the 16-byte request header")]
    HeaderTooShort,
    /// no device-writable byte for the status
    #[error("no device-writable byte for the status")]
    NoStatus,
}

/// A parsed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The request type.
    pub kind: RequestType,
    /// First sector.
    pub sector: u64,
    /// Data buffers: device-writable for IN/GET_ID, device-readable for OUT.
    pub data: Vec<Segment>,
    /// Where the status byte goes.
    pub status: GuestAddress,
}

/// The outcome of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The status byte written to the guest.
    pub status: u8,
    /// Bytes written into device-writable buffers (the used-ring length).
    pub used_len: u32,
}

/// `len` bytes of `segs` starting at byte `offset`, as segments.
fn sub_segments(segs: &[Segment], mut offset: u64, mut len: u64) -> Vec<Segment> {
    let mut out = Vec::new();
    for s in segs {
        if len == 0 {
            break;
        }
        let sl = u64::from(s.len);
        if offset >= sl {
            offset -= sl;
            continue;
        }
        let n = (sl - offset).min(len);
        // n <= s.len, so it fits in u32; the address was range-checked when parsed.
        out.push(Segment {
            addr: s.addr.unchecked_add(offset),
            len: n as u32,
        });
        len -= n;
        offset = 0;
    }
    out
}

impl Request {
    /// Parses a chain: a 16-byte header at the start of the readable part, the status
    /// byte as the last writable byte, data in between.
    pub fn parse(buf: &ChainBuffers, mem: &GuestMemory) -> Result<Self, RequestError> {
        let mut header = [0u8; HEADER_SIZE];
        chain::read_bytes(mem, &buf.readable, 0, &mut header)
            .map_err(|_| RequestError::HeaderTooShort)?;
        let kind = RequestType::from(u32::from_le_bytes([
            header[0], header[1], header[2], header[3],
        ]));
        let mut sector_bytes = [0u8; 8];
        sector_bytes.copy_from_slice(&header[8..16]);
        let sector = u64::from_le_bytes(sector_bytes);

        let writable_len = buf.writable_len();
        if writable_len == 0 {
            return Err(RequestError::NoStatus);
        }
        let status = sub_segments(&buf.writable, writable_len - 1, 1)
            .first()
            .map(|s| s.addr)
            .ok_or(RequestError::NoStatus)?;
        let data = match kind {
            RequestType::In | RequestType::GetId => {
                sub_segments(&buf.writable, 0, writable_len - 1)
            }
            RequestType::Out => {
                let readable_len = buf.readable_len();
                sub_segments(
                    &buf.readable,
                    HEADER_SIZE as u64,
                    readable_len - HEADER_SIZE as u64,
                )
            }
            RequestType::Flush | RequestType::Unsupported(_) => Vec::new(),
        };
        Ok(Request {
            kind,
            sector,
            data,
            status,
        })
    }

    /// Total data length.
    pub fn data_len(&self) -> u64 {
        chain::total_len(&self.data)
    }

    /// Executes the request against `disk` and writes the status byte.
    pub fn execute(&self, disk: &Disk, mem: &GuestMemory) -> Completion {
        let (status, data_written) = match self.kind {
            RequestType::In => (self.transfer(disk, mem, false), self.data_len()),
            RequestType::Out => (self.transfer(disk, mem, true), 0),
            RequestType::Flush => match disk.flush() {
                Ok(()) => (VIRTIO_BLK_S_OK, 0),
                Err(_) => (VIRTIO_BLK_S_IOERR, 0),
            },
            RequestType::GetId => {
                let n = self.data_len().min(ID_BYTES as u64) as usize;
                match chain::write_bytes(mem, &self.data, 0, &disk.id()[..n]) {
                    Ok(()) => (VIRTIO_BLK_S_OK, n as u64),
                    Err(_) => (VIRTIO_BLK_S_IOERR, 0),
                }
            }
            RequestType::Unsupported(_) => (VIRTIO_BLK_S_UNSUPP, 0),
        };
        let data_written = if status == VIRTIO_BLK_S_OK {
            data_written
        } else {
            0
        };
        // The status address was range-checked when the chain was parsed.
        let status_ok = mem.write_obj(status, self.status).is_ok();
        Completion {
            status,
            used_len: u32::try_from(data_written)
                .unwrap_or(u32::MAX)
                .saturating_add(u32::from(status_ok)),
        }
    }

    /// Moves the data between the disk and guest memory, returning the status.
    fn transfer(&self, disk: &Disk, mem: &GuestMemory, write: bool) -> u8 {
        let len = self.data_len();
        if len & (SECTOR_SIZE - 1) != 0 || !disk.in_range(self.sector, len) {
            return VIRTIO_BLK_S_IOERR;
        }
        if write && disk.read_only() {
            return VIRTIO_BLK_S_IOERR;
        }
        let mut scratch = vec![0u8; CHUNK.min(len as usize)];
        let mut pos = 0u64;
        let base = self.sector << SECTOR_SHIFT;
        while pos < len {
            let n = (len - pos).min(CHUNK as u64) as usize;
            let buf = &mut scratch[..n];
            let ok = if write {
                chain::read_bytes(mem, &self.data, pos, buf).is_ok()
                    && disk.write_at(buf, base + pos).is_ok()
            } else {
                disk.read_at(buf, base + pos).is_ok()
                    && chain::write_bytes(mem, &self.data, pos, buf).is_ok()
            };
            if !ok {
                return VIRTIO_BLK_S_IOERR;
            }
            pos += n as u64;
        }
        VIRTIO_BLK_S_OK
    }
}
