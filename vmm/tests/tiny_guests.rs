//! The KVM plumbing against real /dev/kvm with tiny purpose-built guests: each guest is a
//! few bytes of machine code in an ELF written by the test (assembly in the comments).

mod common;

use std::path::Path;
use std::time::Duration;

use common::{elf_image, run_vmm, Run};

const DEADLINE: Duration = Duration::from_secs(30);

/// Writes `code` as a guest kernel and boots it with 128 MiB; returns the run.
fn boot(code: &[u8], pvh: bool, extra: &[&str]) -> (tempfile::TempDir, Run) {
    let dir = tempfile::tempdir().expect("tempdir");
    let kernel = dir.path().join("guest.elf");
    std::fs::write(&kernel, elf_image(code, pvh)).expect("write guest");
    let serial = dir.path().join("serial.log");
    let timings = dir.path().join("timings.json");
    let mut args = vec![
        "--kernel",
        kernel.to_str().expect("utf8"),
        "--mem-mib",
        "128",
        "--serial-log",
        serial.to_str().expect("utf8"),
        "--timings",
        timings.to_str().expect("utf8"),
    ];
    args.extend_from_slice(extra);
    let run = run_vmm(&args, Some(&serial), DEADLINE);
    (dir, run)
}

fn summary(run: &Run) -> &serde_json::Value {
    run.summary
        .as_ref()
        .unwrap_or_else(|| panic!("no JSON summary on stdout: {run:?}"))
}

/// 32-bit PVH code: `out 'O','K','\n' -> 0x3f8; out 0xfe -> 0x64; hlt`.
const SERIAL_OK_THEN_I8042_RESET: &[u8] = &[
    0x66, 0xba, 0xf8, 0x03, // mov $0x3f8, %dx
    0xb0, 0x4f, 0xee, // mov $'O', %al; out %al, %dx
    0xb0, 0x4b, 0xee, // mov $'K', %al; out %al, %dx
    0xb0, 0x0a, 0xee, // mov $'\n', %al; out %al, %dx
    0x66, 0xba, 0x64, 0x00, // mov $0x64, %dx
    0xb0, 0xfe, 0xee, // mov $0xfe, %al; out %al, %dx
    0xf4, 0xeb, 0xfd, // 1: hlt; jmp 1b
];

#[test]
fn pvh_guest_prints_ok_on_com1_and_i8042_reset_ends_the_vm() {
    let (_dir, run) = boot(SERIAL_OK_THEN_I8042_RESET, true, &[]);
    assert_eq!(run.serial, "OK\n", "serial log; stderr: {}", run.stderr);
    assert_eq!(run.status, Some(2), "reset exits with 2: {run:?}");
    let s = summary(&run);
    assert_eq!(s["reason"], "reset");
    assert_eq!(s["exit_code"], 2);
    assert!(s["detail"].as_str().is_some_and(|d| d.contains("i8042")));
    assert!(s["timings"]["first_guest_instruction_us"]
        .as_u64()
        .is_some());
    assert!(s["timings"]["first_serial_byte_us"].as_u64().is_some());
}

/// 64-bit code, entered through the Linux 64-bit boot protocol (no PVH note):
/// `movabs $0x2a00000000, %rax; shr $32, %rax; out %al, $0xf4`. Decoded as 32-bit code
/// the same bytes would not put 0x2a in %al, so exit status 42 proves long mode.
const LONG_MODE_MARKER: &[u8] = &[
    0x48, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x2a, 0x00, 0x00, 0x00, // movabs $0x2a00000000, %rax
    0x48, 0xc1, 0xe8, 0x20, // shr $32, %rax
    0x66, 0xba, 0xf4, 0x00, // mov $0xf4, %dx
    0xee, // out %al, %dx
    0xf4, 0xeb, 0xfd, // 1: hlt; jmp 1b
];

#[test]
fn linux64_entry_runs_64_bit_code_which_writes_the_exit_port() {
    let (_dir, run) = boot(LONG_MODE_MARKER, false, &[]);
    assert_eq!(run.status, Some(42), "{run:?}");
    assert_eq!(summary(&run)["reason"], "exit_port");
}

