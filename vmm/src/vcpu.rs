//! vCPU threads: each runs KVM_RUN in a loop and dispatches exits to the port bus
//! (x86_64), the MMIO bus, or ends the VM. The first vCPU to see the VM end reports why on
//! a channel. Shared by both architectures: on aarch64 every device is on the MMIO bus and
//! PSCI SYSTEM_OFF/SYSTEM_RESET arrive as KVM_EXIT_SYSTEM_EVENT.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::thread::JoinHandle;

use kvm_ioctls::{VcpuExit, VcpuFd};

use crate::arch::current::vcpu_state::{self, SaveCaps, VcpuState, VcpuStateError};
use crate::bus::MmioBus;
use crate::exit::VmExit;
#[cfg(target_arch = "x86_64")]
use crate::legacy::PioDevices;
use crate::pause::PauseControl;
use crate::timing::BootTimes;

/// What every vCPU thread shares.
#[derive(Clone)]
pub struct VcpuContext {
    /// Port I/O devices.
    #[cfg(target_arch = "x86_64")]
    pub pio: Arc<PioDevices>,
    /// MMIO devices.
    pub mmio: Arc<MmioBus>,
    /// Boot milestones.
    pub times: Arc<BootTimes>,
    /// Set when the VMM wants the vCPUs paused for a snapshot.
    pub pause: Arc<PauseControl>,
    /// What the vCPU state of a snapshot includes.
    pub caps: Arc<SaveCaps>,
}

/// What vCPU threads (and the snapshot signal thread) tell the VMM.
#[derive(Debug)]
pub enum VmEvent {
    /// The VM ended.
    Exit(VmExit),
    /// vCPU `index` paused for a snapshot, with its state.
    Paused(u8, Box<Result<VcpuState, VcpuStateError>>),
    /// Someone asked for a snapshot (SIGUSR1).
    SnapshotRequested,
}

/// How a vCPU's run loop ended.
#[derive(Debug, PartialEq, Eq)]
pub enum RunEnd {
    /// The VM ended.
    Exit(VmExit),
    /// A pause was requested.
    Pause,
}

/// Errors while starting a vCPU thread.
#[derive(Debug, thiserror::Error)]
pub enum VcpuError {
    /// cannot start vCPU thread {0}: {1}
    #[error("cannot start vCPU thread {0}: {1}")]
    Spawn(u8, std::io::Error),
}

/// The outcome of one exit.
enum Step {
    Continue,
    Stop(VmExit),
    /// Exits whose diagnosis needs the vCPU again (after the exit's borrow ends).
    InternalError,
    Shutdown,
}

fn dispatch(exit: VcpuExit<'_>, ctx: &VcpuContext) -> Step {
    match exit {
        #[cfg(target_arch = "x86_64")]
        VcpuExit::IoOut(port, data) => {
            ctx.times.mark_io_exit();
            match ctx.pio.write(port, data) {
                Some(stop) => Step::Stop(stop),
                None => Step::Continue,
            }
        }
        #[cfg(target_arch = "x86_64")]
        VcpuExit::IoIn(port, data) => {
            ctx.times.mark_io_exit();
            ctx.pio.read(port, data);
            Step::Continue
        }
        VcpuExit::MmioRead(addr, data) => {
            ctx.times.mark_io_exit();
            if !ctx.mmio.read(addr, data) {
                tracing::trace!("MMIO read of unmapped address {addr:#x}");
            }
            Step::Continue
        }
        VcpuExit::MmioWrite(addr, data) => {
            ctx.times.mark_io_exit();
            if !ctx.mmio.write(addr, data) {
                tracing::trace!("MMIO write to unmapped address {addr:#x}");
            }
            Step::Continue
        }
        VcpuExit::Hlt => Step::Stop(VmExit::PowerOff("guest halted".into())),
        VcpuExit::Shutdown => Step::Shutdown,
        VcpuExit::SystemEvent(kind, _) => Step::Stop(VmExit::from_system_event(kind)),
        VcpuExit::FailEntry(reason, cpu) => Step::Stop(VmExit::KvmFailure(format!(
            "KVM_EXIT_FAIL_ENTRY: hardware entry failure reason {reason:#x} on cpu {cpu}"
        ))),
        VcpuExit::InternalError => Step::InternalError,
        VcpuExit::Intr | VcpuExit::IrqWindowOpen => Step::Continue,
        other => Step::Stop(VmExit::KvmFailure(format!(
            "unexpected vCPU exit {other:?}"
        ))),
    }
}

