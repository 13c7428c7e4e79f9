//! Kernel loading with linux-loader: an ELF vmlinux (booted through its PVH entry note when
//! present, else through the 64-bit Linux boot protocol at its ELF entry), or a bzImage
//! (64-bit entry 0x200 past its protected-mode code). Also places the command line.

use std::fs::File;
use std::path::Path;

use linux_loader::loader::bootparam::setup_header;
use linux_loader::loader::elf::PvhBootCapability;
use linux_loader::loader::{BzImage, Elf, KernelLoader};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::arch::current::layout::{CMDLINE_ADDR, CMDLINE_MAX_SIZE, HIMEM_START};
use crate::arch::current::{BootEntry, EntryMode};

/// Offset of the 64-bit entry point inside a bzImage's protected-mode kernel.
const BZIMAGE_64BIT_ENTRY_OFFSET: u64 = 0x200;

/// Errors while loading the kernel.
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    /// cannot open kernel {0}: {1}
    #[error("cannot open kernel {0}: {1}")]
    Open(std::path::PathBuf, std::io::Error),
    /// cannot load kernel {path}: as ELF: {elf}; as bzImage: {bzimage}
    #[error("cannot load kernel {path}: as ELF: {elf}; as bzImage: {bzimage}")]
    Load {
        /// The kernel path.
        path: std::path::PathBuf,
        /// Why the ELF loader refused it.
        elf: linux_loader::loader::Error,
        /// Why the bzImage loader refused it.
        bzimage: linux_loader::loader::Error,
    },
    /// kernel command line is {0} bytes; the limit is {max}
    #[error("kernel command line is {0} bytes; the limit is {max}", max = CMDLINE_MAX_SIZE - 1)]
    CmdlineTooLong(usize),
    /// cannot write the command line into guest memory: {0}
    #[error("cannot write the command line into guest memory: {0}")]
    Memory(#[from] vm_memory::GuestMemoryError),
}

/// A kernel in guest memory.
#[derive(Clone, Copy, Debug)]
pub struct LoadedKernel {
    /// How and where to enter it.
    pub entry: BootEntry,
    /// The bzImage setup header, for the zero page.
    pub setup_header: Option<setup_header>,
    /// First guest address past the kernel.
    pub end: u64,
}

/// Loads the kernel at `path` into `mem`.
pub fn load_kernel(mem: &GuestMemoryMmap<()>, path: &Path) -> Result<LoadedKernel, LoaderError> {
    let mut file = File::open(path).map_err(|e| LoaderError::Open(path.into(), e))?;
    let himem = Some(GuestAddress(HIMEM_START));
    let elf = match Elf::load(mem, None, &mut file, himem) {
        Ok(res) => {
            let entry = match res.pvh_boot_cap {
                PvhBootCapability::PvhEntryPresent(addr) => BootEntry {
                    mode: EntryMode::Pvh,
                    addr: addr.0,
                },
                _ => BootEntry {
                    mode: EntryMode::Linux64,
                    addr: res.kernel_load.0,
                },
            };
            return Ok(LoadedKernel {
                entry,
                setup_header: None,
                end: res.kernel_end,
            });
        }
        Err(e) => e,
    };
    match BzImage::load(mem, None, &mut file, himem) {
        Ok(res) => Ok(LoadedKernel {
            entry: BootEntry {
                mode: EntryMode::Linux64,
                addr: res.kernel_load.0 + BZIMAGE_64BIT_ENTRY_OFFSET,
            },
            setup_header: res.setup_header,
            end: res.kernel_end,
        }),
        Err(bzimage) => Err(LoaderError::Load {
            path: path.into(),
            elf,
            bzimage,
        }),
    }
}

/// Writes `cmdline` (NUL-terminated) at [`CMDLINE_ADDR`].
pub fn write_cmdline(mem: &GuestMemoryMmap<()>, cmdline: &str) -> Result<(), LoaderError> {
    if cmdline.len() >= CMDLINE_MAX_SIZE {
        return Err(LoaderError::CmdlineTooLong(cmdline.len()));
    }
    mem.write_slice(cmdline.as_bytes(), GuestAddress(CMDLINE_ADDR))?;
    mem.write_obj(0u8, GuestAddress(CMDLINE_ADDR + cmdline.len() as u64))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem() -> GuestMemoryMmap<()> {
        GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x40_0000)]).expect("mem")
    }

    #[test]
    fn garbage_is_refused_with_both_reasons() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("junk");
        std::fs::write(&path, vec![0x41u8; 8192]).expect("write");
        let err = load_kernel(&mem(), &path).expect_err("junk");
        let text = err.to_string();
        assert!(
            text.contains("as ELF") && text.contains("as bzImage"),
            "{text}"
        );
    }

    #[test]
    fn cmdline_is_nul_terminated_and_bounded() {
        let m = mem();
        write_cmdline(&m, "console=ttyS0").expect("write");
        let mut buf = [0xffu8; 14];
        m.read_slice(&mut buf, GuestAddress(CMDLINE_ADDR))
            .expect("read");
        assert_eq!(&buf, b"console=ttyS0\0");
        let long = "x".repeat(CMDLINE_MAX_SIZE);
        assert!(matches!(
            write_cmdline(&m, &long),
            Err(LoaderError::CmdlineTooLong(_))
        ));
    }
}
