//! PID 1 of a microVM guest (`/sbin/init`): signal the VMM's boot timer, mount the
//! kernel file systems, bring up lo (and eth0 when the VM has a network), connect to
//! the host over vsock, run the init loop, then power the VM off.

use crate::control::{self, Paths};
use crate::{guest_net, net, vsock};
use nix::mount::{mount, MsFlags};
use std::path::Path;
use std::time::{Duration, Instant};

/// Physical address of the VMM's boot-timer MMIO page (flint-vmm's
/// `arch::*::layout::BOOT_TIMER_ADDR` of the same architecture).
#[cfg(not(target_arch = "aarch64"))]
pub const BOOT_TIMER_ADDR: i64 = 0xd000_0000;
/// Physical address of the VMM's boot-timer MMIO page (flint-vmm's
/// `arch::*::layout::BOOT_TIMER_ADDR` of the same architecture).
#[cfg(target_arch = "aarch64")]
pub const BOOT_TIMER_ADDR: i64 = 0x0900_1000;
/// Value written there: "init started".
pub const BOOT_TIMER_MAGIC: u8 = 123;

/// Runs the guest init; never returns.
pub fn run() -> ! {
    let started = Instant::now();
    let marked = mark_boot_timer().is_ok();
    mount_kernel_fs();
    if !marked {
        // /dev/mem only exists once devtmpfs is mounted when the kernel did not do it.
        let _ = mark_boot_timer();
    }
    if let Err(e) = net::loopback_up() {
        eprintln!("flint-init: {e}");
    }
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    match guest_net::setup_from_cmdline(&cmdline) {
        Ok(Some((cfg, done))) => eprintln!(
            "flint-init: {} {} via {:?} (address {} by the kernel), {} name servers",
            cfg.device,
            cfg.address,
            cfg.gateway,
            if done.address_was_set {
                "set"
            } else {
                "not set"
            },
            cfg.dns.len()
        ),
        Ok(None) => {}
        Err(e) => eprintln!("flint-init: network: {e}"),
    }
    let port = vsock::port_from_cmdline(&cmdline);
    // After a snapshot restore the VMM resets the connection: dial again (Hello again).
    let reconnect = move || {
        vsock::connect_host(port, 200, Duration::from_millis(10)).map_err(|e| e.to_string())
    };
    match vsock::connect_host(port, 200, Duration::from_millis(10)) {
        Ok(stream) => match control::run(stream, started, &Paths::default(), Some(&reconnect)) {
            Ok(_) => {}
            Err(e) => eprintln!("flint-init: {e}"),
        },
        Err(e) => eprintln!("flint-init: {e}"),
    }
    power_off()
}

/// Writes the boot-timer byte through /dev/mem.
fn mark_boot_timer() -> Result<(), nix::Error> {
    let fd = nix::fcntl::open(
        "/dev/mem",
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_SYNC | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    // SAFETY: maps one page of /dev/mem (a device page owned by the VMM) that no Rust
    // object aliases; the result is checked before use.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            BOOT_TIMER_ADDR,
        )
    };
    let res = if ptr == libc::MAP_FAILED {
        Err(nix::Error::last())
    } else {
        // SAFETY: `ptr` is a live 4 KiB mapping; a volatile byte store is an MMIO write.
        unsafe {
            std::ptr::write_volatile(ptr.cast::<u8>(), BOOT_TIMER_MAGIC);
            libc::munmap(ptr, 4096);
        }
        Ok(())
    };
    let _ = nix::unistd::close(fd);
    res
}

fn mount_kernel_fs() {
    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    for (fstype, target, flags) in [
        ("proc", "/proc", nosuid_nodev_noexec),
        ("sysfs", "/sys", nosuid_nodev_noexec),
        ("devtmpfs", "/dev", MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC),
    ] {
        match mount(
            Some(fstype),
            Path::new(target),
            Some(fstype),
            flags,
            None::<&str>,
        ) {
            Ok(()) | Err(nix::Error::EBUSY) => {}
            Err(e) => eprintln!("flint-init: mounting {fstype} on {target}: {e}"),
        }
    }
}

fn power_off() -> ! {
    control::kill_runtime();
    // SAFETY: sync and reboot take no pointers; reboot only returns on failure.
    let rc = unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF)
    };
    if rc != 0 {
        eprintln!("flint-init: power off: {}", nix::Error::last());
    }
    // PID 1 must not exit (that panics the kernel); wait to be killed.
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
