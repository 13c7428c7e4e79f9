//! The tiny microVM guest: an ELF64 executable whose one segment, loaded at 1 MiB, holds
//! 32-bit code entered through a Xen PVH note. It writes "OK\n" to COM1 and then 0xFE
//! to the i8042 (a reset), so flint-vmm exits with status 2 within microseconds of the
//! first guest instruction: on these hosts no Linux user space runs in a VM.

/// Guest-physical load and entry address.
pub const LOAD_ADDR: u32 = 0x10_0000;
const CODE_OFFSET: usize = 0x1000;
const EHDR: usize = 64;
const PHDR: usize = 56;
const PHYS32_ENTRY: u32 = 18;

/// `mov $0x3f8,%dx; out 'O','K','\n'; mov $0x64,%dx; out 0xfe; 1: hlt; jmp 1b`.
pub const OK_THEN_RESET: &[u8] = &[
    0x66, 0xba, 0xf8, 0x03, 0xb0, b'O', 0xee, 0xb0, b'K', 0xee, 0xb0, b'\n', 0xee, 0x66, 0xba,
    0x64, 0x00, 0xb0, 0xfe, 0xee, 0xf4, 0xeb, 0xfd,
];

fn program_header(
    v: &mut Vec<u8>,
    kind: u32,
    flags: u32,
    off: u64,
    addr: u64,
    size: u64,
    align: u64,
) {
    v.extend_from_slice(&kind.to_le_bytes());
    v.extend_from_slice(&flags.to_le_bytes());
    for x in [off, addr, addr, size, size, align] {
        v.extend_from_slice(&x.to_le_bytes());
    }
}

/// The ELF file: header, a PT_LOAD for `code`, a PT_NOTE with the PVH entry.
pub fn pvh_image(code: &[u8]) -> Vec<u8> {
    let mut note = Vec::new();
    for x in [4u32, 4, PHYS32_ENTRY] {
        note.extend_from_slice(&x.to_le_bytes());
    }
    note.extend_from_slice(b"Xen\0");
    note.extend_from_slice(&LOAD_ADDR.to_le_bytes());
    let note_off = (EHDR + 2 * PHDR) as u64;

    let mut v = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    v.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    v.extend_from_slice(&0x3eu16.to_le_bytes()); // EM_X86_64
    v.extend_from_slice(&1u32.to_le_bytes());
    v.extend_from_slice(&u64::from(LOAD_ADDR).to_le_bytes()); // e_entry
    v.extend_from_slice(&(EHDR as u64).to_le_bytes()); // e_phoff
    v.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    v.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    for x in [EHDR as u16, PHDR as u16, 2, 0, 0, 0] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    let len = code.len() as u64;
    program_header(
        &mut v,
        1,
        5,
        CODE_OFFSET as u64,
        u64::from(LOAD_ADDR),
        len,
        0x1000,
    );
    program_header(&mut v, 4, 4, note_off, 0, note.len() as u64, 4);
    v.extend_from_slice(&note);
    v.resize(CODE_OFFSET, 0);
    v.extend_from_slice(code);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_has_elf_header_note_and_code() {
        let img = pvh_image(OK_THEN_RESET);
        assert_eq!(&img[..4], b"\x7fELF");
        assert_eq!(img[4], 2, "ELF64");
        assert_eq!(
            u16::from_le_bytes([img[56], img[57]]),
            2,
            "two program headers"
        );
        assert_eq!(&img[CODE_OFFSET..], OK_THEN_RESET);
        let note = EHDR + 2 * PHDR;
        assert_eq!(&img[note + 12..note + 16], b"Xen\0");
        assert_eq!(img.len(), CODE_OFFSET + OK_THEN_RESET.len());
    }
}
