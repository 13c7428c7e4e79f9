//! The arm64 Linux `Image` loader (Documentation/arch/arm64/booting.rst): a 64-byte
//! header (magic "ARM\x64" at byte 56, `text_offset`, `image_size`, flags), loaded at a
//! 2 MiB-aligned base + `text_offset` at the start of RAM; the boot vCPU enters at its
//! first byte with the device tree's address in x0.

use std::io::{Read, Seek, SeekFrom};

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::layout::{fdt_addr, KERNEL_ALIGN, RAM_START};

/// The header's magic number, little-endian "ARM\x64".
pub const IMAGE_MAGIC: u32 = 0x644d_5241;
/// Size of the header.
pub const HEADER_SIZE: usize = 64;
/// `text_offset` of kernels older than 3.17, whose `image_size` is 0.
pub const LEGACY_TEXT_OFFSET: u64 = 0x8_0000;

/// Errors while loading an Image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Shorter than its own header.
    #[error("the kernel is {0} bytes, shorter than the 64-byte arm64 Image header")]
    Short(u64),
    /// Not an arm64 Image.
    #[error("not an arm64 Image: magic {0:#010x} at byte 56, expected {IMAGE_MAGIC:#010x} (\"ARM\\x64\"); give the uncompressed arch/arm64/boot/Image")]
    BadMagic(u32),
    /// A big-endian kernel.
    #[error("the kernel is big-endian (Image flags bit 0); this VMM boots little-endian guests")]
    BigEndian,
    /// `text_offset` not 4 KiB aligned or beyond the 2 MiB block.
    #[error("text_offset {0:#x} is not a 4 KiB-aligned offset below 2 MiB")]
    BadTextOffset(u64),
    /// The kernel (with its BSS) reaches the device tree or the end of RAM.
    #[error("the kernel needs {need:#x} bytes from {load:#x}, but only {room:#x} are free below the device tree; give the VM more memory")]
    NoRoom {
        /// Load address.
        load: u64,
        /// Bytes the kernel needs (`image_size`, or the file size for old kernels).
        need: u64,
        /// Bytes between the load address and the device tree.
        room: u64,
    },
    /// Reading the kernel file.
    #[error("reading the kernel: {0}")]
    Io(#[from] std::io::Error),
    /// Writing it into guest memory.
    #[error("writing the kernel into guest memory: {0}")]
    Memory(#[from] vm_memory::GuestMemoryError),
}

/// The header fields the loader uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    /// Offset of the image from the 2 MiB-aligned base.
    pub text_offset: u64,
    /// Bytes the kernel occupies once running (with BSS); 0 on kernels before 3.17.
    pub image_size: u64,
    /// Flags: bit 0 big-endian, bits 1-2 page size, bit 3 "place anywhere".
    pub flags: u64,
}

/// Parses and checks the header at the start of `bytes`.
pub fn parse_header(bytes: &[u8]) -> Result<ImageHeader, ImageError> {
    let header: &[u8; HEADER_SIZE] = bytes
        .get(..HEADER_SIZE)
        .and_then(|h| h.try_into().ok())
        .ok_or(ImageError::Short(bytes.len() as u64))?;
    let u64_at = |o: usize| u64::from_le_bytes(header[o..o + 8].try_into().expect("8 bytes"));
    let magic = u32::from_le_bytes(header[56..60].try_into().expect("4 bytes"));
    if magic != IMAGE_MAGIC {
        return Err(ImageError::BadMagic(magic));
    }
    let (mut text_offset, image_size, flags) = (u64_at(8), u64_at(16), u64_at(24));
    if image_size == 0 {
        // Before 3.17 the field was always 0 and text_offset fixed.
        text_offset = LEGACY_TEXT_OFFSET;
    }
    if flags & 1 != 0 {
        return Err(ImageError::BigEndian);
    }
    if text_offset % 4096 != 0 || text_offset >= KERNEL_ALIGN {
        return Err(ImageError::BadTextOffset(text_offset));
    }
    Ok(ImageHeader {
        text_offset,
        image_size,
        flags,
    })
}

/// Where the kernel went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadedImage {
    /// Entry point: the first byte of the image (the boot vCPU's PC).
    pub entry: u64,
    /// First byte after the kernel's memory (`image_size`, or the file for old kernels).
    pub end: u64,
}

