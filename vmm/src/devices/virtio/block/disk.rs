//! The host side of a virtio-blk device: a file addressed in 512-byte sectors, with
//! positional reads/writes so no seek state is shared.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{BlockError, ID_BYTES, SECTOR_SHIFT};

/// A disk image file.
#[derive(Debug)]
pub struct Disk {
    file: File,
    sectors: u64,
    read_only: bool,
    id: [u8; ID_BYTES],
}

impl Disk {
    /// Opens `path` (read-only if `read_only`); `id` (at most 20 bytes) is what GET_ID
    /// returns. A trailing partial sector is not addressable.
    pub fn open(path: &Path, read_only: bool, id: &str) -> Result<Self, BlockError> {
        if id.len() > ID_BYTES {
            return Err(BlockError::IdTooLong(id.to_owned()));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(path)
            .map_err(|source| BlockError::Open {
                path: path.to_owned(),
                source,
            })?;
        let len = file
            .metadata()
            .map_err(|source| BlockError::Metadata {
                path: path.to_owned(),
                source,
            })?
            .len();
        let mut id_bytes = [0u8; ID_BYTES];
        id_bytes[..id.len()].copy_from_slice(id.as_bytes());
        Ok(Disk {
            file,
            sectors: len >> SECTOR_SHIFT,
            read_only,
            id: id_bytes,
        })
    }

    /// Capacity in 512-byte sectors.
    pub fn sectors(&self) -> u64 {
        self.sectors
    }

    /// Whether writes are refused.
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// The GET_ID answer (NUL-padded).
    pub fn id(&self) -> &[u8; ID_BYTES] {
        &self.id
    }

    /// Whether `len` bytes at `sector` lie inside the disk.
    pub fn in_range(&self, sector: u64, len: u64) -> bool {
        let end_sector = len.div_ceil(1 << SECTOR_SHIFT);
        sector
            .checked_add(end_sector)
            .is_some_and(|end| end <= self.sectors)
    }

    /// Reads exactly `buf.len()` bytes at byte `offset`.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    /// Writes all of `buf` at byte `offset`.
    pub fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    /// Flushes written data to stable storage.
    pub fn flush(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}
