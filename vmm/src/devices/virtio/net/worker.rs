//! The virtio-net worker thread: waits on epoll (queue notifications, a stop event and the
//! TAP descriptor, edge-triggered), sends every transmit chain's frame to the TAP and
//! fills receive chains with the TAP's frames while the guest has buffers, then raises the
//! interrupt when it used any.

use std::io;
use std::os::fd::AsRawFd;

use virtio_queue::{Queue, QueueT};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::EventFd;

use super::frame;
use super::{Tap, RXQ, TOKEN_KILL, TOKEN_QUEUE, TOKEN_TAP, TXQ};
use crate::devices::virtio::chain::ChainBuffers;
use crate::devices::virtio::{GuestMemory, Interrupt};
use crate::warn_ratelimited;

/// Largest frame read from the TAP (its MTU may exceed the guest's; such frames are
/// dropped when no receive buffer can hold them).
const TAP_READ_LEN: usize = 65_536;

/// Everything the worker thread owns.
pub(super) struct Worker {
    mem: GuestMemory,
    queues: Vec<Queue>,
    interrupt: Interrupt,
    tap: Tap,
    queue_evt: EventFd,
    kill_evt: EventFd,
    /// A frame read from the TAP while the guest had no receive buffer.
    pending: Option<Vec<u8>>,
    /// The TAP may have frames: set by its (edge-triggered) event, cleared on WouldBlock.
    tap_readable: bool,
    read_buf: Vec<u8>,
}

impl Worker {
    pub fn new(
        mem: GuestMemory,
        queues: Vec<Queue>,
        interrupt: Interrupt,
        tap: Tap,
        queue_evt: EventFd,
        kill_evt: EventFd,
    ) -> Worker {
        Worker {
            mem,
            queues,
            interrupt,
            tap,
            queue_evt,
            kill_evt,
            pending: None,
            // Frames may have queued before activation; the first pass looks.
            tap_readable: true,
            read_buf: vec![0u8; TAP_READ_LEN],
        }
    }

    /// Runs until the kill event fires or epoll itself fails; returns the queues, which
    /// then stand where the guest will find them.
    pub fn run(mut self) -> Vec<Queue> {
        match self.register() {
            Ok(epoll) => self.serve(&epoll),
            Err(e) => {
                tracing::error!(error = %e, "virtio-net: cannot set up the worker's epoll set")
            }
        }
        self.queues
    }

    fn register(&self) -> io::Result<Epoll> {
        let ep = Epoll::new()?;
        ep.ctl(
            ControlOperation::Add,
            self.queue_evt.as_raw_fd(),
            EpollEvent::new(EventSet::IN, TOKEN_QUEUE),
        )?;
        ep.ctl(
            ControlOperation::Add,
            self.kill_evt.as_raw_fd(),
            EpollEvent::new(EventSet::IN, TOKEN_KILL),
        )?;
        ep.ctl(
            ControlOperation::Add,
            self.tap.as_raw_fd(),
            EpollEvent::new(EventSet::IN | EventSet::EDGE_TRIGGERED, TOKEN_TAP),
        )?;
        Ok(ep)
    }

    fn serve(&mut self, epoll: &Epoll) {
        let mut events = vec![EpollEvent::default(); 8];
        self.step();
        loop {
            let n = match epoll.wait(-1, &mut events) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::error!(error = %e, "virtio-net: epoll_wait failed; worker stops");
                    return;
                }
            };
            for ev in &events[..n] {
                match ev.data() {
                    TOKEN_KILL => return,
                    TOKEN_QUEUE => {
                        let _ = self.queue_evt.read();
                    }
                    TOKEN_TAP => self.tap_readable = true,
                    _ => {}
                }
            }
            self.step();
        }
    }

    /// One round of queue work: all transmit chains, then as many frames as there are
    /// receive buffers.
    pub fn step(&mut self) {
        let mut used = self.process_tx();
        used |= self.process_rx();
        if used {
            if let Err(e) = self.interrupt.signal_used_queue() {
                warn_ratelimited!(error = %e, "virtio-net: cannot raise the interrupt");
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
                .map_err(frame::FrameError::from)
                .and_then(|buf| frame::read_tx(&buf, &self.mem));
            match parsed {
                Ok(f) => {
                    if let Err(e) = self.tap.write_frame(&f) {
                        // A full TAP queue (WouldBlock) drops the frame, as a busy link does.
                        warn_ratelimited!(error = %e, "virtio-net: frame to the TAP dropped");
                    }
                }
                Err(e) => warn_ratelimited!(error = %e, "virtio-net: malformed tx chain dropped"),
            }
            if let Err(e) = queue.add_used(&self.mem, head, 0) {
                warn_ratelimited!(error = %e, "virtio-net: cannot update the tx used ring");
                break;
            }
            used = true;
        }
        used
    }

    /// The next frame for the guest: the one held back, else one read from the TAP.
    fn next_frame(&mut self) -> Option<Vec<u8>> {
        if let Some(f) = self.pending.take() {
            return Some(f);
        }
        if !self.tap_readable {
            return None;
        }
        match self.tap.read_frame(&mut self.read_buf) {
            Ok(n) => Some(self.read_buf[..n].to_vec()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.tap_readable = false;
                None
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Some(Vec::new()),
            Err(e) => {
                warn_ratelimited!(error = %e, "virtio-net: reading the TAP failed");
                self.tap_readable = false;
                None
            }
        }
    }

    fn process_rx(&mut self) -> bool {
        let mut used = false;
        while let Some(f) = self.next_frame() {
            if f.is_empty() {
                continue;
            }
            let Some(queue) = self.queues.get_mut(RXQ) else {
                return used;
            };
            let Some(chain) = queue.pop_descriptor_chain(&self.mem) else {
                // No buffer: keep the frame until the guest adds one (it notifies).
                self.pending = Some(f);
                break;
            };
            let head = chain.head_index();
            let len = match ChainBuffers::parse(chain, &self.mem)
                .map_err(frame::FrameError::from)
                .and_then(|buf| frame::write_rx(&buf, &self.mem, &f))
            {
                Ok(len) => len,
                Err(e) => {
                    warn_ratelimited!(error = %e, "virtio-net: frame for the guest dropped");
                    0
                }
            };
            if let Err(e) = queue.add_used(&self.mem, head, len) {
                warn_ratelimited!(error = %e, "virtio-net: cannot update the rx used ring");
                break;
            }
            used = true;
        }
        used
    }
}
