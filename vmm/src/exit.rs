//! Why a VM stopped, and the flint-vmm exit status for each reason.
//!
//! | status | meaning |
//! |---|---|
//! | 0 | guest powered off (KVM system event "shutdown", a HLT exit, or exit-port byte 0) |
//! | 1 | flint-vmm itself failed (bad config, setup error, a vCPU thread died); printed on stderr |
//! | 2 | guest reset/reboot: i8042 reset (0xFE to port 0x64), KVM "reset" event, triple fault; a Linux panic with `panic=-1 reboot=k` ends here |
//! | 3 | guest crash (KVM system event "crash") |
//! | 4 | KVM could not run the guest (FAIL_ENTRY, INTERNAL_ERROR, an unexpected exit, a KVM_RUN error) |
//! | 5 | a snapshot was written (`--snapshot-to` and SIGUSR1); the VM stopped |
//! | n | the guest wrote byte n to the Flint exit port 0xf4 (test guests use n >= 16) |

use serde::Serialize;

/// Exit status: guest powered off.
pub const EXIT_POWER_OFF: i32 = 0;
/// Exit status: flint-vmm failed.
pub const EXIT_VMM_ERROR: i32 = 1;
/// Exit status: guest reset.
pub const EXIT_RESET: i32 = 2;
/// Exit status: guest crashed.
pub const EXIT_CRASH: i32 = 3;
/// Exit status: KVM could not run the guest.
pub const EXIT_KVM_FAILURE: i32 = 4;
/// Exit status: a snapshot was written and the VM stopped.
pub const EXIT_SNAPSHOT: i32 = 5;

/// Why the VM stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmExit {
    /// The guest powered off; the string says how.
    PowerOff(String),
    /// The guest reset or rebooted; the string says how.
    Reset(String),
    /// The guest reported a crash.
    Crash(String),
    /// The guest wrote this byte to the Flint exit port.
    ExitPort(u8),
    /// KVM could not run the guest; the string has the details.
    KvmFailure(String),
    /// flint-vmm itself failed while the guest ran (a vCPU thread died).
    VmmFailure(String),
    /// The VM was written to this snapshot directory and stopped.
    Snapshot(String),
}

impl VmExit {
    /// The VM's end for a KVM_EXIT_SYSTEM_EVENT of `kind`: on x86_64 an ACPI-less guest
    /// rarely raises one; on aarch64 it is how PSCI SYSTEM_OFF (shutdown), SYSTEM_RESET
    /// (reset) and a crash reach the VMM, KVM handling PSCI in the kernel.
    pub fn from_system_event(kind: u32) -> Self {
        use kvm_bindings::{
            KVM_SYSTEM_EVENT_CRASH, KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN,
        };
        match kind {
            KVM_SYSTEM_EVENT_SHUTDOWN => VmExit::PowerOff("KVM system event: shutdown".into()),
            KVM_SYSTEM_EVENT_RESET => VmExit::Reset("KVM system event: reset".into()),
            KVM_SYSTEM_EVENT_CRASH => VmExit::Crash("KVM system event: crash".into()),
            other => VmExit::KvmFailure(format!("unknown KVM system event {other}")),
        }
    }

    /// flint-vmm's exit status for this reason.
    pub fn exit_code(&self) -> i32 {
        match self {
            VmExit::PowerOff(_) => EXIT_POWER_OFF,
            VmExit::Reset(_) => EXIT_RESET,
            VmExit::Crash(_) => EXIT_CRASH,
            VmExit::ExitPort(code) => i32::from(*code),
            VmExit::KvmFailure(_) => EXIT_KVM_FAILURE,
            VmExit::VmmFailure(_) => EXIT_VMM_ERROR,
            VmExit::Snapshot(_) => EXIT_SNAPSHOT,
        }
    }

    /// Short machine-readable reason.
    pub fn reason(&self) -> &'static str {
        match self {
            VmExit::PowerOff(_) => "power_off",
            VmExit::Reset(_) => "reset",
            VmExit::Crash(_) => "crash",
            VmExit::ExitPort(_) => "exit_port",
            VmExit::KvmFailure(_) => "kvm_failure",
            VmExit::VmmFailure(_) => "vmm_failure",
            VmExit::Snapshot(_) => "snapshot",
        }
    }

    /// Human-readable detail.
    pub fn detail(&self) -> String {
        match self {
            VmExit::PowerOff(s)
            | VmExit::Reset(s)
            | VmExit::Crash(s)
            | VmExit::KvmFailure(s)
            | VmExit::VmmFailure(s) => s.clone(),
            VmExit::ExitPort(code) => format!("guest wrote {code} to the exit port"),
            VmExit::Snapshot(dir) => format!("snapshot written to {dir}"),
        }
    }
}

/// The one-line JSON summary printed when the VM ends.
#[derive(Debug, Serialize)]
pub struct ExitSummary {
    /// flint-vmm's exit status.
    pub exit_code: i32,
    /// Machine-readable reason (`power_off`, `reset`, `crash`, `exit_port`, `kvm_failure`,
    /// `vmm_failure`, `snapshot`).
    pub reason: &'static str,
    /// Human-readable detail.
    pub detail: String,
    /// Boot milestones.
    pub timings: crate::timing::TimingReport,
}

impl ExitSummary {
    /// Builds the summary of `exit` with `timings`.
    pub fn new(exit: &VmExit, timings: crate::timing::TimingReport) -> Self {
        ExitSummary {
            exit_code: exit.exit_code(),
            reason: exit.reason(),
            detail: exit.detail(),
            timings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_distinct_per_reason() {
        assert_eq!(VmExit::PowerOff("x".into()).exit_code(), 0);
        assert_eq!(VmExit::Reset("x".into()).exit_code(), 2);
        assert_eq!(VmExit::Crash("x".into()).exit_code(), 3);
        assert_eq!(VmExit::KvmFailure("x".into()).exit_code(), 4);
        assert_eq!(VmExit::ExitPort(42).exit_code(), 42);
        assert_eq!(VmExit::Snapshot("/s".into()).exit_code(), 5);
    }

    #[test]
    fn summary_serialises_to_one_json_line() {
        let s = ExitSummary::new(&VmExit::ExitPort(42), Default::default());
        let line = serde_json::to_string(&s).expect("json");
        assert!(!line.contains('\n'));
        assert!(line.contains("\"exit_code\":42"));
        assert!(line.contains("\"reason\":\"exit_port\""));
        assert!(line.contains("\"first_guest_instruction_us\":null"));
    }
}