/// 32-bit PVH code: a byte 123 to the boot timer (0xd000_0000), a dword to an unmapped
/// MMIO address that must read back as all ones, then exit 0x21 (or 0x22 if the read
/// returned something else).
const MMIO_BOOT_TIMER: &[u8] = &[
    0xc6, 0x05, 0x00, 0x00, 0x00, 0xd0, 0x7b, // movb $123, 0xd0000000
    0xc7, 0x05, 0x00, 0x00, 0x10, 0xd0, 0x78, 0x56, 0x34,
    0x12, // movl $0x12345678, 0xd0100000
    0xa1, 0x00, 0x00, 0x10, 0xd0, // mov 0xd0100000, %eax
    0x83, 0xf8, 0xff, // cmp $-1, %eax
    0x75, 0x04, // jne 2f
    0xb0, 0x21, 0xe6, 0xf4, // mov $0x21, %al; out %al, $0xf4
    0xb0, 0x22, 0xe6, 0xf4, // 2: mov $0x22, %al; out %al, $0xf4
    0xf4, 0xeb, 0xfd, // 1: hlt; jmp 1b
];

#[test]
fn mmio_write_reaches_the_boot_timer_and_unmapped_reads_float_high() {
    let (dir, run) = boot(MMIO_BOOT_TIMER, true, &[]);
    assert_eq!(run.status, Some(0x21), "{run:?}");
    let s = summary(&run);
    let init = s["timings"]["init_started_us"]
        .as_u64()
        .expect("init_started recorded");
    let first = s["timings"]["first_guest_instruction_us"]
        .as_u64()
        .expect("first run");
    assert!(
        init >= first,
        "init {init} before first instruction {first}"
    );
    let file: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("timings.json")).expect("timings file"),
    )
    .expect("timings JSON");
    assert_eq!(file["init_started_us"].as_u64(), Some(init));
}

/// 32-bit PVH code: builds an IDT gate for vector 0x24 (PIC master base 0x20 + IRQ 4),
/// sets a stack, programs both 8259s with only IRQ 4 unmasked, `sti`, enables the UART's THR-empty
/// interrupt (IER = 2) and halts; the handler writes 0x2b to the exit port. The UART
/// raises IRQ 4 through its irqfd, so exit status 43 proves irqfd injection end to end.
const IRQFD_INTERRUPT: &[u8] = &[
    0xbc, 0x00, 0x00, 0x18, 0x00, // mov $0x180000, %esp
    0xb8, 0x61, 0x00, 0x10, 0x00, // mov $handler, %eax
    0x66, 0xa3, 0x20, 0x01, 0x20, 0x00, // mov %ax, GATE (0x200000 + 0x24 * 8)
    0x66, 0xc7, 0x05, 0x22, 0x01, 0x20, 0x00, 0x08, 0x00, // movw $0x08, GATE+2
    0x66, 0xc7, 0x05, 0x24, 0x01, 0x20, 0x00, 0x00, 0x8e, // movw $0x8e00, GATE+4
    0xc1, 0xe8, 0x10, // shr $16, %eax
    0x66, 0xa3, 0x26, 0x01, 0x20, 0x00, // mov %ax, GATE+6
    0x0f, 0x01, 0x1d, 0x68, 0x00, 0x10, 0x00, // lidt idtr
    0xb0, 0x11, 0xe6, 0x20, 0xe6, 0xa0, // ICW1 to both PICs
    0xb0, 0x20, 0xe6, 0x21, // ICW2 master: vectors 0x20..
    0xb0, 0x28, 0xe6, 0xa1, // ICW2 slave: vectors 0x28..
    0xb0, 0x04, 0xe6, 0x21, // ICW3 master
    0xb0, 0x02, 0xe6, 0xa1, // ICW3 slave
    0xb0, 0x01, 0xe6, 0x21, 0xe6, 0xa1, // ICW4 both
    0xb0, 0xef, 0xe6, 0x21, // master mask: only IRQ 4
    0xb0, 0xff, 0xe6, 0xa1, // slave mask: all
    0xfb, // sti
    0x66, 0xba, 0xf9, 0x03, 0xb0, 0x02, 0xee, // IER (0x3f9) = THR empty
    0xf4, 0xeb, 0xfd, // 1: hlt; jmp 1b
    0xb0, 0x2b, 0xe6, 0xf4, // handler: mov $0x2b, %al; out %al, $0xf4
    0xeb, 0xf7, // jmp 1b
    0x90, // .align 4
    0xff, 0x07, 0x00, 0x00, 0x20, 0x00, // idtr: .word 0x7ff; .long 0x200000
];

