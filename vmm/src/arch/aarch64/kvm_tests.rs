//! A tiny arm64 guest on the real KVM of an aarch64 host: GICv3, vCPU init, boot
//! registers, an MMIO write to the UART and PSCI SYSTEM_OFF as a system event. Ignored
//! by default (this suite's hosts are x86_64, and qemu-user cannot emulate KVM); run on
//! an aarch64 host with /dev/kvm: `cargo test -p flint-vmm --lib arch::aarch64 -- --include-ignored`.

use kvm_bindings::{kvm_userspace_memory_region, KVM_SYSTEM_EVENT_SHUTDOWN};
use kvm_ioctls::{Kvm, VcpuExit};
use vm_memory::{Bytes, GuestAddress, GuestMemory, GuestMemoryMmap};

use super::layout::{fdt_addr, RAM_START, SERIAL_ADDR};
use super::{gic, vcpu};

/// `movz x1, #0x0900, lsl #16; movz w2, #'O'; strb w2, [x1]; movz w0, #8;
/// movk w0, #0x8400, lsl #16; hvc #0`: writes 'O' to the UART, then PSCI SYSTEM_OFF
/// (function id 0x8400_0008).
const GUEST: [u32; 6] = [
    0xd2a1_2001,
    0x5280_09e2,
    0x3900_0022,
    0x5280_0100,
    0x72b0_8000,
    0xd400_0002,
];

#[test]
#[ignore = "needs /dev/kvm on an aarch64 host"]
fn a_tiny_guest_writes_the_uart_and_powers_off_through_psci() {
    let mem_bytes: u64 = 16 << 20;
    let kvm = Kvm::new().expect("/dev/kvm");
    let vm = kvm.create_vm().expect("VM");
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(RAM_START), mem_bytes as usize)])
        .expect("memory");
    let slot = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: RAM_START,
        memory_size: mem_bytes,
        userspace_addr: mem.get_host_address(GuestAddress(RAM_START)).expect("host") as u64,
    };
    // SAFETY: the mapping is `mem`'s, which outlives the VM in this test.
    unsafe { vm.set_user_memory_region(slot) }.expect("memory slot");
    for (i, word) in GUEST.iter().enumerate() {
        mem.write_obj(*word, GuestAddress(RAM_START + 4 * i as u64))
            .expect("code");
    }
    let mut cpu = vm.create_vcpu(0).expect("vCPU");
    vcpu::init(&vm, &cpu, 0).expect("vCPU init");
    let _gic = gic::create(&vm, 1).expect("GICv3");
    vcpu::setup_boot_regs(&cpu, RAM_START, fdt_addr(mem_bytes)).expect("boot regs");
    assert_eq!(vcpu::mpidr(&cpu).expect("MPIDR") & 0xff_00ff_ffff, 0);

    let mut serial = Vec::new();
    loop {
        match cpu.run().expect("KVM_RUN") {
            VcpuExit::MmioWrite(addr, data) => {
                assert_eq!(addr, SERIAL_ADDR);
                serial.extend_from_slice(data);
            }
            VcpuExit::SystemEvent(kind, _) => {
                assert_eq!(kind, KVM_SYSTEM_EVENT_SHUTDOWN);
                break;
            }
            other => panic!("unexpected exit {other:?}; serial so far {serial:?}"),
        }
    }
    assert_eq!(serial, b"O");
}
