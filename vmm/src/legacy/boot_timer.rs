//! The boot-timer device: a 4 KiB MMIO page at 0xd000_0000. The guest's init writes byte
//! 123 at offset 0 when it starts; the VMM records the time.

use std::sync::Arc;

use crate::devices::MmioDevice;
use crate::timing::BootTimes;

/// The byte that means "init started".
pub const MAGIC_INIT_STARTED: u8 = 123;

/// The boot-timer MMIO device.
pub struct BootTimer {
    times: Arc<BootTimes>,
}

impl BootTimer {
    /// A boot timer recording into `times`.
    pub fn new(times: Arc<BootTimes>) -> Self {
        BootTimer { times }
    }
}

impl MmioDevice for BootTimer {
    fn mmio_read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }

    fn mmio_write(&mut self, offset: u64, data: &[u8]) {
        if offset == 0 && data.first() == Some(&MAGIC_INIT_STARTED) {
            self.times.mark_init_started();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_magic_byte_at_offset_zero_counts() {
        let times = Arc::new(BootTimes::new(std::time::Instant::now()));
        let mut dev = BootTimer::new(times.clone());
        dev.mmio_write(4, &[MAGIC_INIT_STARTED]);
        dev.mmio_write(0, &[1]);
        assert_eq!(times.report().init_started_us, None);
        dev.mmio_write(0, &[MAGIC_INIT_STARTED, 0, 0, 0]);
        assert!(times.report().init_started_us.is_some());
    }
}
