//! Segment descriptors: the boot GDT the VMM writes into guest memory and the matching
//! `kvm_segment` values loaded into the vCPU's segment registers.

use kvm_bindings::kvm_segment;

/// Flags (access byte in bits 0-7, granularity nibble in bits 12-15) of a 64-bit code segment.
pub const CODE64: u16 = 0xa09b;
/// Flags of a 32-bit flat code segment.
pub const CODE32: u16 = 0xc09b;
/// Flags of a flat read/write data segment.
pub const DATA: u16 = 0xc093;
/// Flags of a 64-bit busy TSS.
pub const TSS64: u16 = 0x808b;
/// Flags of a 32-bit busy TSS.
pub const TSS32: u16 = 0x008b;

/// Encodes one 8-byte GDT descriptor.
pub fn descriptor(flags: u16, base: u32, limit: u32) -> u64 {
    let base = u64::from(base);
    let limit = u64::from(limit);
    let flags = u64::from(flags);
    ((base & 0xff00_0000) << 32)
        | ((base & 0x00ff_ffff) << 16)
        | (limit & 0xffff)
        | ((limit & 0xf_0000) << 32)
        | ((flags & 0xf0ff) << 40)
}

/// The four-entry boot GDT: null, code, data, TSS.
pub fn boot_gdt(code_flags: u16, tss_flags: u16) -> [u64; 4] {
    [
        0,
        descriptor(code_flags, 0, 0xf_ffff),
        descriptor(DATA, 0, 0xf_ffff),
        descriptor(tss_flags, 0, 0xf_ffff),
    ]
}

/// Decodes GDT entry `index` of value `entry` into the form KVM loads into a segment register.
pub fn segment(entry: u64, index: u16) -> kvm_segment {
    let base = ((entry >> 16) & 0x00ff_ffff) | ((entry >> 32) & 0xff00_0000);
    let raw_limit = ((entry & 0xffff) | ((entry >> 32) & 0xf_0000)) as u32;
    let access = ((entry >> 40) & 0xff) as u8;
    let flags = ((entry >> 52) & 0xf) as u8;
    let g = (flags >> 3) & 1;
    let present = (access >> 7) & 1;
    kvm_segment {
        base,
        limit: if g == 1 {
            (raw_limit << 12) | 0xfff
        } else {
            raw_limit
        },
        selector: index * 8,
        type_: access & 0xf,
        present,
        dpl: (access >> 5) & 3,
        db: (flags >> 2) & 1,
        s: (access >> 4) & 1,
        l: (flags >> 1) & 1,
        g,
        avl: flags & 1,
        unusable: u8::from(present == 0),
        padding: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code64_descriptor_matches_the_architectural_encoding() {
        // Flat 64-bit code segment as every x86_64 kernel writes it.
        assert_eq!(descriptor(CODE64, 0, 0xf_ffff), 0x00af_9b00_0000_ffff);
        assert_eq!(descriptor(DATA, 0, 0xf_ffff), 0x00cf_9300_0000_ffff);
    }

    #[test]
    fn segment_decodes_what_descriptor_encodes() {
        let seg = segment(descriptor(CODE64, 0x1234_5678, 0xf_ffff), 1);
        assert_eq!(seg.base, 0x1234_5678);
        assert_eq!(seg.limit, 0xffff_ffff);
        assert_eq!(seg.selector, 8);
        assert_eq!(
            (seg.type_, seg.present, seg.s, seg.l, seg.db, seg.g),
            (0xb, 1, 1, 1, 0, 1)
        );
        let seg = segment(descriptor(CODE32, 0, 0xf_ffff), 1);
        assert_eq!((seg.l, seg.db), (0, 1));
        let tss = segment(descriptor(TSS32, 0, 0xf_ffff), 3);
        assert_eq!(
            (tss.g, tss.limit, tss.selector, tss.s),
            (0, 0xf_ffff, 24, 0)
        );
    }
}
