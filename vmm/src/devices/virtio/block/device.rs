//! The virtio-blk device: features, configuration space, and the request queue loop.

use std::path::Path;

use virtio_queue::{Queue, QueueT};

use super::disk::Disk;
use super::request::Request;
use super::{bindings, BlockError, QUEUE_SIZE, SEG_MAX};
use crate::devices::virtio::chain::ChainBuffers;
use crate::devices::virtio::{
    feature, read_config_bytes, ActivateError, GuestMemory, Interrupt, QueuePosition, VirtioDevice,
    VIRTIO_F_VERSION_1,
};
use crate::warn_ratelimited;

/// Configuration space length: capacity (8), size_max (4), seg_max (4).
const CONFIG_LEN: usize = 16;

struct Active {
    mem: GuestMemory,
    queue: Queue,
    interrupt: Interrupt,
}

/// A virtio-blk device backed by a host file.
pub struct Block {
    disk: Disk,
    avail_features: u64,
    acked_features: u64,
    config: [u8; CONFIG_LEN],
    active: Option<Active>,
}

impl Block {
    /// A block device over the file at `path`; `id` is returned by GET_ID (at most 20
    /// bytes).
    pub fn new(path: &Path, read_only: bool, id: &str) -> Result<Block, BlockError> {
        let disk = Disk::open(path, read_only, id)?;
        let mut avail_features = feature(VIRTIO_F_VERSION_1)
            | feature(bindings::VIRTIO_BLK_F_FLUSH)
            | feature(bindings::VIRTIO_BLK_F_SEG_MAX);
        if read_only {
            avail_features |= feature(bindings::VIRTIO_BLK_F_RO);
        }
        let mut config = [0u8; CONFIG_LEN];
        config[0..8].copy_from_slice(&disk.sectors().to_le_bytes());
        config[12..16].copy_from_slice(&SEG_MAX.to_le_bytes());
        Ok(Block {
            disk,
            avail_features,
            acked_features: 0,
            config,
            active: None,
        })
    }

    /// The backing disk.
    pub fn disk(&self) -> &Disk {
        &self.disk
    }

    /// Features the driver accepted.
    pub fn acked_features(&self) -> u64 {
        self.acked_features
    }

    /// Serves every available request; returns how many chains were completed.
    pub fn process_queue(&mut self) -> usize {
        let Some(active) = self.active.as_mut() else {
            return 0;
        };
        let mut done = 0;
        while let Some(chain) = active.queue.pop_descriptor_chain(&active.mem) {
            let head = chain.head_index();
            let used_len = match ChainBuffers::parse(chain, &active.mem)
                .map_err(Into::into)
                .and_then(|buf| Request::parse(&buf, &active.mem))
            {
                Ok(req) => req.execute(&self.disk, &active.mem).used_len,
                Err(e) => {
                    warn_ratelimited!(error = %e, "virtio-blk: dropping malformed request");
                    0
                }
            };
            if let Err(e) = active.queue.add_used(&active.mem, head, used_len) {
                warn_ratelimited!(error = %e, "virtio-blk: cannot update the used ring");
                break;
            }
            done += 1;
        }
        if done > 0 {
            if let Err(e) = active.interrupt.signal_used_queue() {
                warn_ratelimited!(error = %e, "virtio-blk: cannot raise the interrupt");
            }
        }
        done
    }
}

impl VirtioDevice for Block {
    fn device_type(&self) -> u32 {
        virtio_bindings::virtio_ids::VIRTIO_ID_BLOCK
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }

    fn avail_features(&self) -> u64 {
        self.avail_features
    }

    fn set_acked_features(&mut self, acked: u64) {
        self.acked_features = acked & self.avail_features;
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.config, offset, data);
    }

    fn write_config(&mut self, offset: u64, _data: &[u8]) {
        warn_ratelimited!(
            offset,
            "virtio-blk: guest write to read-only config space ignored"
        );
    }

    fn activate(
        &mut self,
        mem: GuestMemory,
        queues: Vec<Queue>,
        interrupt: Interrupt,
    ) -> Result<(), ActivateError> {
        if self.active.is_some() {
            return Err(ActivateError::AlreadyActive);
        }
        let got = queues.len();
        let Some(queue) = queues.into_iter().next().filter(|_| got == 1) else {
            return Err(ActivateError::QueueCount { want: 1, got });
        };
        self.active = Some(Active {
            mem,
            queue,
            interrupt,
        });
        Ok(())
    }

    fn queue_notify(&mut self, index: u32) {
        if index == 0 {
            self.process_queue();
        } else {
            warn_ratelimited!(index, "virtio-blk: notify for a queue that does not exist");
        }
    }

    fn reset(&mut self) {
        self.active = None;
        self.acked_features = 0;
    }

    fn acked_features(&self) -> u64 {
        self.acked_features
    }

    fn quiesce(&mut self) -> Vec<QueuePosition> {
        // Requests are served synchronously on notify: none is in flight here.
        self.active
            .as_ref()
            .map(|a| vec![QueuePosition::of(&a.queue)])
            .unwrap_or_default()
    }
}
