//! The 16550 UART as an MMIO device (aarch64's `ns16550a` at the device tree's address,
//! one byte per register, `reg-shift` 0): register `offset` of the window is register
//! `offset` of [`SerialPort`]. Accesses beyond the eight registers read as zero and are
//! dropped; only the first byte of a wider access counts.

use super::serial::SerialPort;
use crate::devices::MmioDevice;

/// Registers of a 16550.
const REGISTERS: u64 = 8;

impl MmioDevice for SerialPort {
    fn mmio_read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if let (Some(first), true) = (data.first_mut(), offset < REGISTERS) {
            *first = self.read(offset as u8);
        }
    }

    fn mmio_write(&mut self, offset: u64, data: &[u8]) {
        if let (Some(&value), true) = (data.first(), offset < REGISTERS) {
            self.write(offset as u8, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::virtio::test_utils::CountingIrq;
    use crate::timing::BootTimes;
    use std::sync::Arc;

    #[test]
    fn registers_map_one_byte_each_and_the_rest_of_the_window_is_inert() {
        let times = Arc::new(BootTimes::new(std::time::Instant::now()));
        let irq = Arc::new(CountingIrq::default());
        let mut uart = SerialPort::new(irq.clone(), Box::new(std::io::sink()), times);
        // Scratch register (7) reads back what was written.
        uart.mmio_write(7, &[0x5a]);
        let mut b = [0u8; 1];
        uart.mmio_read(7, &mut b);
        assert_eq!(b, [0x5a]);
        // Beyond the registers: writes dropped, reads zero.
        uart.mmio_write(0x107, &[0x11]);
        let mut wide = [0xffu8; 4];
        uart.mmio_read(0x107, &mut wide);
        assert_eq!(wide, [0; 4]);
        uart.mmio_read(7, &mut wide);
        assert_eq!(wide, [0x5a, 0, 0, 0]);
        uart.mmio_write(7, &[]);
        // Interrupt enable (register 1) with THR-empty set raises the line at once.
        uart.mmio_write(1, &[0x02]);
        assert_eq!(irq.count(), 1);
    }
}
