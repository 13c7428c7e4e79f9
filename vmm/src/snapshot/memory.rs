//! The guest memory file: byte `i` is guest physical address `i`. Written sparse (pages
//! that are all zero become holes); restored by mapping the file `MAP_PRIVATE`, so pages
//! are read on first touch and every VM restored from one file shares the pages it has not
//! written (copy-on-write).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use vm_memory::mmap::MmapRegionBuilder;
use vm_memory::{FileOffset, GuestAddress, GuestMemory, GuestMemoryRegion, GuestRegionMmap};

use super::SnapshotError;
use crate::devices::virtio::GuestMemory as GuestMem;

const PAGE: usize = 4096;
static ZERO_PAGE: [u8; PAGE] = [0; PAGE];

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SnapshotError + 'a {
    move |source| SnapshotError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// Writes the bytes of `data` that are not in all-zero pages at their offsets in `file`
/// and sizes it to `data.len()`.
pub fn write_sparse(file: &File, data: &[u8], path: &Path) -> Result<(), SnapshotError> {
    let mut run_start: Option<usize> = None;
    let mut offset = 0;
    while offset < data.len() {
        let end = (offset + PAGE).min(data.len());
        let zero = data[offset..end] == ZERO_PAGE[..end - offset];
        match (zero, run_start) {
            (false, None) => run_start = Some(offset),
            (true, Some(start)) => {
                file.write_all_at(&data[start..offset], start as u64)
                    .map_err(io("write memory file", path))?;
                run_start = None;
            }
            _ => {}
        }
        offset = end;
    }
    if let Some(start) = run_start {
        file.write_all_at(&data[start..], start as u64)
            .map_err(io("write memory file", path))?;
    }
    file.set_len(data.len() as u64)
        .map_err(io("size memory file", path))
}

/// Writes all of guest memory to `path` (through a temporary file and a rename, so a VM
/// restored from an older file at `path` keeps its mapping of the old file). The vCPUs
/// must be paused and the devices quiesced, so nothing changes the memory meanwhile.
pub fn save(mem: &GuestMem, path: &Path) -> Result<(), SnapshotError> {
    let region = match mem.iter().next() {
        Some(r) if r.start_addr().0 == 0 && mem.num_regions() == 1 => r,
        _ => {
            return Err(SnapshotError::Map(
                path.to_owned(),
                "guest memory must be one region at address 0".into(),
            ))
        }
    };
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp_name);
    let file = File::create(&tmp).map_err(io("create memory file", &tmp))?;
    let len = region.len() as usize;
    // SAFETY: the region maps `len` bytes at `as_ptr()` for as long as `mem` lives, and
    // with every vCPU paused and every device quiesced nothing writes to it meanwhile.
    let data = unsafe { std::slice::from_raw_parts(region.as_ptr(), len) };
    write_sparse(&file, data, &tmp)?;
    std::fs::rename(&tmp, path).map_err(io("rename memory file to", path))
}

/// Maps the memory file at `path` as guest memory of `bytes` bytes at address 0,
/// privately: guest writes go to anonymous copies of the pages, never to the file.
pub fn map_private(path: &Path, bytes: u64) -> Result<GuestMem, SnapshotError> {
    let file = File::open(path).map_err(io("open memory file", path))?;
    let found = file
        .metadata()
        .map_err(io("inspect memory file", path))?
        .len();
    if found != bytes {
        return Err(SnapshotError::MemorySize {
            path: path.to_owned(),
            found,
            expected: bytes,
        });
    }
    let region = MmapRegionBuilder::new(bytes as usize)
        .with_file_offset(FileOffset::new(file, 0))
        .with_mmap_prot(libc::PROT_READ | libc::PROT_WRITE)
        .with_mmap_flags(libc::MAP_PRIVATE | libc::MAP_NORESERVE)
        .build()
        .map_err(|e| SnapshotError::Map(path.to_owned(), e.to_string()))?;
    let region = GuestRegionMmap::new(region, GuestAddress(0))
        .ok_or_else(|| SnapshotError::Map(path.to_owned(), "region overflows".into()))?;
    GuestMem::from_regions(vec![region])
        .map_err(|e| SnapshotError::Map(path.to_owned(), e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::Bytes;

    #[test]
    fn sparse_file_round_trips_through_a_private_mapping() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("memory");
        let mem = crate::memory::create_guest_memory(4 << 20).expect("mem");
        mem.write_obj(0x1234_5678u32, GuestAddress(0x2000))
            .expect("write");
        mem.write_obj(0xabu8, GuestAddress((4 << 20) - 1))
            .expect("write");
        save(&mem, &path).expect("save");
        let meta = std::fs::metadata(&path).expect("meta");
        assert_eq!(meta.len(), 4 << 20);
        use std::os::unix::fs::MetadataExt;
        assert!(meta.blocks() * 512 < 1 << 20, "zero pages are holes");

        let restored = map_private(&path, 4 << 20).expect("map");
        assert_eq!(
            restored
                .read_obj::<u32>(GuestAddress(0x2000))
                .expect("read"),
            0x1234_5678
        );
        assert_eq!(
            restored
                .read_obj::<u8>(GuestAddress((4 << 20) - 1))
                .expect("read"),
            0xab
        );
        restored
            .write_obj(7u32, GuestAddress(0x2000))
            .expect("write");
        let again = map_private(&path, 4 << 20).expect("map");
        assert_eq!(
            again.read_obj::<u32>(GuestAddress(0x2000)).expect("read"),
            0x1234_5678,
            "writes stay private to the mapping"
        );
        assert!(matches!(
            map_private(&path, 8 << 20),
            Err(SnapshotError::MemorySize { .. })
        ));
    }
}
