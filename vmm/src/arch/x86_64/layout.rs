//! The x86_64 guest physical memory map: where the VMM puts boot structures, the MMIO
//! gap and the devices inside it. Every address the machine uses is named here.

/// Global descriptor table written by the VMM for the boot vCPU.
pub const GDT_ADDR: u64 = 0x500;
/// Interrupt descriptor table (empty) loaded at boot.
pub const IDT_ADDR: u64 = 0x520;
/// PVH `hvm_start_info` structure (passed in `ebx`).
pub const PVH_INFO_ADDR: u64 = 0x6000;
/// PVH memory map table, right after the start info page's header.
pub const PVH_MEMMAP_ADDR: u64 = 0x6040;
/// Linux `boot_params` ("zero page") for the 64-bit boot protocol (passed in `rsi`).
pub const ZERO_PAGE_ADDR: u64 = 0x7000;
/// Initial stack pointer of the boot vCPU.
pub const BOOT_STACK_ADDR: u64 = 0x8ff0;
/// Page map level 4 table of the boot page tables.
pub const PML4_ADDR: u64 = 0x9000;
/// Page directory pointer table of the boot page tables.
pub const PDPT_ADDR: u64 = 0xa000;
/// Page directory (512 x 2 MiB = the first 1 GiB) of the boot page tables.
pub const PD_ADDR: u64 = 0xb000;
/// Multiprocessor (MP) table, describing CPUs and the IOAPIC to a guest without ACPI.
pub const MPTABLE_ADDR: u64 = 0x9fc00;
/// Kernel command line.
pub const CMDLINE_ADDR: u64 = 0x20000;
/// Largest command line including its terminating NUL.
pub const CMDLINE_MAX_SIZE: usize = 2048;
/// Start of the Extended BIOS Data Area: low RAM usable by the guest ends here.
pub const EBDA_START: u64 = 0x9fc00;
/// Start of high memory; kernels are loaded at or above this address.
pub const HIMEM_START: u64 = 0x10_0000;

/// Start of the MMIO gap: guest RAM ends at or below this address.
pub const MMIO_GAP_START: u64 = 0xd000_0000;
/// End (exclusive) of the MMIO gap (4 GiB).
pub const MMIO_GAP_END: u64 = 0x1_0000_0000;
/// The Flint boot-timer device page.
pub const BOOT_TIMER_ADDR: u64 = 0xd000_0000;
/// Size of the boot-timer device page.
pub const BOOT_TIMER_SIZE: u64 = 0x1000;
/// First virtio-mmio device; device `i` sits at `VIRTIO_MMIO_BASE + i * VIRTIO_MMIO_SIZE`.
pub const VIRTIO_MMIO_BASE: u64 = 0xd000_1000;
/// Size of each virtio-mmio device window.
pub const VIRTIO_MMIO_SIZE: u64 = 0x1000;
/// GSI of the first virtio-mmio device; device `i` uses `VIRTIO_IRQ_BASE + i`.
pub const VIRTIO_IRQ_BASE: u32 = 5;
/// Last GSI usable by a device (the IOAPIC has 24 pins).
pub const IRQ_MAX: u32 = 23;
/// IOAPIC base address (KVM's in-kernel IOAPIC).
pub const IOAPIC_ADDR: u64 = 0xfec0_0000;
/// Local APIC base address.
pub const LAPIC_ADDR: u64 = 0xfee0_0000;
/// KVM's TSS area (three pages), inside the MMIO gap.
pub const KVM_TSS_ADDR: u64 = 0xfffb_d000;
/// KVM's identity-map page (one page just below the TSS area).
pub const KVM_IDENTITY_MAP_ADDR: u64 = 0xfffb_c000;

/// COM1 16550 UART I/O port base.
pub const SERIAL_PORT_BASE: u16 = 0x3f8;
/// COM1 interrupt line.
pub const SERIAL_IRQ: u32 = 4;
/// i8042 data port.
pub const I8042_DATA_PORT: u16 = 0x60;
/// i8042 command/status port; writing 0xFE resets the machine.
pub const I8042_CMD_PORT: u16 = 0x64;
/// Flint debug exit port: a byte written here ends the VM with that exit status.
pub const EXIT_PORT: u16 = 0xf4;

/// Guest RAM starts at guest physical address 0.
pub const RAM_START: u64 = 0;
/// Largest guest RAM size: one region below the MMIO gap.
pub const MAX_MEM_BYTES: u64 = MMIO_GAP_START;
