//! The virtio-net device: features, configuration space (MAC address and link status),
//! and the lifecycle of the worker thread that serves the queues.

use std::thread::JoinHandle;

use virtio_bindings::virtio_net as bindings;
use virtio_queue::Queue;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::worker::Worker;
use super::{MacAddr, NetError, Tap, QUEUE_SIZE};
use crate::devices::virtio::{
    feature, read_config_bytes, ActivateError, GuestMemory, Interrupt, QueuePosition, VirtioDevice,
    VIRTIO_F_VERSION_1,
};
use crate::warn_ratelimited;

/// Configuration space length: mac (6), status (2).
const CONFIG_LEN: usize = 8;

struct Running {
    thread: JoinHandle<Vec<Queue>>,
    queue_evt: EventFd,
    kill_evt: EventFd,
}

/// A virtio-net device bridged to a host TAP interface.
pub struct Net {
    tap: Tap,
    mac: MacAddr,
    config: [u8; CONFIG_LEN],
    acked_features: u64,
    running: Option<Running>,
}

impl Net {
    /// A device on the TAP interface `tap_name` whose guest address is `mac` (derived
    /// from the interface name when `None`).
    pub fn new(tap_name: &str, mac: Option<MacAddr>) -> Result<Net, NetError> {
        let tap = Tap::open(tap_name)?;
        let mac = mac.unwrap_or_else(|| MacAddr::derived(tap_name));
        let mut config = [0u8; CONFIG_LEN];
        config[0..6].copy_from_slice(&mac.0);
        // The link is up for as long as the device exists: the TAP side is the host's.
        config[6..8].copy_from_slice(&(bindings::VIRTIO_NET_S_LINK_UP as u16).to_le_bytes());
        Ok(Net {
            tap,
            mac,
            config,
            acked_features: 0,
            running: None,
        })
    }

    /// The guest's MAC address.
    pub fn mac(&self) -> MacAddr {
        self.mac
    }

    /// The TAP interface's name.
    pub fn tap_name(&self) -> &str {
        self.tap.name()
    }

    /// Whether the worker thread is running.
    pub fn is_active(&self) -> bool {
        self.running.is_some()
    }

    /// Stops the worker; returns its queues (None if it was not running or panicked).
    fn stop(&mut self) -> Option<Vec<Queue>> {
        let r = self.running.take()?;
        let _ = r.kill_evt.write(1);
        match r.thread.join() {
            Ok(queues) => Some(queues),
            Err(_) => {
                tracing::error!("virtio-net: worker thread panicked");
                None
            }
        }
    }

    fn start(
        &mut self,
        mem: GuestMemory,
        queues: Vec<Queue>,
        interrupt: Interrupt,
    ) -> Result<(), ActivateError> {
        if self.running.is_some() {
            return Err(ActivateError::AlreadyActive);
        }
        if queues.len() != 2 {
            return Err(ActivateError::QueueCount {
                want: 2,
                got: queues.len(),
            });
        }
        let setup = || -> std::io::Result<(Worker, EventFd, EventFd)> {
            let queue_evt = EventFd::new(EFD_NONBLOCK)?;
            let kill_evt = EventFd::new(EFD_NONBLOCK)?;
            let worker = Worker::new(
                mem,
                queues,
                interrupt,
                self.tap.try_clone()?,
                queue_evt.try_clone()?,
                kill_evt.try_clone()?,
            );
            Ok((worker, queue_evt, kill_evt))
        };
        let (worker, queue_evt, kill_evt) = setup().map_err(ActivateError::Worker)?;
        let thread = std::thread::Builder::new()
            .name(format!("net-{}", self.tap.name()))
            .spawn(move || worker.run())
            .map_err(ActivateError::Worker)?;
        self.running = Some(Running {
            thread,
            queue_evt,
            kill_evt,
        });
        Ok(())
    }
}

impl VirtioDevice for Net {
    fn device_type(&self) -> u32 {
        virtio_bindings::virtio_ids::VIRTIO_ID_NET
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE; 2]
    }

    fn avail_features(&self) -> u64 {
        feature(VIRTIO_F_VERSION_1)
            | feature(bindings::VIRTIO_NET_F_MAC)
            | feature(bindings::VIRTIO_NET_F_STATUS)
    }

    fn set_acked_features(&mut self, acked: u64) {
        self.acked_features = acked & self.avail_features();
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.config, offset, data);
    }

    fn write_config(&mut self, offset: u64, _data: &[u8]) {
        // The MAC is writable only with VIRTIO_NET_F_CTRL_MAC_ADDR, which is not offered.
        warn_ratelimited!(
            offset,
            "virtio-net: guest write to read-only config space ignored"
        );
    }

    fn activate(
        &mut self,
        mem: GuestMemory,
        queues: Vec<Queue>,
        interrupt: Interrupt,
    ) -> Result<(), ActivateError> {
        self.start(mem, queues, interrupt)
    }

    fn queue_notify(&mut self, index: u32) {
        match &self.running {
            Some(r) if index < 2 => {
                if let Err(e) = r.queue_evt.write(1) {
                    warn_ratelimited!(error = %e, "virtio-net: cannot wake the worker");
                }
            }
            _ => warn_ratelimited!(
                index,
                "virtio-net: notify for a missing queue or inactive device"
            ),
        }
    }

    fn reset(&mut self) {
        self.stop();
        self.acked_features = 0;
    }

    fn acked_features(&self) -> u64 {
        self.acked_features
    }

    fn quiesce(&mut self) -> Vec<QueuePosition> {
        // A frame read from the TAP but not yet given to the guest is dropped, as a wire
        // may drop it; the guest's stack retransmits.
        self.stop()
            .map(|queues| queues.iter().map(QueuePosition::of).collect())
            .unwrap_or_default()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.stop();
    }
}