#[test]
fn irqfd_interrupt_reaches_the_guest_idt_handler() {
    let (_dir, run) = boot(IRQFD_INTERRUPT, true, &[]);
    assert_eq!(run.status, Some(43), "{run:?}");
}

/// 32-bit PVH code: `mov $0, %al; out %al, $0xf4`: the guest asks to power off.
const POWER_OFF: &[u8] = &[0xb0, 0x00, 0xe6, 0xf4, 0xf4, 0xeb, 0xfd];

#[test]
fn exit_port_zero_is_a_clean_power_off() {
    let (_dir, run) = boot(POWER_OFF, true, &[]);
    assert_eq!(run.status, Some(0), "{run:?}");
    assert_eq!(summary(&run)["exit_code"], 0);
}

#[test]
fn two_vcpus_boot_and_the_bsp_runs_the_guest() {
    let (_dir, run) = boot(SERIAL_OK_THEN_I8042_RESET, true, &["--vcpus", "2"]);
    assert_eq!(run.serial, "OK\n", "{run:?}");
    assert_eq!(run.status, Some(2));
}

#[test]
fn pvm_workaround_is_logged_only_when_applied() {
    let (_dir, forced) = boot(POWER_OFF, true, &["--pvm-workaround", "on"]);
    assert!(
        forced.stderr.contains("noxsave clearcpuid="),
        "{}",
        forced.stderr
    );
    let (_dir, off) = boot(POWER_OFF, true, &["--pvm-workaround", "off"]);
    assert!(!off.stderr.contains("noxsave"), "{}", off.stderr);
    let (_dir, auto) = boot(POWER_OFF, true, &[]);
    let on_pvm = Path::new("/sys/module/kvm_pvm").exists();
    assert_eq!(
        auto.stderr.contains("noxsave clearcpuid="),
        on_pvm,
        "{}",
        auto.stderr
    );
}

/// 32-bit PVH code: exits with 2 unless CPUID 0x40000000 carries KVM's signature, else
/// with 1 if CPUID 0x40000001 offers any KVM feature the guest uses through a hypercall
/// (PV_UNHALT, PV_SEND_IPI, PV_SCHED_YIELD, HC_MAP_GPA_RANGE: mask 0x12880), else 0.
const PROBE_HYPERCALL_FEATURES: &[u8] = &[
    0xb8, 0x00, 0x00, 0x00, 0x40, // mov $0x40000000, %eax
    0x0f, 0xa2, // cpuid
    0x81, 0xfb, 0x4b, 0x56, 0x4d, 0x4b, // cmp $0x4b4d564b ("KVMK"), %ebx
    0x75, 0x14, // jne no_kvm
    0xb8, 0x01, 0x00, 0x00, 0x40, // mov $0x40000001, %eax
    0x0f, 0xa2, // cpuid
    0x25, 0x80, 0x28, 0x01, 0x00, // and $0x12880, %eax
    0x0f, 0x95, 0xc0, // setnz %al
    0xe6, 0xf4, // out %al, $0xf4
    0xf4, 0xeb, 0xfd, // 1: hlt; jmp 1b
    0xb0, 0x02, 0xe6, 0xf4, // no_kvm: mov $2, %al; out %al, $0xf4
    0xf4, 0xeb, 0xfd, // 1: hlt; jmp 1b
];

/// On kvm_pvm a guest's `vmcall` never returns (vmm/README.md, "The host workaround"):
/// with the workaround the guest is not offered the KVM features that need one. Without
/// it the host's own list reaches the guest (on this host it includes them).
#[test]
fn pvm_workaround_hides_the_kvm_features_that_need_a_hypercall() {
    let (_dir, on) = boot(PROBE_HYPERCALL_FEATURES, true, &["--pvm-workaround", "on"]);
    assert_eq!(on.status, Some(0), "hypercall features offered: {on:?}");
    let (_dir, off) = boot(PROBE_HYPERCALL_FEATURES, true, &["--pvm-workaround", "off"]);
    assert_ne!(off.status, Some(2), "no KVM signature: {off:?}");
    if Path::new("/sys/module/kvm_pvm").exists() {
        // Measured here: kvm_pvm offers PV_UNHALT, PV_SEND_IPI and PV_SCHED_YIELD.
        assert_eq!(off.status, Some(1), "{off:?}");
    }
}

