//! Forwards the runtime's stdout and stderr (one pipe) to the host as Log frames,
//! tagged with the invocation in flight when the bytes arrived.

use crate::state::Shared;
use flint_proto::init::{guest_message::Msg, Log};
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::thread;

/// Largest Log frame payload.
const CHUNK: usize = 64 * 1024;

/// Starts the forwarder on the read end of the log pipe; it ends at end of file
/// (every writer closed).
pub fn spawn(read_end: OwnedFd, shared: Arc<Shared>) -> std::io::Result<()> {
    thread::Builder::new()
        .name("log-forwarder".into())
        .spawn(move || forward(File::from(read_end), &shared))?;
    Ok(())
}

fn forward(mut pipe: File, shared: &Shared) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match pipe.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("flint-init: reading runtime output: {e}");
                return;
            }
        };
        let request_id = shared.current_request_id();
        shared.link.report(Msg::Log(Log {
            request_id,
            data: buf[..n].to_vec(),
        }));
    }
}