/// Describes a KVM internal error with its sub-error and the guest's instruction pointer.
fn internal_error(vcpu: &mut VcpuFd) -> VmExit {
    let run = vcpu.get_kvm_run();
    // SAFETY: KVM_RUN just returned with exit_reason KVM_EXIT_INTERNAL_ERROR, so `internal`
    // is the member of the exit union KVM filled in; it is plain integers.
    let suberror = unsafe { run.__bindgen_anon_1.internal.suberror };
    let ip = crate::arch::current::guest_ip(vcpu);
    let what = match suberror {
        1 => "emulation failure",
        2 => "simultaneous exceptions",
        3 => "delivery event failure",
        _ => "unknown",
    };
    VmExit::KvmFailure(format!(
        "KVM internal error: {what} (suberror {suberror}) at {ip}"
    ))
}

/// Runs `vcpu` until the VM ends or a pause is requested.
pub fn run_loop(vcpu: &mut VcpuFd, index: u8, ctx: &VcpuContext) -> RunEnd {
    if index == 0 {
        ctx.times.mark_first_kvm_run();
    }
    loop {
        if ctx.pause.requested() {
            return RunEnd::Pause;
        }
        let step = match vcpu.run() {
            Ok(exit) => dispatch(exit, ctx),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => Step::Continue,
            Err(e) => Step::Stop(VmExit::KvmFailure(format!("KVM_RUN failed: {e}"))),
        };
        match step {
            Step::Continue => {}
            Step::Stop(exit) => return RunEnd::Exit(exit),
            Step::InternalError => return RunEnd::Exit(internal_error(vcpu)),
            Step::Shutdown => {
                let ip = crate::arch::current::guest_ip(vcpu);
                return RunEnd::Exit(VmExit::Reset(format!(
                    "triple fault (KVM_EXIT_SHUTDOWN) at {ip}"
                )));
            }
        }
    }
}

/// Completes a port or MMIO access KVM is waiting for (KVM_RUN with `immediate_exit`
/// returns before entering the guest) and reads the vCPU's state.
fn pause_and_save(vcpu: &mut VcpuFd, caps: &SaveCaps) -> Result<VcpuState, VcpuStateError> {
    vcpu.set_kvm_immediate_exit(1);
    let completed = vcpu.run().map(|_| ());
    vcpu.set_kvm_immediate_exit(0);
    match completed {
        Err(e) if e.errno() != libc::EINTR => return Err(VcpuStateError::Kvm("RUN", e)),
        _ => {}
    }
    vcpu_state::save(vcpu, caps)
}