/// Loads the Image in `kernel` into `mem` (`mem_bytes` of RAM from `RAM_START`), below
/// the device tree.
pub fn load<F: Read + Seek>(
    mem: &GuestMemoryMmap<()>,
    mem_bytes: u64,
    kernel: &mut F,
) -> Result<LoadedImage, ImageError> {
    let file_len = kernel.seek(SeekFrom::End(0))?;
    kernel.seek(SeekFrom::Start(0))?;
    let mut header = [0u8; HEADER_SIZE];
    kernel
        .read_exact(&mut header)
        .map_err(|_| ImageError::Short(file_len))?;
    let h = parse_header(&header)?;
    // RAM_START is 2 MiB aligned, so it is the lowest base for both placement modes.
    let load = RAM_START + h.text_offset;
    let need = h.image_size.max(file_len);
    let room = fdt_addr(mem_bytes).saturating_sub(load);
    if need > room {
        return Err(ImageError::NoRoom { load, need, room });
    }
    kernel.seek(SeekFrom::Start(0))?;
    let mut chunk = vec![0u8; 1 << 20];
    let mut at = load;
    loop {
        let n = kernel.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        mem.write_slice(&chunk[..n], GuestAddress(at))?;
        at += n as u64;
    }
    Ok(LoadedImage {
        entry: load,
        end: load + need,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn header(text_offset: u64, image_size: u64, flags: u64) -> Vec<u8> {
        let mut h = vec![0u8; HEADER_SIZE];
        h[0..4].copy_from_slice(&0x1400_0010u32.to_le_bytes()); // b #0x40 (code0)
        h[8..16].copy_from_slice(&text_offset.to_le_bytes());
        h[16..24].copy_from_slice(&image_size.to_le_bytes());
        h[24..32].copy_from_slice(&flags.to_le_bytes());
        h[56..60].copy_from_slice(&IMAGE_MAGIC.to_le_bytes());
        h
    }

    fn memory(bytes: u64) -> GuestMemoryMmap<()> {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(RAM_START), bytes as usize)]).expect("mem")
    }

    #[test]
    fn parses_a_modern_header() {
        let h = parse_header(&header(0, 0x0120_0000, 0b1010)).expect("header");
        assert_eq!(
            h,
            ImageHeader {
                text_offset: 0,
                image_size: 0x0120_0000,
                flags: 0b1010
            }
        );
    }

    #[test]
    fn an_old_kernel_gets_the_fixed_text_offset() {
        let h = parse_header(&header(0x1234, 0, 0)).expect("header");
        assert_eq!(h.text_offset, LEGACY_TEXT_OFFSET);
    }

    #[test]
    fn refuses_bad_magic_short_big_endian_and_odd_offsets() {
        let mut bad = header(0, 4096, 0);
        bad[56] = b'X';
        assert!(matches!(parse_header(&bad), Err(ImageError::BadMagic(_))));
        assert!(matches!(parse_header(&[0; 63]), Err(ImageError::Short(63))));
        assert!(matches!(
            parse_header(&header(0, 4096, 1)),
            Err(ImageError::BigEndian)
        ));
        assert!(matches!(
            parse_header(&header(0x123, 4096, 0)),
            Err(ImageError::BadTextOffset(0x123))
        ));
        assert!(matches!(
            parse_header(&header(KERNEL_ALIGN, 4096, 0)),
            Err(ImageError::BadTextOffset(_))
        ));
        // An ELF vmlinux is the usual mistake: the message names the Image to use.
        let elf = [0x7f, b'E', b'L', b'F'].repeat(16);
        let err = parse_header(&elf).unwrap_err().to_string();
        assert!(err.contains("arch/arm64/boot/Image"), "{err}");
    }

    #[test]
    fn loads_at_ram_start_plus_text_offset() {
        let mut file = header(0x8_0000, 0x10_0000, 0);
        file.extend_from_slice(b"kernel text");
        let mem = memory(64 << 20);
        let loaded = load(&mem, 64 << 20, &mut Cursor::new(&file)).expect("load");
        assert_eq!(loaded.entry, RAM_START + 0x8_0000);
        assert_eq!(loaded.entry % KERNEL_ALIGN, 0x8_0000);
        assert_eq!(loaded.end, loaded.entry + 0x10_0000);
        let mut back = vec![0u8; file.len()];
        mem.read_slice(&mut back, GuestAddress(loaded.entry))
            .expect("read");
        assert_eq!(back, file);
    }

    #[test]
    fn refuses_a_kernel_that_reaches_the_device_tree() {
        let file = header(0, 63 << 20, 0);
        let mem = memory(64 << 20);
        let err = load(&mem, 64 << 20, &mut Cursor::new(&file)).unwrap_err();
        assert!(
            matches!(err, ImageError::NoRoom { need, room, .. } if need == 63 << 20 && room == 62 << 20),
            "{err}"
        );
    }
}
