//! Boot timing: monotonic milestones measured from flint-vmm's start, each recorded once.

use std::sync::OnceLock;
use std::time::Instant;

use serde::Serialize;

/// Boot milestones, recorded by whichever thread sees them first.
#[derive(Debug)]
pub struct BootTimes {
    start: Instant,
    first_kvm_run: OnceLock<u64>,
    first_io_exit: OnceLock<u64>,
    first_serial_byte: OnceLock<u64>,
    init_started: OnceLock<u64>,
}

/// Milestones in microseconds since flint-vmm started; `None` if not reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TimingReport {
    /// Just before the first KVM_RUN of the boot vCPU ("first guest instruction").
    pub first_guest_instruction_us: Option<u64>,
    /// First port or MMIO exit: the kernel is running.
    pub first_io_exit_us: Option<u64>,
    /// First byte the guest wrote to the serial port.
    pub first_serial_byte_us: Option<u64>,
    /// The guest's init wrote to the boot-timer device.
    pub init_started_us: Option<u64>,
    /// When the report was taken (the VM's end).
    pub exit_us: u64,
}

impl BootTimes {
    /// Starts the clock at `start` (flint-vmm's start).
    pub fn new(start: Instant) -> Self {
        BootTimes {
            start,
            first_kvm_run: OnceLock::new(),
            first_io_exit: OnceLock::new(),
            first_serial_byte: OnceLock::new(),
            init_started: OnceLock::new(),
        }
    }

    fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    /// Records the first KVM_RUN.
    pub fn mark_first_kvm_run(&self) {
        self.first_kvm_run.get_or_init(|| self.now_us());
    }

    /// Records the first PIO/MMIO exit.
    pub fn mark_io_exit(&self) {
        if self.first_io_exit.get().is_none() {
            self.first_io_exit.get_or_init(|| self.now_us());
        }
    }

    /// Records the first serial output byte.
    pub fn mark_serial_byte(&self) {
        if self.first_serial_byte.get().is_none() {
            self.first_serial_byte.get_or_init(|| self.now_us());
        }
    }

    /// Records the boot-timer write ("init started").
    pub fn mark_init_started(&self) {
        self.init_started.get_or_init(|| self.now_us());
    }

    /// The milestones so far.
    pub fn report(&self) -> TimingReport {
        TimingReport {
            first_guest_instruction_us: self.first_kvm_run.get().copied(),
            first_io_exit_us: self.first_io_exit.get().copied(),
            first_serial_byte_us: self.first_serial_byte.get().copied(),
            init_started_us: self.init_started.get().copied(),
            exit_us: self.now_us(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milestones_are_recorded_once_and_in_order() {
        let times = BootTimes::new(Instant::now());
        assert_eq!(times.report().first_guest_instruction_us, None);
        times.mark_first_kvm_run();
        let first = times.report().first_guest_instruction_us;
        std::thread::sleep(std::time::Duration::from_millis(2));
        times.mark_first_kvm_run();
        times.mark_io_exit();
        let report = times.report();
        assert_eq!(report.first_guest_instruction_us, first);
        assert!(report.first_io_exit_us > first);
        assert!(report.exit_us >= report.first_io_exit_us.unwrap_or(u64::MAX));
        assert_eq!(report.init_started_us, None);
    }
}
