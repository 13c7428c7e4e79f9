//! The tiny microVM guest: an ELF64 executable whose one segment, loaded at 1 MiB, holds
//! 32-bit code entered through a Xen PVH note. It writes "OK\n" to COM1 and then 0xFE
//! to the i8042 (a reset), so flint-vmm exits with status 2 within microseconds of the
//! first guest instruction: on these hosts no Linux user space runs in a VM. Also the
//! snapshot scenario's guests: a counter and a guest that writes 32 MiB, then only reads.

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

/// The counting guest of vmm/tests/common/snapshot_guests.rs (`COUNTER`): counts to
/// 60,000 (patched by [`counter_to`]) in guest memory (0x200000) and in `ecx`, printing `'0' + (count & 63)`
/// on COM1 per count, then writes 0x2d to the exit port 0xf4 when both counters agree
/// (flint-vmm exits with status 45), 0x30 when not.
/// ```text
///     mov $0x3f8, %dx;  xor %ecx, %ecx
/// 1:  incl 0x200000;  inc %ecx;  mov %ecx, %eax;  and $0x3f, %al;  add $0x30, %al
///     out %al, %dx;  cmp $LIMIT, %ecx;  jne 1b
///     cmp 0x200000, %ecx;  jne 2f;  mov $0x2d, %al;  out %al, $0xf4
/// 2:  mov $0x30, %al;  out %al, $0xf4
/// 3:  hlt;  jmp 3b
/// ```
pub const COUNTER: &[u8] = &[
    0x66, 0xba, 0xf8, 0x03, 0x31, 0xc9, 0xff, 0x05, 0x00, 0x00, 0x20, 0x00, 0x41, 0x89, 0xc8, 0x24,
    0x3f, 0x04, 0x30, 0xee, 0x81, 0xf9, 0x60, 0xea, 0x00, 0x00, 0x75, 0xea, 0x3b, 0x0d, 0x00, 0x00,
    0x20, 0x00, 0x75, 0x04, 0xb0, 0x2d, 0xe6, 0xf4, 0xb0, 0x30, 0xe6, 0xf4, 0xf4, 0xeb, 0xfd,
];
/// [`COUNTER`]'s count limit as built (the immediate of `cmp $LIMIT, %ecx`).
#[cfg(test)]
pub const COUNTER_LIMIT: u32 = 60_000;
/// Offset of the limit's 32-bit immediate in [`COUNTER`].
const COUNTER_LIMIT_AT: usize = 22;
/// flint-vmm's exit status when [`COUNTER`] ends with its counters in agreement.
pub const COUNTER_OK: i32 = 0x2d;

/// [`COUNTER`] counting to `limit` instead of 60,000.
pub fn counter_to(limit: u32) -> Vec<u8> {
    let mut code = COUNTER.to_vec();
    code[COUNTER_LIMIT_AT..COUNTER_LIMIT_AT + 4].copy_from_slice(&limit.to_le_bytes());
    code
}

/// A guest that writes one dword into each 4 KiB page of 32 MiB from 16 MiB on (every
/// page becomes resident and dirty), then forever reads one dword per page of it and
/// prints `.` on COM1 after each pass: its resident memory is those 32 MiB, written once
/// and then only read. (Pages are written one dword each rather than filled with
/// `rep stosl`, which the nested kvm_pvm host emulates: 16 s instead of 0.7 s here.)
/// ```text
///     mov $0x1000000, %esi;  mov $8192, %ecx
/// 1:  movl $0x5a5a5a5a, (%esi);  add $4096, %esi;  loop 1b
///     mov $0x3f8, %dx
/// 2:  mov $0x1000000, %esi;  mov $8192, %ecx;  xor %ebx, %ebx
/// 3:  add (%esi), %ebx;  add $4096, %esi;  loop 3b
///     mov $'.', %al;  out %al, %dx;  jmp 2b
/// ```
pub const FILL_THEN_READ: &[u8] = &[
    0xbe, 0x00, 0x00, 0x00, 0x01, 0xb9, 0x00, 0x20, 0x00, 0x00, 0xc7, 0x06, 0x5a, 0x5a, 0x5a, 0x5a,
    0x81, 0xc6, 0x00, 0x10, 0x00, 0x00, 0xe2, 0xf2, 0x66, 0xba, 0xf8, 0x03, 0xbe, 0x00, 0x00, 0x00,
    0x01, 0xb9, 0x00, 0x20, 0x00, 0x00, 0x31, 0xdb, 0x03, 0x1e, 0x81, 0xc6, 0x00, 0x10, 0x00, 0x00,
    0xe2, 0xf6, 0xb0, 0x2e, 0xee, 0xeb, 0xe5,
];
/// MiB that [`FILL_THEN_READ`] writes and then reads.
pub const FILL_MIB: u64 = 32;

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

    #[test]
    fn counter_limit_is_patched_in_place() {
        assert_eq!(
            COUNTER[COUNTER_LIMIT_AT..COUNTER_LIMIT_AT + 4],
            COUNTER_LIMIT.to_le_bytes(),
            "the limit's immediate moved"
        );
        let c = counter_to(20_000);
        assert_eq!(c.len(), COUNTER.len());
        assert_eq!(
            c[COUNTER_LIMIT_AT..COUNTER_LIMIT_AT + 4],
            20_000u32.to_le_bytes()
        );
        assert_eq!(c[..COUNTER_LIMIT_AT], COUNTER[..COUNTER_LIMIT_AT]);
    }
}
