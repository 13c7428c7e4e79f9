//! The microVM warm pool filled from snapshots, through a real flintd on this host's
//! /dev/kvm. The real guest kernel cannot run user space here (kvm_pvm), so the
//! "kernel" is a tiny guest that plays flint-init's part on the wire: it drives the
//! virtio-vsock device, connects to the host (CID 2, port 1024), sends flint-init's
//! Hello frame (and Prepared, which the pool asks for next), and when the device
//! reports TRANSPORT_RESET (a restore) it connects again and sends them again. Its
//! serial output says so: `C` connected, `H` Hello sent, `R` reset seen.
//!
//! Shown: the first pool sandbox comes from a boot + snapshot and the pool's sandboxes
//! from restores (`flint_microvm_starts_total`), every restored VM reconnected (`RCH`
//! on its serial log), a changed kernel file rebuilds the snapshot and deletes the old
//! one, and a corrupt snapshot falls back to a boot. Needs the python3.11 image's
//! rootfs.ext4 (attached, unread) and flint-vmm built (`cargo build --workspace`).

use flint_integration::*;
use flint_proto::frame::encode;
use flint_proto::init::{guest_message::Msg, GuestMessage, Hello, Prepared};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The tiny guest (32-bit code entered at 1 MiB through PVH), vsock on virtio-mmio
/// slot 1 (0xd0002000, after the root disk). It sends the `len` bytes at 0x100800
/// (`len` at 0x1007fc), put there by [`guest_image`].
/// ```text
///   .code32
///   .text
///   .globl _start
/// _start:
///   mov $0x180000, %esp
///   mov $0xd0002000, %ebx
///   movl $0, 0x70(%ebx)
///   movl $1, 0x70(%ebx)
///   movl $3, 0x70(%ebx)
///   movl $1, 0x24(%ebx)
///   movl $1, 0x20(%ebx)
///   movl $0, 0x24(%ebx)
///   movl $0, 0x20(%ebx)
///   movl $0xb, 0x70(%ebx)
///   xor %esi, %esi
///   mov $0x400000, %edi
/// queue:
///   mov %esi, 0x30(%ebx)
///   movl $8, 0x38(%ebx)
///   mov %edi, 0x80(%ebx)
///   movl $0, 0x84(%ebx)
///   lea 0x1000(%edi), %eax
///   mov %eax, 0x90(%ebx)
///   movl $0, 0x94(%ebx)
///   lea 0x2000(%edi), %eax
///   mov %eax, 0xa0(%ebx)
///   movl $0, 0xa4(%ebx)
///   movl $1, 0x44(%ebx)
///   add $0x4000, %edi
///   inc %esi
///   cmp $3, %esi
///   jne queue
///   movl $0x410000, 0x408000
///   movl $0, 0x408004
///   movl $4, 0x408008
///   movw $2, 0x40800c
///   movw $0, 0x40800e
///   movl $0xffffffff, 0x410000
///   movw $0, 0x409004
///   movw $1, 0x409002
///   xor %esi, %esi
/// rxd:
///   mov %esi, %eax
///   shl $12, %eax
///   add $0x420000, %eax
///   mov %esi, %edi
///   shl $4, %edi
///   mov %eax, 0x400000(%edi)
///   movl $0, 0x400004(%edi)
///   movl $4096, 0x400008(%edi)
///   movw $2, 0x40000c(%edi)
///   movw $0, 0x40000e(%edi)
///   movw %si, 0x401004(,%esi,2)
///   inc %esi
///   cmp $4, %esi
///   jne rxd
///   movw $4, 0x401002
///   mov 0x1007fc, %ecx
///   lea 44(%ecx), %eax
///   movl $0x430000, 0x404000
///   movl $0, 0x404004
///   mov %eax, 0x404008
///   movw $0, 0x40400c
///   movw $0, 0x40400e
///   mov $0x100800, %esi
///   mov $0x43002c, %edi
///   cld
///   rep movsb
///   movl $0, 0x440000
///   movl $0, 0x440004
///   movl $0, 0x440008
///   movl $4, 0x44000c
///   movl $0xf, 0x70(%ebx)
///   cmpl $0xf, 0x70(%ebx)
///   jne fail_init
///   movl $3, 0x430000
///   movl $0, 0x430004
///   movl $2, 0x430008
///   movl $0, 0x43000c
///   movl $0x400, 0x430010
///   movl $1024, 0x430014
///   movw $1, 0x43001c
///   movl $0, 0x430020
///   movl $0x10000, 0x430024
///   movl $0, 0x430028
///   mov $0x3f8, %dx
/// connect:
///   movl $0, 0x430018
///   movw $1, 0x43001e
///   call send
/// wait_resp:
///   call rx_next
///   cmp $2, %eax
///   je connected
///   cmp $3, %eax
///   jne wait_resp
///   mov 0x440010, %edi
///   cmp 0x430010, %edi
///   je fail_rst
///   jmp wait_resp
/// connected:
///   mov $0x43, %al
///   out %al, %dx
///   mov 0x1007fc, %eax
///   mov %eax, 0x430018
///   movw $5, 0x43001e
///   call send
///   mov $0x48, %al
///   out %al, %dx
/// idle:
///   pause
///   call rx_next
///   movzwl 0x40a002, %eax
///   cmp 0x440008, %eax
///   je idle
///   mov %eax, 0x440008
///   cmpl $0, 0x410000
///   jne bad_event
///   mov $0x52, %al
///   out %al, %dx
///   movl $0xffffffff, 0x410000
///   incl 0x430010
///   movzwl 0x409002, %eax
///   mov %eax, %esi
///   and $7, %esi
///   movw $0, 0x409004(,%esi,2)
///   inc %eax
///   movw %ax, 0x409002
///   jmp connect
/// send:
///   mov 0x440000, %eax
///   mov %eax, %esi
///   and $7, %esi
///   movw $0, 0x405004(,%esi,2)
///   inc %eax
///   mov %eax, 0x440000
///   movw %ax, 0x405002
///   movl $1, 0x50(%ebx)
/// 1:
///   cmpw %ax, 0x406002
///   jne 1b
///   ret
/// rx_next:
///   movzwl 0x402002, %eax
///   movzwl 0x440004, %esi
///   cmp %eax, %esi
///   jne 2f
///   mov $-1, %eax
///   ret
/// 2:
///   and $7, %esi
///   mov 0x402004(,%esi,8), %esi
///   mov %esi, %eax
///   shl $12, %eax
///   mov 0x420014(%eax), %edi
///   mov %edi, 0x440010
///   movzwl 0x42001e(%eax), %eax
///   push %eax
///   mov 0x44000c, %eax
///   mov %eax, %edi
///   and $7, %edi
///   movw %si, 0x401004(,%edi,2)
///   inc %eax
///   mov %eax, 0x44000c
///   movw %ax, 0x401002
///   incl 0x440004
///   movl $0, 0x50(%ebx)
///   pop %eax
///   ret
/// bad_event:
///   mov $0x31, %al
///   out %al, $0xf4
/// fail_init:
///   mov $0x33, %al
///   out %al, $0xf4
/// fail_rst:
///   mov $0x34, %al
///   out %al, $0xf4
/// halt:
///   hlt
///   jmp halt
/// ```
const HELLO_GUEST: &[u8] = &[
    0xbc, 0x00, 0x00, 0x18, 0x00, 0xbb, 0x00, 0x20, 0x00, 0xd0, 0xc7, 0x43, 0x70, 0x00, 0x00, 0x00,
    0x00, 0xc7, 0x43, 0x70, 0x01, 0x00, 0x00, 0x00, 0xc7, 0x43, 0x70, 0x03, 0x00, 0x00, 0x00, 0xc7,
    0x43, 0x24, 0x01, 0x00, 0x00, 0x00, 0xc7, 0x43, 0x20, 0x01, 0x00, 0x00, 0x00, 0xc7, 0x43, 0x24,
    0x00, 0x00, 0x00, 0x00, 0xc7, 0x43, 0x20, 0x00, 0x00, 0x00, 0x00, 0xc7, 0x43, 0x70, 0x0b, 0x00,
    0x00, 0x00, 0x31, 0xf6, 0xbf, 0x00, 0x00, 0x40, 0x00, 0x89, 0x73, 0x30, 0xc7, 0x43, 0x38, 0x08,
    0x00, 0x00, 0x00, 0x89, 0xbb, 0x80, 0x00, 0x00, 0x00, 0xc7, 0x83, 0x84, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x8d, 0x87, 0x00, 0x10, 0x00, 0x00, 0x89, 0x83, 0x90, 0x00, 0x00, 0x00, 0xc7,
    0x83, 0x94, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x8d, 0x87, 0x00, 0x20, 0x00, 0x00, 0x89,
    0x83, 0xa0, 0x00, 0x00, 0x00, 0xc7, 0x83, 0xa4, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc7,
    0x43, 0x44, 0x01, 0x00, 0x00, 0x00, 0x81, 0xc7, 0x00, 0x40, 0x00, 0x00, 0x46, 0x83, 0xfe, 0x03,
    0x75, 0xa7, 0xc7, 0x05, 0x00, 0x80, 0x40, 0x00, 0x00, 0x00, 0x41, 0x00, 0xc7, 0x05, 0x04, 0x80,
    0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc7, 0x05, 0x08, 0x80, 0x40, 0x00, 0x04, 0x00, 0x00, 0x00,
    0x66, 0xc7, 0x05, 0x0c, 0x80, 0x40, 0x00, 0x02, 0x00, 0x66, 0xc7, 0x05, 0x0e, 0x80, 0x40, 0x00,
    0x00, 0x00, 0xc7, 0x05, 0x00, 0x00, 0x41, 0x00, 0xff, 0xff, 0xff, 0xff, 0x66, 0xc7, 0x05, 0x04,
    0x90, 0x40, 0x00, 0x00, 0x00, 0x66, 0xc7, 0x05, 0x02, 0x90, 0x40, 0x00, 0x01, 0x00, 0x31, 0xf6,
    0x89, 0xf0, 0xc1, 0xe0, 0x0c, 0x05, 0x00, 0x00, 0x42, 0x00, 0x89, 0xf7, 0xc1, 0xe7, 0x04, 0x89,
    0x87, 0x00, 0x00, 0x40, 0x00, 0xc7, 0x87, 0x04, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc7,
    0x87, 0x08, 0x00, 0x40, 0x00, 0x00, 0x10, 0x00, 0x00, 0x66, 0xc7, 0x87, 0x0c, 0x00, 0x40, 0x00,
    0x02, 0x00, 0x66, 0xc7, 0x87, 0x0e, 0x00, 0x40, 0x00, 0x00, 0x00, 0x66, 0x89, 0x34, 0x75, 0x04,
    0x10, 0x40, 0x00, 0x46, 0x83, 0xfe, 0x04, 0x75, 0xb7, 0x66, 0xc7, 0x05, 0x02, 0x10, 0x40, 0x00,
    0x04, 0x00, 0x8b, 0x0d, 0xfc, 0x07, 0x10, 0x00, 0x8d, 0x41, 0x2c, 0xc7, 0x05, 0x00, 0x40, 0x40,
    0x00, 0x00, 0x00, 0x43, 0x00, 0xc7, 0x05, 0x04, 0x40, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0xa3,
    0x08, 0x40, 0x40, 0x00, 0x66, 0xc7, 0x05, 0x0c, 0x40, 0x40, 0x00, 0x00, 0x00, 0x66, 0xc7, 0x05,
    0x0e, 0x40, 0x40, 0x00, 0x00, 0x00, 0xbe, 0x00, 0x08, 0x10, 0x00, 0xbf, 0x2c, 0x00, 0x43, 0x00,
    0xfc, 0xf3, 0xa4, 0xc7, 0x05, 0x00, 0x00, 0x44, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc7, 0x05, 0x04,
    0x00, 0x44, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc7, 0x05, 0x08, 0x00, 0x44, 0x00, 0x00, 0x00, 0x00,
    0x00, 0xc7, 0x05, 0x0c, 0x00, 0x44, 0x00, 0x04, 0x00, 0x00, 0x00, 0xc7, 0x43, 0x70, 0x0f, 0x00,
    0x00, 0x00, 0x83, 0x7b, 0x70, 0x0f, 0x0f, 0x85, 0xba, 0x01, 0x00, 0x00, 0xc7, 0x05, 0x00, 0x00,
    0x43, 0x00, 0x03, 0x00, 0x00, 0x00, 0xc7, 0x05, 0x04, 0x00, 0x43, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xc7, 0x05, 0x08, 0x00, 0x43, 0x00, 0x02, 0x00, 0x00, 0x00, 0xc7, 0x05, 0x0c, 0x00, 0x43, 0x00,
    0x00, 0x00, 0x00, 0x00, 0xc7, 0x05, 0x10, 0x00, 0x43, 0x00, 0x00, 0x04, 0x00, 0x00, 0xc7, 0x05,
    0x14, 0x00, 0x43, 0x00, 0x00, 0x04, 0x00, 0x00, 0x66, 0xc7, 0x05, 0x1c, 0x00, 0x43, 0x00, 0x01,
    0x00, 0xc7, 0x05, 0x20, 0x00, 0x43, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc7, 0x05, 0x24, 0x00, 0x43,
    0x00, 0x00, 0x00, 0x01, 0x00, 0xc7, 0x05, 0x28, 0x00, 0x43, 0x00, 0x00, 0x00, 0x00, 0x00, 0x66,
    0xba, 0xf8, 0x03, 0xc7, 0x05, 0x18, 0x00, 0x43, 0x00, 0x00, 0x00, 0x00, 0x00, 0x66, 0xc7, 0x05,
    0x1e, 0x00, 0x43, 0x00, 0x01, 0x00, 0xe8, 0x9e, 0x00, 0x00, 0x00, 0xe8, 0xca, 0x00, 0x00, 0x00,
    0x83, 0xf8, 0x02, 0x74, 0x19, 0x83, 0xf8, 0x03, 0x75, 0xf1, 0x8b, 0x3d, 0x10, 0x00, 0x44, 0x00,
    0x3b, 0x3d, 0x10, 0x00, 0x43, 0x00, 0x0f, 0x84, 0x1e, 0x01, 0x00, 0x00, 0xeb, 0xdd, 0xb0, 0x43,
    0xee, 0xa1, 0xfc, 0x07, 0x10, 0x00, 0xa3, 0x18, 0x00, 0x43, 0x00, 0x66, 0xc7, 0x05, 0x1e, 0x00,
    0x43, 0x00, 0x05, 0x00, 0xe8, 0x60, 0x00, 0x00, 0x00, 0xb0, 0x48, 0xee, 0xf3, 0x90, 0xe8, 0x87,
    0x00, 0x00, 0x00, 0x0f, 0xb7, 0x05, 0x02, 0xa0, 0x40, 0x00, 0x3b, 0x05, 0x08, 0x00, 0x44, 0x00,
    0x74, 0xea, 0xa3, 0x08, 0x00, 0x44, 0x00, 0x83, 0x3d, 0x00, 0x00, 0x41, 0x00, 0x00, 0x0f, 0x85,
    0xce, 0x00, 0x00, 0x00, 0xb0, 0x52, 0xee, 0xc7, 0x05, 0x00, 0x00, 0x41, 0x00, 0xff, 0xff, 0xff,
    0xff, 0xff, 0x05, 0x10, 0x00, 0x43, 0x00, 0x0f, 0xb7, 0x05, 0x02, 0x90, 0x40, 0x00, 0x89, 0xc6,
    0x83, 0xe6, 0x07, 0x66, 0xc7, 0x04, 0x75, 0x04, 0x90, 0x40, 0x00, 0x00, 0x00, 0x40, 0x66, 0xa3,
    0x02, 0x90, 0x40, 0x00, 0xe9, 0x4a, 0xff, 0xff, 0xff, 0xa1, 0x00, 0x00, 0x44, 0x00, 0x89, 0xc6,
    0x83, 0xe6, 0x07, 0x66, 0xc7, 0x04, 0x75, 0x04, 0x50, 0x40, 0x00, 0x00, 0x00, 0x40, 0xa3, 0x00,
    0x00, 0x44, 0x00, 0x66, 0xa3, 0x02, 0x50, 0x40, 0x00, 0xc7, 0x43, 0x50, 0x01, 0x00, 0x00, 0x00,
    0x66, 0x39, 0x05, 0x02, 0x60, 0x40, 0x00, 0x75, 0xf7, 0xc3, 0x0f, 0xb7, 0x05, 0x02, 0x20, 0x40,
    0x00, 0x0f, 0xb7, 0x35, 0x04, 0x00, 0x44, 0x00, 0x39, 0xc6, 0x75, 0x06, 0xb8, 0xff, 0xff, 0xff,
    0xff, 0xc3, 0x83, 0xe6, 0x07, 0x8b, 0x34, 0xf5, 0x04, 0x20, 0x40, 0x00, 0x89, 0xf0, 0xc1, 0xe0,
    0x0c, 0x8b, 0xb8, 0x14, 0x00, 0x42, 0x00, 0x89, 0x3d, 0x10, 0x00, 0x44, 0x00, 0x0f, 0xb7, 0x80,
    0x1e, 0x00, 0x42, 0x00, 0x50, 0xa1, 0x0c, 0x00, 0x44, 0x00, 0x89, 0xc7, 0x83, 0xe7, 0x07, 0x66,
    0x89, 0x34, 0x7d, 0x04, 0x10, 0x40, 0x00, 0x40, 0xa3, 0x0c, 0x00, 0x44, 0x00, 0x66, 0xa3, 0x02,
    0x10, 0x40, 0x00, 0xff, 0x05, 0x04, 0x00, 0x44, 0x00, 0xc7, 0x43, 0x50, 0x00, 0x00, 0x00, 0x00,
    0x58, 0xc3, 0xb0, 0x31, 0xe6, 0xf4, 0xb0, 0x33, 0xe6, 0xf4, 0xb0, 0x34, 0xe6, 0xf4, 0xf4, 0xeb,
    0xfd,
];

