//! The virtio-vsock device: features, configuration space (the guest CID), and the
//! lifecycle of the worker thread that serves the queues.

use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use virtio_queue::Queue;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::muxer::Muxer;
use super::worker::Worker;
use super::{VsockError, QUEUE_SIZE};
use crate::devices::virtio::{
    feature, read_config_bytes, ActivateError, GuestMemory, Interrupt, QueuePosition, VirtioDevice,
    VIRTIO_F_VERSION_1,
};
use crate::warn_ratelimited;

struct Running {
    thread: JoinHandle<Vec<Queue>>,
    queue_evt: EventFd,
    kill_evt: EventFd,
}

/// A virtio-vsock device relaying to Unix sockets.
pub struct Vsock {
    guest_cid: u64,
    uds_path: PathBuf,
    listener: UnixListener,
    config: [u8; 8],
    acked_features: u64,
    running: Option<Running>,
}

impl Vsock {
    /// A device with context ID `guest_cid` whose host side listens on `uds_path` (a
    /// stale socket file there is replaced). Host connections made before the guest
    /// driver is up wait in the listen backlog.
    pub fn new(guest_cid: u64, uds_path: &Path) -> Result<Vsock, VsockError> {
        if guest_cid < 3 || guest_cid >= u64::from(u32::MAX) {
            return Err(VsockError::InvalidCid(guest_cid));
        }
        if std::fs::symlink_metadata(uds_path).is_ok_and(|m| m.file_type().is_socket()) {
            let _ = std::fs::remove_file(uds_path);
        }
        let listener = UnixListener::bind(uds_path).map_err(|source| VsockError::Bind {
            path: uds_path.to_owned(),
            source,
        })?;
        Ok(Vsock {
            guest_cid,
            uds_path: uds_path.to_owned(),
            listener,
            config: guest_cid.to_le_bytes(),
            acked_features: 0,
            running: None,
        })
    }

    /// The guest's context ID.
    pub fn guest_cid(&self) -> u64 {
        self.guest_cid
    }

    /// The host listener's path.
    pub fn uds_path(&self) -> &Path {
        &self.uds_path
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
                tracing::error!("vsock: worker thread panicked");
                None
            }
        }
    }

    fn start(
        &mut self,
        mem: GuestMemory,
        queues: Vec<Queue>,
        interrupt: Interrupt,
        announce_reset: bool,
    ) -> std::io::Result<()> {
        let listener = self.listener.try_clone()?;
        let muxer = Muxer::new(self.guest_cid, self.uds_path.clone(), listener)?;
        let queue_evt = EventFd::new(EFD_NONBLOCK)?;
        let kill_evt = EventFd::new(EFD_NONBLOCK)?;
        let worker = Worker {
            mem,
            queues,
            interrupt,
            muxer,
            queue_evt: queue_evt.try_clone()?,
            kill_evt: kill_evt.try_clone()?,
            announce_reset,
        };
        let thread = std::thread::Builder::new()
            .name(format!("vsock-cid{}", self.guest_cid))
            .spawn(move || worker.run())?;
        self.running = Some(Running {
            thread,
            queue_evt,
            kill_evt,
        });
        Ok(())
    }
}

impl VirtioDevice for Vsock {
    fn device_type(&self) -> u32 {
        virtio_bindings::virtio_ids::VIRTIO_ID_VSOCK
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE; 3]
    }

    fn avail_features(&self) -> u64 {
        feature(VIRTIO_F_VERSION_1)
    }

    fn set_acked_features(&mut self, acked: u64) {
        self.acked_features = acked & self.avail_features();
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.config, offset, data);
    }

    fn write_config(&mut self, offset: u64, _data: &[u8]) {
        warn_ratelimited!(
            offset,
            "vsock: guest write to read-only config space ignored"
        );
    }

    fn activate(
        &mut self,
        mem: GuestMemory,
        queues: Vec<Queue>,
        interrupt: Interrupt,
    ) -> Result<(), ActivateError> {
        if self.running.is_some() {
            return Err(ActivateError::AlreadyActive);
        }
        if queues.len() != 3 {
            return Err(ActivateError::QueueCount {
                want: 3,
                got: queues.len(),
            });
        }
        self.start(mem, queues, interrupt, false)
            .map_err(ActivateError::Worker)
    }

    fn queue_notify(&mut self, index: u32) {
        match &self.running {
            Some(r) if index < 3 => {
                if let Err(e) = r.queue_evt.write(1) {
                    warn_ratelimited!(error = %e, "vsock: cannot wake the worker");
                }
            }
            _ => warn_ratelimited!(
                index,
                "vsock: notify for a missing queue or inactive device"
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
        // Stopping the worker ends every host connection; the restored guest is told its
        // connections are gone (see `activate_restored`).
        self.stop()
            .map(|queues| queues.iter().map(QueuePosition::of).collect())
            .unwrap_or_default()
    }

    /// Like Firecracker: host connections do not survive a snapshot, so the restored
    /// device first puts a TRANSPORT_RESET event on the event queue, on which the guest
    /// driver drops every connection and re-reads the guest CID.
    fn activate_restored(
        &mut self,
        mem: GuestMemory,
        queues: Vec<Queue>,
        interrupt: Interrupt,
    ) -> Result<(), ActivateError> {
        if self.running.is_some() {
            return Err(ActivateError::AlreadyActive);
        }
        if queues.len() != 3 {
            return Err(ActivateError::QueueCount {
                want: 3,
                got: queues.len(),
            });
        }
        self.start(mem, queues, interrupt, true)
            .map_err(ActivateError::Worker)
    }
}

impl Drop for Vsock {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(&self.uds_path);
    }
}
