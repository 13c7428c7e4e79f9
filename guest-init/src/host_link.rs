//! The sending half of the host stream: every thread that reports to the host
//! (control loop, Runtime API, log forwarder, reaper) writes whole frames through one
//! `HostLink`, so frames never interleave.

use flint_proto::frame::{write_frame, FrameError};
use flint_proto::init::{guest_message::Msg, GuestMessage};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// A shared, frame-atomic writer to the host.
pub struct HostLink {
    writer: Mutex<Box<dyn Write + Send>>,
    broken: AtomicBool,
}

impl HostLink {
    /// Wraps the write side of the host stream.
    pub fn new(writer: Box<dyn Write + Send>) -> Self {
        HostLink {
            writer: Mutex::new(writer),
            broken: AtomicBool::new(false),
        }
    }

    /// Sends one message. After the first failure the link is marked broken, the
    /// failure is logged once, and later sends fail fast (the control loop notices the
    /// closed stream on its read side and shuts down).
    pub fn send(&self, msg: Msg) -> Result<(), FrameError> {
        if self.broken.load(Ordering::Relaxed) {
            return Err(FrameError::Closed);
        }
        let frame = GuestMessage { msg: Some(msg) };
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let res = write_frame(&mut *w, &frame);
        if let Err(e) = &res {
            if !self.broken.swap(true, Ordering::Relaxed) {
                eprintln!("flint-init: sending to host failed: {e}");
            }
        }
        res
    }

    /// Replaces the write side after the stream was opened again (a restored microVM)
    /// and clears the broken mark.
    pub fn replace(&self, writer: Box<dyn Write + Send>) {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        *w = writer;
        self.broken.store(false, Ordering::Relaxed);
    }

    /// Sends one message; a failure is already logged by `send` and is otherwise
    /// ignored here because the read side of the stream decides when to stop.
    pub fn report(&self, msg: Msg) {
        let _ = self.send(msg);
    }
}