/// Where the guest reads its payload's length; the payload follows.
const PAYLOAD_LEN_AT: usize = 0x7fc;
/// Where tiny guests are loaded and entered.
const LOAD_ADDR: u64 = 0x10_0000;

/// flint-init's Hello and Prepared frames, as flint-init would send them.
fn payload(init_version: &str) -> Vec<u8> {
    let hello = GuestMessage {
        msg: Some(Msg::Hello(Hello {
            protocol_version: flint_proto::init::PROTOCOL_VERSION,
            init_version: init_version.into(),
            boot_ns: 1,
        })),
    };
    let prepared = GuestMessage {
        msg: Some(Msg::Prepared(Prepared { prepare_ns: 1 })),
    };
    let mut v = encode(&hello).unwrap();
    v.extend(encode(&prepared).unwrap());
    v
}

/// An ELF64 file with [`HELLO_GUEST`] and `payload` at [`LOAD_ADDR`] and a PVH entry
/// note (a Xen PHYS32_ENTRY note naming the load address).
fn guest_image(payload: &[u8]) -> Vec<u8> {
    assert!(HELLO_GUEST.len() <= PAYLOAD_LEN_AT);
    let mut image = HELLO_GUEST.to_vec();
    image.resize(PAYLOAD_LEN_AT, 0);
    image.extend((payload.len() as u32).to_le_bytes());
    image.extend(payload);
    let mut note = Vec::new();
    for w in [4u32, 4, 18] {
        note.extend(w.to_le_bytes());
    }
    note.extend(b"Xen\0");
    note.extend((LOAD_ADDR as u32).to_le_bytes());
    let (ehdr, phdr, code_at) = (64u64, 56u64, 0x1000u64);
    let mut v = Vec::new();
    v.extend([0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    v.extend(2u16.to_le_bytes()); // ET_EXEC
    v.extend(0x3eu16.to_le_bytes()); // x86_64
    v.extend(1u32.to_le_bytes());
    v.extend(LOAD_ADDR.to_le_bytes());
    v.extend(ehdr.to_le_bytes());
    v.extend(0u64.to_le_bytes());
    v.extend(0u32.to_le_bytes());
    for h in [ehdr as u16, phdr as u16, 2, 0, 0, 0] {
        v.extend(h.to_le_bytes());
    }
    let mut ph = |kind: u32, flags: u32, off: u64, addr: u64, size: u64, align: u64| {
        v.extend(kind.to_le_bytes());
        v.extend(flags.to_le_bytes());
        for x in [off, addr, addr, size, size, align] {
            v.extend(x.to_le_bytes());
        }
    };
    ph(1, 5, code_at, LOAD_ADDR, image.len() as u64, 0x1000);
    ph(4, 4, ehdr + 2 * phdr, 0, note.len() as u64, 4);
    v.extend(note);
    v.resize(code_at as usize, 0);
    v.extend(image);
    v
}

/// `flint_microvm_starts_total` by `how`, scraped from flintd's /metrics.
fn starts(metrics: &str) -> std::collections::BTreeMap<String, u64> {
    let mut s = std::net::TcpStream::connect(metrics).expect("metrics endpoint");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body.lines()
        .filter_map(|l| l.strip_prefix("flint_microvm_starts_total{how=\""))
        .filter_map(|l| {
            let (how, n) = l.split_once("\"} ")?;
            Some((how.to_string(), n.trim().parse().ok()?))
        })
        .collect()
}

/// Serial logs of the VMs running now (one per pool sandbox).
fn serial_logs(vm_dir: &Path) -> Vec<String> {
    std::fs::read_dir(vm_dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != "failed")
        .map(|e| std::fs::read_to_string(e.path().join("serial.log")).unwrap_or_default())
        .collect()
}

/// Everything worth seeing when a wait fails.
fn diagnose(agent: &TestAgent, vm_dir: &Path, metrics: &str) -> String {
    let failed: Vec<String> = std::fs::read_dir(vm_dir.join("failed"))
        .map(|rd| {
            rd.flatten()
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    format!(
        "starts {:?}; serial logs {:?}; failed boots' logs {failed:?}; snapshots {:?}",
        starts(metrics),
        serial_logs(vm_dir),
        snapshot_dirs(&agent.data_dir)
    )
}

/// Waits (at most 30 s) until the 128 MB python3.11 pool holds `n` sandboxes.
async fn wait_pool(agent: &TestAgent, n: u32, vm_dir: &Path, metrics: &str) {
    let t0 = Instant::now();
    loop {
        let cap = agent.capacity().await;
        let ready = cap
            .pools
            .iter()
            .find(|p| p.runtime == "python3.11" && p.memory_mb == 128)
            .map_or(0, |p| p.ready);
        if ready >= n {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the pool never held {n} sandboxes: {cap:?}; {}",
            diagnose(agent, vm_dir, metrics)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The snapshot directories in flintd's data directory.
fn snapshot_dirs(data_dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data_dir.join("vm-snapshots"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test]
async fn the_microvm_pool_is_filled_by_restoring_one_snapshot() {
    let disk = images_dir().join("python3.11/rootfs.ext4");
    assert!(
        disk.is_file(),
        "{} is missing: run images/build-ext4.sh python3.11 <static flint-init>",
        disk.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let kernel = tmp.path().join("hello-guest.elf");
    std::fs::write(&kernel, guest_image(&payload("tiny-1"))).unwrap();
    let vm_dir = tmp.path().join("vm");
    let metrics = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let mut agent = TestAgent::start_args(
        300,
        &[
            "--sandbox",
            "microvm",
            "--kernel",
            kernel.to_str().unwrap(),
            "--vm-run-dir",
            vm_dir.to_str().unwrap(),
            "--vm-boot-timeout",
            "10",
            "--pool-warm",
            "python3.11:128=2",
            "--metrics-listen",
            &metrics,
        ],
    )
    .await;

    // One boot to Hello, snapshotted; both pool sandboxes restored from it.
    wait_pool(&agent, 2, &vm_dir, &metrics).await;
    let s = starts(&metrics);
    assert_eq!(
        s["snapshot_build"],
        1,
        "{}",
        diagnose(&agent, &vm_dir, &metrics)
    );
    assert_eq!(s["restore"], 2, "{s:?}");
    assert_eq!((s["boot"], s["restore_failed"]), (0, 0), "{s:?}");
    // The guest prints `H` only after its Hello is on the wire, so flintd may count the
    // VM ready before the letter reaches the serial log: give it a moment.
    let t0 = std::time::Instant::now();
    while serial_logs(&vm_dir).iter().any(|l| !l.ends_with('H'))
        && t0.elapsed() < Duration::from_secs(5)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for log in serial_logs(&vm_dir) {
        // Restored mid-idle: the reset seen, connected again, Hello sent again (an `H`
        // before it when the snapshot caught the guest between sending Hello and
        // printing so).
        assert!(
            log == "RCH" || log == "HRCH",
            "a restored VM must reconnect and say Hello again: {log:?}"
        );
    }
    let first = snapshot_dirs(&agent.data_dir);
    assert_eq!(first.len(), 1, "{first:?}");
    let name = first[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("python3.11-128mb-"), "{name}");
    let key = std::fs::read_to_string(first[0].join("flint-snapshot-key.txt")).unwrap();
    assert!(
        key.contains(&format!(
            "kernel={}",
            kernel.canonicalize().unwrap().display()
        )),
        "{key}"
    );
    assert!(first[0].join("state.json").is_file() && first[0].join("memory").is_file());

    // A restart keeps the snapshot: every start is a restore.
    agent.restart().await;
    wait_pool(&agent, 2, &vm_dir, &metrics).await;
    let s = starts(&metrics);
    assert_eq!(
        (s["snapshot_build"], s["restore"], s["boot"]),
        (0, 2, 0),
        "{s:?}"
    );
    assert_eq!(snapshot_dirs(&agent.data_dir), first);

    // Another kernel file: the snapshot is built again, the old one deleted.
    agent.stop();
    std::fs::write(&kernel, guest_image(&payload("tiny-2"))).unwrap();
    agent.restart_after_kill().await;
    wait_pool(&agent, 2, &vm_dir, &metrics).await;
    let s = starts(&metrics);
    assert_eq!(
        (s["snapshot_build"], s["restore"], s["boot"]),
        (1, 2, 0),
        "{s:?}"
    );
    let second = snapshot_dirs(&agent.data_dir);
    assert_eq!(second.len(), 1, "{second:?}");
    assert_ne!(second, first, "a changed kernel must give a new snapshot");

    // A corrupt snapshot: the restore fails, the VM is booted instead, counted.
    agent.stop();
    std::fs::write(second[0].join("state.json"), b"{ not a snapshot").unwrap();
    agent.restart_after_kill().await;
    wait_pool(&agent, 2, &vm_dir, &metrics).await;
    let s = starts(&metrics);
    assert!(s["restore_failed"] >= 1, "{s:?}");
    assert_eq!(
        s["boot"], s["restore_failed"],
        "each failed restore boots: {s:?}"
    );
    assert!(
        s["restore"] + s["boot"] >= 2,
        "both pool sandboxes started: {s:?}"
    );
    drop(agent);
}

#[tokio::test]
async fn with_vm_snapshots_off_every_microvm_boots() {
    let tmp = tempfile::tempdir().unwrap();
    let kernel = tmp.path().join("hello-guest.elf");
    std::fs::write(&kernel, guest_image(&payload("tiny-off"))).unwrap();
    let vm_dir = tmp.path().join("vm");
    let metrics = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let agent = TestAgent::start_args(
        300,
        &[
            "--sandbox",
            "microvm",
            "--kernel",
            kernel.to_str().unwrap(),
            "--vm-run-dir",
            vm_dir.to_str().unwrap(),
            "--vm-boot-timeout",
            "10",
            "--vm-snapshots",
            "false",
            "--pool-warm",
            "python3.11:128=2",
            "--metrics-listen",
            &metrics,
        ],
    )
    .await;
    wait_pool(&agent, 2, &vm_dir, &metrics).await;
    let s = starts(&metrics);
    assert_eq!(
        (s["boot"], s["snapshot_build"], s["restore"]),
        (2, 0, 0),
        "{s:?}"
    );
    for log in serial_logs(&vm_dir) {
        assert_eq!(log, "CH", "a booted VM connects once");
    }
    assert!(snapshot_dirs(&agent.data_dir).is_empty());
}
