//! The x86_64 port I/O bus: COM1 (a 16550 at 0x3f8), the i8042 controller (its reset
//! line) and the Flint exit port 0xf4. [`PioDevices`] dispatches the vCPU's port exits.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::i8042;
use super::serial::{self, SerialPort};
use crate::arch::current::layout::{EXIT_PORT, I8042_CMD_PORT, I8042_DATA_PORT, SERIAL_PORT_BASE};
use crate::exit::VmExit;

/// Number of registers of a 16550 UART.
const SERIAL_PORT_COUNT: u16 = 8;

/// The state of the port I/O devices in a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyState {
    /// COM1.
    pub serial: serial::SerialSnapshot,
    /// The i8042 controller.
    pub i8042: i8042::I8042,
}

/// The devices on the port I/O bus.
pub struct PioDevices {
    serial: Mutex<SerialPort>,
    i8042: Mutex<i8042::I8042>,
}

impl PioDevices {
    /// The port bus with COM1 = `serial`.
    pub fn new(serial: SerialPort) -> Self {
        PioDevices {
            serial: Mutex::new(serial),
            i8042: Mutex::new(i8042::I8042::new()),
        }
    }

    /// The port bus with COM1 = `serial` and the i8042 in the state `i8042`.
    pub fn with_i8042(serial: SerialPort, i8042: i8042::I8042) -> Self {
        PioDevices {
            serial: Mutex::new(serial),
            i8042: Mutex::new(i8042),
        }
    }

    /// The devices' state (the vCPUs must be paused).
    pub fn snapshot(&self) -> LegacyState {
        let serial = match self.serial.lock() {
            Ok(s) => s.snapshot(),
            Err(poisoned) => poisoned.into_inner().snapshot(),
        };
        let i8042 = match self.i8042.lock() {
            Ok(k) => k.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        LegacyState { serial, i8042 }
    }

    fn serial_offset(port: u16) -> Option<u8> {
        port.checked_sub(SERIAL_PORT_BASE)
            .filter(|off| *off < SERIAL_PORT_COUNT)
            .map(|off| off as u8)
    }

    /// A guest `in` from `port`. Unclaimed ports read as all ones, like an empty ISA bus.
    pub fn read(&self, port: u16, data: &mut [u8]) {
        if let Some(offset) = Self::serial_offset(port) {
            if let (Some(first), Ok(mut serial)) = (data.first_mut(), self.serial.lock()) {
                *first = serial.read(offset);
                return;
            }
        }
        let value = match port {
            I8042_CMD_PORT => self.i8042.lock().map(|kbd| kbd.read_status()).ok(),
            I8042_DATA_PORT => self.i8042.lock().map(|mut kbd| kbd.read_data()).ok(),
            _ => None,
        };
        data.fill(value.unwrap_or(0xff));
    }

    /// A guest `out` to `port`; returns the VM's end if the write asked for it.
    pub fn write(&self, port: u16, data: &[u8]) -> Option<VmExit> {
        let value = *data.first()?;
        if let Some(offset) = Self::serial_offset(port) {
            if let Ok(mut serial) = self.serial.lock() {
                serial.write(offset, value);
            }
            return None;
        }
        match port {
            I8042_DATA_PORT | I8042_CMD_PORT => {
                let mut kbd = self.i8042.lock().ok()?;
                let action = if port == I8042_CMD_PORT {
                    kbd.write_command(value)
                } else {
                    kbd.write_data(value)
                };
                match action {
                    i8042::I8042Action::Reset => {
                        Some(VmExit::Reset("i8042 reset (0xfe to port 0x64)".into()))
                    }
                    i8042::I8042Action::None => None,
                }
            }
            EXIT_PORT => Some(VmExit::ExitPort(value)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::IrqLine;
    use crate::timing::BootTimes;
    use std::sync::Arc;

    struct NoIrq;
    impl IrqLine for NoIrq {
        fn trigger(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn bus() -> PioDevices {
        let times = Arc::new(BootTimes::new(std::time::Instant::now()));
        PioDevices::new(SerialPort::new(
            Arc::new(NoIrq),
            Box::new(std::io::sink()),
            times,
        ))
    }

    #[test]
    fn exit_port_and_i8042_reset_end_the_vm() {
        let bus = bus();
        assert_eq!(bus.write(EXIT_PORT, &[42]), Some(VmExit::ExitPort(42)));
        assert!(matches!(
            bus.write(I8042_CMD_PORT, &[0xfe]),
            Some(VmExit::Reset(_))
        ));
        assert_eq!(bus.write(I8042_DATA_PORT, &[0xfe]), None);
        assert_eq!(bus.write(0x80, &[1]), None);
        assert_eq!(bus.write(EXIT_PORT, &[]), None);
    }

    #[test]
    fn reads_reach_serial_and_unclaimed_ports_float_high() {
        let bus = bus();
        bus.write(SERIAL_PORT_BASE + 7, &[0x5a]);
        let mut b = [0u8; 1];
        bus.read(SERIAL_PORT_BASE + 7, &mut b);
        assert_eq!(b[0], 0x5a, "scratch register reads back");
        bus.read(0x2f8, &mut b);
        assert_eq!(b[0], 0xff);
        bus.read(I8042_CMD_PORT, &mut b);
        assert_eq!(b[0] & 1, 0, "i8042 output buffer empty");
        bus.write(I8042_CMD_PORT, &[0x20]);
        bus.read(I8042_DATA_PORT, &mut b);
        assert_eq!(b[0], 0x45, "i8042 configuration byte");
    }
}