/// 32-bit PVH code: checks the virtio-mmio magic ("virt") of slots 0 and 1 and exits with
/// `(device_id(slot 0) << 5) | device_id(slot 1)`, or 0x30 if a magic is wrong.
const PROBE_VIRTIO_SLOTS: &[u8] = &[
    0xa1, 0x00, 0x10, 0x00, 0xd0, // mov 0xd0001000, %eax
    0x3d, 0x76, 0x69, 0x72, 0x74, // cmp $0x74726976, %eax
    0x75, 0x1e, // jne bad
    0xa1, 0x00, 0x20, 0x00, 0xd0, // mov 0xd0002000, %eax
    0x3d, 0x76, 0x69, 0x72, 0x74, // cmp $0x74726976, %eax
    0x75, 0x12, // jne bad
    0xa1, 0x08, 0x10, 0x00, 0xd0, // mov 0xd0001008, %eax (DeviceID, slot 0)
    0xc1, 0xe0, 0x05, // shl $5, %eax
    0x8b, 0x1d, 0x08, 0x20, 0x00, 0xd0, // mov 0xd0002008, %ebx (DeviceID, slot 1)
    0x09, 0xd8, // or %ebx, %eax
    0xe6, 0xf4, // out %al, $0xf4
    0xb0, 0x30, 0xe6, 0xf4, // bad: mov $0x30, %al; out %al, $0xf4
    0xf4, 0xeb, 0xfd, // 1: hlt; jmp 1b
];

#[test]
fn rootfs_and_vsock_sit_in_consecutive_virtio_mmio_slots_and_reach_the_cmdline() {
    let disk_dir = tempfile::tempdir().expect("tempdir");
    let disk = disk_dir.path().join("root.img");
    std::fs::write(&disk, vec![0u8; 1 << 20]).expect("disk");
    let uds = disk_dir.path().join("vsock.sock");
    let (_dir, run) = boot(
        PROBE_VIRTIO_SLOTS,
        true,
        &[
            "--rootfs",
            disk.to_str().expect("utf8"),
            "--vsock-uds",
            uds.to_str().expect("utf8"),
        ],
    );
    // virtio device ids: block = 2, vsock = 19.
    assert_eq!(run.status, Some((2 << 5) | 19), "{run:?}");
    assert!(
        run.stderr.contains(
            "root=/dev/vda ro virtio_mmio.device=4K@0xd0001000:5 virtio_mmio.device=4K@0xd0002000:6"
        ),
        "{}",
        run.stderr
    );
}

/// 64-bit code at a bzImage's 64-bit entry: checks that `rsi` points at a zero page with
/// the "HdrS" magic and the command line pointer, then exits 0x2c (0x30 if not).
const BZIMAGE_ZERO_PAGE_CHECK: &[u8] = &[
    0x81, 0xbe, 0x02, 0x02, 0x00, 0x00, 0x48, 0x64, 0x72, 0x53, // cmpl $"HdrS", 0x202(%rsi)
    0x75, 0x10, // jne bad
    0x81, 0xbe, 0x28, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, // cmpl $0x20000, 0x228(%rsi)
    0x75, 0x04, // jne bad
    0xb0, 0x2c, 0xe6, 0xf4, // mov $0x2c, %al; out %al, $0xf4
    0xb0, 0x30, 0xe6, 0xf4, // bad: mov $0x30, %al; out %al, $0xf4
    0xf4, 0xeb, 0xfd, // 1: hlt; jmp 1b
];

#[test]
fn bzimage_is_entered_in_long_mode_with_the_zero_page_in_rsi() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kernel = dir.path().join("bzImage");
    std::fs::write(&kernel, common::bzimage(BZIMAGE_ZERO_PAGE_CHECK)).expect("write");
    let run = run_vmm(
        &[
            "--kernel",
            kernel.to_str().expect("utf8"),
            "--serial-log",
            "/dev/null",
        ],
        None,
        DEADLINE,
    );
    assert_eq!(run.status, Some(0x2c), "{run:?}");
}

#[test]
fn triple_fault_is_a_reset() {
    // 32-bit PVH code: `ud2` with an empty IDT: #UD, #GP, #DF, then shutdown.
    let (_dir, run) = boot(&[0x0f, 0x0b], true, &[]);
    assert_eq!(run.status, Some(2), "{run:?}");
    let detail = summary(&run)["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(detail.contains("triple fault"), "{detail}");
}
