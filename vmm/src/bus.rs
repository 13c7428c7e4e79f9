//! The MMIO bus: non-overlapping guest address ranges, each mapped to one device.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::devices::MmioDevice;

/// A device on the bus, shared with whoever else needs it.
pub type SharedMmioDevice = Arc<Mutex<dyn MmioDevice>>;

/// Errors while adding a device.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BusError {
    /// MMIO range {base:#x}+{len:#x} overlaps another device
    #[error("MMIO range {base:#x}+{len:#x} overlaps another device")]
    Overlap {
        /// Base of the rejected range.
        base: u64,
        /// Length of the rejected range.
        len: u64,
    },
    /// MMIO range {base:#x}+{len:#x} is empty or wraps
    #[error("MMIO range {base:#x}+{len:#x} is empty or wraps")]
    BadRange {
        /// Base of the rejected range.
        base: u64,
        /// Length of the rejected range.
        len: u64,
    },
}

/// Address ranges to devices.
#[derive(Default)]
pub struct MmioBus {
    devices: BTreeMap<u64, (u64, SharedMmioDevice)>,
}

impl MmioBus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// Maps `device` at `[base, base + len)`.
    pub fn insert(
        &mut self,
        base: u64,
        len: u64,
        device: SharedMmioDevice,
    ) -> Result<(), BusError> {
        let end = base
            .checked_add(len)
            .filter(|_| len > 0)
            .ok_or(BusError::BadRange { base, len })?;
        let before_overlaps = self
            .devices
            .range(..=base)
            .next_back()
            .is_some_and(|(b, (l, _))| b + l > base);
        let after_overlaps = self.devices.range(base..end).next().is_some();
        if before_overlaps || after_overlaps {
            return Err(BusError::Overlap { base, len });
        }
        self.devices.insert(base, (len, device));
        Ok(())
    }

    /// The device covering `addr` and the offset of `addr` inside it.
    fn find(&self, addr: u64) -> Option<(&SharedMmioDevice, u64)> {
        let (base, (len, dev)) = self.devices.range(..=addr).next_back()?;
        let offset = addr - base;
        (offset < *len).then_some((dev, offset))
    }

    /// A guest read; returns false (and fills all ones) when no device covers `addr`.
    pub fn read(&self, addr: u64, data: &mut [u8]) -> bool {
        match self.find(addr) {
            Some((dev, offset)) => {
                match dev.lock() {
                    Ok(mut d) => d.mmio_read(offset, data),
                    Err(_) => data.fill(0xff),
                }
                true
            }
            None => {
                data.fill(0xff);
                false
            }
        }
    }

    /// A guest write; returns false when no device covers `addr`.
    pub fn write(&self, addr: u64, data: &[u8]) -> bool {
        match self.find(addr) {
            Some((dev, offset)) => {
                if let Ok(mut d) = dev.lock() {
                    d.mmio_write(offset, data);
                }
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorder {
        writes: Vec<(u64, Vec<u8>)>,
    }
    impl MmioDevice for Recorder {
        fn mmio_read(&mut self, offset: u64, data: &mut [u8]) {
            data.fill(offset as u8);
        }
        fn mmio_write(&mut self, offset: u64, data: &[u8]) {
            self.writes.push((offset, data.to_vec()));
        }
    }

    #[test]
    fn accesses_reach_the_covering_device_with_relative_offsets() {
        let a = Arc::new(Mutex::new(Recorder::default()));
        let b = Arc::new(Mutex::new(Recorder::default()));
        let mut bus = MmioBus::new();
        bus.insert(0x1000, 0x1000, a.clone()).expect("a");
        bus.insert(0x2000, 0x1000, b.clone()).expect("b");
        assert!(bus.write(0x2004, &[7]));
        assert!(bus.write(0x1fff, &[9]));
        assert!(!bus.write(0x3000, &[1]));
        let mut data = [0u8; 2];
        assert!(bus.read(0x1010, &mut data));
        assert_eq!(data, [0x10, 0x10]);
        assert!(!bus.read(0x500, &mut data));
        assert_eq!(data, [0xff, 0xff]);
        assert_eq!(b.lock().expect("lock").writes, vec![(4, vec![7])]);
        assert_eq!(a.lock().expect("lock").writes, vec![(0xfff, vec![9])]);
    }

    #[test]
    fn overlapping_or_empty_ranges_are_refused() {
        let dev = Arc::new(Mutex::new(Recorder::default()));
        let mut bus = MmioBus::new();
        bus.insert(0x1000, 0x1000, dev.clone()).expect("first");
        assert!(bus.insert(0x1800, 0x1000, dev.clone()).is_err());
        assert!(bus.insert(0x0800, 0x1000, dev.clone()).is_err());
        assert!(bus.insert(0x0, 0x1000, dev.clone()).is_ok());
        assert!(bus.insert(0x5000, 0, dev.clone()).is_err());
        assert!(bus.insert(u64::MAX, 2, dev).is_err());
    }
}
