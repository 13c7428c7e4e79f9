//! COM1: a 16550 UART (vm-superio) at port 0x3f8 whose output goes to a log file or stdout
//! and whose interrupt is IRQ 4 (an irqfd).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use vm_superio::serial::{SerialEvents, SerialState};
use vm_superio::{Serial, Trigger};

use crate::devices::IrqLine;
use crate::timing::BootTimes;

/// Adapts an [`IrqLine`] to vm-superio's interrupt trigger.
pub struct SerialIrq(pub Arc<dyn IrqLine>);

impl Trigger for SerialIrq {
    type E = std::io::Error;

    fn trigger(&self) -> std::io::Result<()> {
        self.0.trigger()
    }
}

/// Records the first output byte and reports lost bytes once.
pub struct SerialTimer {
    times: Arc<BootTimes>,
    warned: AtomicBool,
}

impl SerialEvents for SerialTimer {
    fn buffer_read(&self) {}

    fn out_byte(&self) {
        self.times.mark_serial_byte();
    }

    fn tx_lost_byte(&self) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!("serial output could not be written; further losses are not logged");
        }
    }

    fn in_buffer_empty(&self) {}
}

/// The UART's registers and receive FIFO, as a snapshot keeps them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SerialSnapshot {
    /// Divisor latch, low and high byte.
    pub baud_divisor: [u8; 2],
    /// Interrupt enable register.
    pub interrupt_enable: u8,
    /// Interrupt identification register.
    pub interrupt_identification: u8,
    /// Line control register.
    pub line_control: u8,
    /// Line status register.
    pub line_status: u8,
    /// Modem control register.
    pub modem_control: u8,
    /// Modem status register.
    pub modem_status: u8,
    /// Scratch register.
    pub scratch: u8,
    /// Received bytes the guest has not read.
    pub in_buffer: Vec<u8>,
}

impl From<SerialState> for SerialSnapshot {
    fn from(s: SerialState) -> Self {
        SerialSnapshot {
            baud_divisor: [s.baud_divisor_low, s.baud_divisor_high],
            interrupt_enable: s.interrupt_enable,
            interrupt_identification: s.interrupt_identification,
            line_control: s.line_control,
            line_status: s.line_status,
            modem_control: s.modem_control,
            modem_status: s.modem_status,
            scratch: s.scratch,
            in_buffer: s.in_buffer,
        }
    }
}

impl From<&SerialSnapshot> for SerialState {
    fn from(s: &SerialSnapshot) -> Self {
        SerialState {
            baud_divisor_low: s.baud_divisor[0],
            baud_divisor_high: s.baud_divisor[1],
            interrupt_enable: s.interrupt_enable,
            interrupt_identification: s.interrupt_identification,
            line_control: s.line_control,
            line_status: s.line_status,
            modem_control: s.modem_control,
            modem_status: s.modem_status,
            scratch: s.scratch,
            in_buffer: s.in_buffer.clone(),
        }
    }
}

/// A snapshot's serial state could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("invalid serial state in the snapshot: {0}")]
pub struct SerialRestoreError(String);

/// The COM1 device on the port bus.
pub struct SerialPort {
    inner: Serial<SerialIrq, SerialTimer, Box<dyn Write + Send>>,
}

impl SerialPort {
    /// A UART writing to `out` and raising `irq`.
    pub fn new(irq: Arc<dyn IrqLine>, out: Box<dyn Write + Send>, times: Arc<BootTimes>) -> Self {
        let events = SerialTimer {
            times,
            warned: AtomicBool::new(false),
        };
        SerialPort {
            inner: Serial::with_events(SerialIrq(irq), events, out),
        }
    }

    /// A UART in the state `snapshot` describes (raising `irq` again if an interrupt was
    /// pending), writing to `out`.
    pub fn from_snapshot(
        snapshot: &SerialSnapshot,
        irq: Arc<dyn IrqLine>,
        out: Box<dyn Write + Send>,
        times: Arc<BootTimes>,
    ) -> Result<Self, SerialRestoreError> {
        let events = SerialTimer {
            times,
            warned: AtomicBool::new(false),
        };
        let inner = Serial::from_state(&snapshot.into(), SerialIrq(irq), events, out)
            .map_err(|e| SerialRestoreError(format!("{e:?}")))?;
        Ok(SerialPort { inner })
    }

    /// The UART's registers and FIFO.
    pub fn snapshot(&self) -> SerialSnapshot {
        self.inner.state().into()
    }

    /// Guest read of register `offset` (0..8).
    pub fn read(&mut self, offset: u8) -> u8 {
        self.inner.read(offset)
    }

    /// Guest write of register `offset` (0..8). Output errors are counted, not fatal.
    pub fn write(&mut self, offset: u8, value: u8) {
        if let Err(e) = self.inner.write(offset, value) {
            tracing::debug!("serial write: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Mutex;

    #[derive(Default)]
    struct CountingIrq(AtomicUsize);
    impl IrqLine for CountingIrq {
        fn trigger(&self) -> std::io::Result<()> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    #[derive(Clone, Default)]
    struct SharedBuf(Arc<Mutex<Vec<u8>>>);
    impl Write for SharedBuf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::ErrorKind::Other)?
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn output_reaches_the_writer_and_thre_interrupt_fires() {
        let irq = Arc::new(CountingIrq::default());
        let buf = SharedBuf::default();
        let times = Arc::new(BootTimes::new(std::time::Instant::now()));
        let mut port = SerialPort::new(irq.clone(), Box::new(buf.clone()), times.clone());
        port.write(0, b'O');
        port.write(0, b'K');
        assert_eq!(buf.0.lock().expect("lock").as_slice(), b"OK");
        assert!(times.report().first_serial_byte_us.is_some());
        assert_eq!(
            irq.0.load(Ordering::SeqCst),
            0,
            "no interrupt while IER is 0"
        );
        port.write(1, 0x02);
        assert_eq!(irq.0.load(Ordering::SeqCst), 1);
    }
}