/// Starts the thread `flint-vcpu-<index>` running `vcpu`; the VM's end, or the vCPU's
/// state when it pauses, goes to `events`. A paused vCPU stays paused (the process ends
/// after a snapshot).
pub fn spawn(
    mut vcpu: VcpuFd,
    index: u8,
    ctx: VcpuContext,
    events: Sender<VmEvent>,
) -> Result<JoinHandle<()>, VcpuError> {
    std::thread::Builder::new()
        .name(format!("flint-vcpu-{index}"))
        .spawn(move || {
            // Before the first KVM_RUN: a jailed VMM's vCPUs never run unconfined.
            crate::jail::enter_vcpu_thread();
            let outcome =
                std::panic::catch_unwind(AssertUnwindSafe(|| run_loop(&mut vcpu, index, &ctx)));
            let event = match outcome {
                Ok(RunEnd::Exit(exit)) => VmEvent::Exit(exit),
                Ok(RunEnd::Pause) => {
                    VmEvent::Paused(index, Box::new(pause_and_save(&mut vcpu, &ctx.caps)))
                }
                Err(_) => {
                    VmEvent::Exit(VmExit::VmmFailure(format!("vCPU thread {index} panicked")))
                }
            };
            let paused = matches!(event, VmEvent::Paused(..));
            // The receiver only goes away once the VM has ended already.
            let _ = events.send(event);
            if paused {
                loop {
                    std::thread::park();
                }
            }
        })
        .map_err(|e| VcpuError::Spawn(index, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::IrqLine;
    use crate::legacy::serial::SerialPort;
    use kvm_bindings::{KVM_SYSTEM_EVENT_CRASH, KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN};

    struct NoIrq;
    impl IrqLine for NoIrq {
        fn trigger(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn ctx() -> VcpuContext {
        ctx_with(MmioBus::new())
    }

    fn ctx_with(mmio: MmioBus) -> VcpuContext {
        let times = Arc::new(BootTimes::new(std::time::Instant::now()));
        #[cfg(target_arch = "x86_64")]
        let serial = SerialPort::new(Arc::new(NoIrq), Box::new(std::io::sink()), times.clone());
        VcpuContext {
            #[cfg(target_arch = "x86_64")]
            pio: Arc::new(PioDevices::new(serial)),
            mmio: Arc::new(mmio),
            times,
            pause: Arc::new(PauseControl::default()),
            caps: Arc::new(SaveCaps::default()),
        }
    }

    /// A serial log the test can read while the UART owns a writer into it.
    #[derive(Clone, Default)]
    struct SharedLog(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for SharedLog {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("log").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn stop(step: Step) -> VmExit {
        match step {
            Step::Stop(exit) => exit,
            Step::Continue => panic!("expected the VM to stop, got Continue"),
            Step::InternalError => panic!("expected the VM to stop, got InternalError"),
            Step::Shutdown => panic!("expected the VM to stop, got Shutdown"),
        }
    }

    /// On aarch64 this is how PSCI SYSTEM_OFF and SYSTEM_RESET end the VM: KVM answers the
    /// guest's `hvc` and exits with a system event of kind shutdown or reset.
    #[test]
    fn system_events_map_to_power_off_reset_and_crash() {
        let c = ctx();
        let data = [0u64; 1];
        let off = stop(dispatch(
            VcpuExit::SystemEvent(KVM_SYSTEM_EVENT_SHUTDOWN, &data),
            &c,
        ));
        assert_eq!(off.exit_code(), 0);
        let reset = stop(dispatch(
            VcpuExit::SystemEvent(KVM_SYSTEM_EVENT_RESET, &data),
            &c,
        ));
        assert_eq!(reset.exit_code(), 2);
        let crash = stop(dispatch(
            VcpuExit::SystemEvent(KVM_SYSTEM_EVENT_CRASH, &data),
            &c,
        ));
        assert_eq!(crash.exit_code(), 3);
        let odd = stop(dispatch(VcpuExit::SystemEvent(99, &data), &c));
        assert_eq!(odd.exit_code(), 4);
    }

    #[test]
    fn entry_failure_and_unexpected_exits_are_kvm_failures() {
        let c = ctx();
        let fail = stop(dispatch(VcpuExit::FailEntry(0x80000021, 0), &c));
        assert_eq!(fail.exit_code(), 4);
        assert!(fail.detail().contains("0x80000021"));
        assert_eq!(stop(dispatch(VcpuExit::Unknown, &c)).exit_code(), 4);
        assert!(matches!(
            dispatch(VcpuExit::InternalError, &c),
            Step::InternalError
        ));
        assert!(matches!(dispatch(VcpuExit::Shutdown, &c), Step::Shutdown));
        assert!(matches!(dispatch(VcpuExit::Intr, &c), Step::Continue));
    }

    /// The aarch64 machine's UART is an MMIO 16550: a guest store to its data register
    /// reaches the serial log, a load of its line status register says "ready to send",
    /// and both count as the first device exit. The same dispatch runs on x86_64.
    #[test]
    fn mmio_exits_reach_the_uart_on_the_mmio_bus() {
        const UART: u64 = 0x0900_0000;
        let log = SharedLog::default();
        let times = Arc::new(BootTimes::new(std::time::Instant::now()));
        let uart = SerialPort::new(Arc::new(NoIrq), Box::new(log.clone()), times);
        let mut bus = MmioBus::new();
        bus.insert(UART, 0x1000, Arc::new(std::sync::Mutex::new(uart)))
            .expect("uart");
        let c = ctx_with(bus);
        for byte in b"OK" {
            assert!(matches!(
                dispatch(VcpuExit::MmioWrite(UART, &[*byte]), &c),
                Step::Continue
            ));
        }
        assert_eq!(*log.0.lock().expect("log"), b"OK");
        let mut lsr = [0u8; 1];
        assert!(matches!(
            dispatch(VcpuExit::MmioRead(UART + 5, &mut lsr), &c),
            Step::Continue
        ));
        assert_eq!(lsr[0] & 0x60, 0x60, "transmitter empty");
        assert!(c.times.report().first_io_exit_us.is_some());
        // Nothing mapped there: the write is dropped, the read floats high.
        assert!(matches!(
            dispatch(VcpuExit::MmioWrite(UART + 0x1000, &[1]), &c),
            Step::Continue
        ));
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn io_exits_reach_the_buses_and_mark_the_first_exit() {
        let c = ctx();
        assert!(matches!(
            dispatch(VcpuExit::IoOut(0x80, &[1]), &c),
            Step::Continue
        ));
        assert!(c.times.report().first_io_exit_us.is_some());
        assert_eq!(
            stop(dispatch(VcpuExit::IoOut(0xf4, &[17]), &c)).exit_code(),
            17
        );
        let mut data = [0u8; 4];
        assert!(matches!(
            dispatch(VcpuExit::MmioRead(0x1000, &mut data), &c),
            Step::Continue
        ));
        assert_eq!(data, [0xff; 4]);
    }
}
