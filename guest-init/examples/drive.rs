//! A manual host driver for trying `flint-init sandbox` against a real runtime image:
//! starts the sandbox on a socketpair, sends Configure with a code zip, invokes once per
//! payload, prints every message with timings, then sends Shutdown.
//!
//! cargo run -p flint-init --example drive -- FLINT_INIT ROOTFS CODE.zip BOOTSTRAP [PAYLOAD]...
//! e.g. ... target/debug/flint-init /var/lib/flint/images/python3.11/rootfs fn.zip \
//!          /var/runtime/bootstrap '{"a":1}'

use flint_proto::frame::{read_frame, write_frame};
use flint_proto::init::{
    guest_message::Msg, host_message, Configure, GuestMessage, HostMessage, Invoke, Shutdown,
};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Instant;

fn send(s: &mut UnixStream, m: host_message::Msg) -> anyhow_like::Result {
    write_frame(s, &HostMessage { msg: Some(m) })?;
    Ok(())
}

/// Minimal error plumbing for an example (no anyhow in this crate).
mod anyhow_like {
    pub type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;
}

/// Prints messages until one that `stop` accepts; returns it.
fn until(s: &mut UnixStream, t0: Instant, stop: impl Fn(&Msg) -> bool) -> anyhow_like::Result<Msg> {
    loop {
        let m: GuestMessage = read_frame(s)?;
        let Some(m) = m.msg else { continue };
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        match &m {
            Msg::Log(l) => print!(
                "[{ms:8.2} ms] log {:?}: {}",
                l.request_id,
                String::from_utf8_lossy(&l.data)
            ),
            Msg::Response(r) => println!(
                "[{ms:8.2} ms] response {}: {}",
                r.request_id,
                String::from_utf8_lossy(&r.payload)
            ),
            Msg::Error(e) => println!(
                "[{ms:8.2} ms] error {} {}: {}",
                e.request_id,
                e.error_type,
                String::from_utf8_lossy(&e.payload)
            ),
            Msg::InitError(e) => println!(
                "[{ms:8.2} ms] init error {}: {}",
                e.error_type,
                String::from_utf8_lossy(&e.payload)
            ),
            other => println!("[{ms:8.2} ms] {other:?}"),
        }
        if stop(&m) {
            return Ok(m);
        }
    }
}

fn main() -> anyhow_like::Result {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [init, rootfs, zip, bootstrap, payloads @ ..] = args.as_slice() else {
        return Err("usage: drive FLINT_INIT ROOTFS CODE.zip BOOTSTRAP [PAYLOAD]...".into());
    };
    let code_zip = std::fs::read(zip)?;
    let (mut host, guest) = UnixStream::pair()?;
    let fd = guest.as_raw_fd();
    let mut cmd = Command::new(init);
    cmd.args(["sandbox", "--rootfs", rootfs, "--fd", &fd.to_string()]);
    // SAFETY: fcntl is async-signal-safe; clears close-on-exec so the child inherits fd.
    unsafe {
        cmd.pre_exec(move || match libc::fcntl(fd, libc::F_SETFD, 0) {
            r if r < 0 => Err(std::io::Error::last_os_error()),
            _ => Ok(()),
        })
    };
    let t0 = Instant::now();
    let mut child = cmd.spawn()?;
    drop(guest);
    until(&mut host, t0, |m| matches!(m, Msg::Hello(_)))?;
    send(
        &mut host,
        host_message::Msg::Configure(Configure {
            function_name: "drive".into(),
            function_version: "$LATEST".into(),
            handler: std::env::var("HANDLER").unwrap_or_else(|_| "app.handler".into()),
            memory_mb: 128,
            timeout_s: 30,
            code_zip,
            bootstrap: vec![bootstrap.clone()],
            runtime: "provided".into(),
            ..Default::default()
        }),
    )?;
    let m = until(&mut host, t0, |m| {
        matches!(m, Msg::Ready(_) | Msg::InitError(_))
    })?;
    if matches!(m, Msg::Ready(_)) {
        for (i, p) in payloads.iter().enumerate() {
            send(
                &mut host,
                host_message::Msg::Invoke(Invoke {
                    request_id: format!("req-{i}"),
                    payload: p.clone().into_bytes(),
                    deadline_ms: 4_000_000_000_000,
                    ..Default::default()
                }),
            )?;
            until(&mut host, t0, |m| {
                matches!(m, Msg::Response(_) | Msg::Error(_) | Msg::RuntimeExit(_))
            })?;
        }
    }
    send(&mut host, host_message::Msg::Shutdown(Shutdown {}))?;
    let st = child.wait()?;
    println!(
        "[{:8.2} ms] flint-init exited: {st}",
        t0.elapsed().as_secs_f64() * 1000.0
    );
    Ok(())
}
