//! The vsock worker thread: waits on epoll (queue notifications, a stop event, the host
//! listener and every host stream), moves guest tx packets into the muxer and muxer
//! packets into guest rx buffers, and raises the interrupt when it used buffers.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Instant;

use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vmm_sys_util::epoll::{ControlOperation, EpollEvent, EventSet};
use vmm_sys_util::eventfd::EventFd;

use super::muxer::Muxer;
use super::packet::{self, PacketError};
use super::{EVQ, RXQ, TOKEN_KILL, TOKEN_QUEUE, TXQ};
use crate::devices::virtio::chain::{self, ChainBuffers};
use crate::devices::virtio::{GuestMemory, Interrupt};
use crate::warn_ratelimited;

/// Everything the worker thread owns.
pub(super) struct Worker {
    pub mem: GuestMemory,
    pub queues: Vec<Queue>,
    pub interrupt: Interrupt,
    pub muxer: Muxer,
    pub queue_evt: EventFd,
    pub kill_evt: EventFd,
    /// Put a TRANSPORT_RESET event on the event queue first (after a restore).
    pub announce_reset: bool,
}

/// virtio_vsock_event id: the transport was reset, every connection is gone.
const VIRTIO_VSOCK_EVENT_TRANSPORT_RESET: u32 = 0;

impl Worker {
    /// Runs until the kill event fires or epoll itself fails; returns the queues, which
    /// then stand where the guest will find them.
    pub fn run(mut self) -> Vec<Queue> {
        if self.announce_reset {
            self.announce_transport_reset();
        }
        self.serve();
        self.queues
    }

    /// Writes a TRANSPORT_RESET event into the first event-queue buffer.
    fn announce_transport_reset(&mut self) {
        let Some(queue) = self.queues.get_mut(EVQ) else {
            return;
        };
        let Some(chain) = queue.pop_descriptor_chain(&self.mem) else {
            warn_ratelimited!("vsock: no event buffer for the transport reset after restore");
            return;
        };
        let head = chain.head_index();
        let event = VIRTIO_VSOCK_EVENT_TRANSPORT_RESET.to_le_bytes();
        let written = ChainBuffers::parse(chain, &self.mem)
            .ok()
            .and_then(|buf| chain::write_bytes(&self.mem, &buf.writable, 0, &event).ok());
        let len = if written.is_some() {
            event.len() as u32
        } else {
            0
        };
        if let Err(e) = queue.add_used(&self.mem, head, len) {
            warn_ratelimited!(error = %e, "vsock: cannot update the event used ring");
            return;
        }
        if let Err(e) = self.interrupt.signal_used_queue() {
            warn_ratelimited!(error = %e, "vsock: cannot raise the interrupt");
        }
    }

    fn serve(&mut self) {
        if let Err(e) = self.register() {
            tracing::error!(error = %e, "vsock: cannot set up the worker's epoll set");
            return;
        }
        let mut events = vec![EpollEvent::default(); 64];
        loop {
            let timeout = self.muxer.next_deadline().map_or(-1, |d| {
                let ms = d.saturating_duration_since(Instant::now()).as_millis();
                i32::try_from(ms + 1).unwrap_or(i32::MAX)
            });
            let n = match self.muxer.epoll().wait(timeout, &mut events) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::error!(error = %e, "vsock: epoll_wait failed; worker stops");
                    return;
                }
            };
            for ev in &events[..n] {
                match ev.data() {
                    TOKEN_KILL => return,
                    TOKEN_QUEUE => {
                        let _ = self.queue_evt.read();
                    }
                    t => self.muxer.handle_event(t, ev.event_set()),
                }
            }
            self.muxer.expire(Instant::now());
            self.step();
        }
    }

    fn register(&self) -> io::Result<()> {
        let ep = self.muxer.epoll();
        ep.ctl(
            ControlOperation::Add,
            self.queue_evt.as_raw_fd(),
            EpollEvent::new(EventSet::IN, TOKEN_QUEUE),
        )?;
        ep.ctl(
            ControlOperation::Add,
            self.kill_evt.as_raw_fd(),
            EpollEvent::new(EventSet::IN, TOKEN_KILL),
        )
    }

    /// One round of queue work: all tx, then as much rx as there are buffers.
    pub fn step(&mut self) {
        let mut used = self.process_tx();
        used |= self.process_rx();
        if used {
            if let Err(e) = self.interrupt.signal_used_queue() {
                warn_ratelimited!(error = %e, "vsock: cannot raise the interrupt");
            }
        }
    }

    fn process_tx(&mut self) -> bool {
        let Some(queue) = self.queues.get_mut(TXQ) else {
            return false;
        };
        let mut used = false;
        while let Some(chain) = queue.pop_descriptor_chain(&self.mem) {
            let head = chain.head_index();
            let parsed = ChainBuffers::parse(chain, &self.mem)
                .map_err(PacketError::from)
                .and_then(|buf| packet::read_tx(&buf, &self.mem));
            match parsed {
                Ok((hdr, data)) => self.muxer.send_pkt(&hdr, &data),
                Err(PacketError::BadLength { hdr, .. }) => {
                    warn_ratelimited!(
                        len = hdr.len,
                        "vsock: tx packet with a bad length; resetting"
                    );
                    self.muxer.reset_for(&hdr);
                }
                Err(e) => warn_ratelimited!(error = %e, "vsock: malformed tx chain dropped"),
            }
            if let Err(e) = queue.add_used(&self.mem, head, 0) {
                warn_ratelimited!(error = %e, "vsock: cannot update the tx used ring");
                break;
            }
            used = true;
        }
        used
    }

    fn process_rx(&mut self) -> bool {
        let Some(queue) = self.queues.get_mut(RXQ) else {
            return false;
        };
        let mut used = false;
        while self.muxer.has_rx() {
            let Some(chain) = queue.pop_descriptor_chain(&self.mem) else {
                break;
            };
            let head = chain.head_index();
            let len = match ChainBuffers::parse(chain, &self.mem) {
                Ok(buf) => match packet::rx_capacity(&buf) {
                    Ok(cap) => match self.muxer.recv_pkt(cap) {
                        Some(pkt) => packet::write_rx(&buf, &self.mem, pkt.hdr, &pkt.data)
                            .unwrap_or_else(|e| {
                                warn_ratelimited!(error = %e, "vsock: cannot write an rx packet");
                                0
                            }),
                        None => {
                            // Nothing after all: give the buffer back to the ring.
                            queue.go_to_previous_position();
                            break;
                        }
                    },
                    Err(e) => {
                        warn_ratelimited!(error = %e, "vsock: rx buffer too small; returned empty");
                        0
                    }
                },
                Err(e) => {
                    warn_ratelimited!(error = %e, "vsock: malformed rx chain returned empty");
                    0
                }
            };
            if let Err(e) = queue.add_used(&self.mem, head, len) {
                warn_ratelimited!(error = %e, "vsock: cannot update the rx used ring");
                break;
            }
            used = true;
        }
        used
    }
}
