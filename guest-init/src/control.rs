//! The common init loop, the same in the namespace sandbox and the microVM: say Hello,
//! wait for Configure, prepare /tmp and /var/task, start the Runtime API and the
//! runtime, then feed host invocations to the runtime until Shutdown or end of stream.

use crate::fd_stream::FdStream;
use crate::host_calls::HostCalls;
use crate::host_link::HostLink;
use crate::state::{error_doc, report_init_error, Shared};
use crate::{
    aws_local, env, host_mount, layers, logs, mounts, process, reaper, resume, runtime_api,
    seccomp, unpack,
};
use flint_proto::frame::{read_frame, FrameError};
use flint_proto::init::{guest_message::Msg, host_message, Configure, Hello, HostMessage, Prepare};
use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// flint-init's version, reported in Hello.
pub const INIT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Error type when the sandbox itself could not be prepared.
pub const SETUP_ERROR: &str = flint_proto::lambda::SANDBOX_SETUP_ERROR;
/// Error type for a bad code bundle.
pub const ZIP_ERROR: &str = flint_proto::lambda::INVALID_ZIP;
/// Error type when the bootstrap cannot be executed.
pub const ENTRYPOINT_ERROR: &str = flint_proto::lambda::INVALID_ENTRYPOINT;

/// Set (to "1") in the environment of a runtime started before its function is known.
pub const PRESTART_VAR: &str = "FLINT_PRESTART";

/// Process group of the runtime (0 when none), readable from signal handlers.
pub static RUNTIME_PGID: AtomicI32 = AtomicI32::new(0);

/// Where things live; the defaults are the Lambda layout.
#[derive(Debug, Clone)]
pub struct Paths {
    /// Writable scratch space.
    pub tmp: PathBuf,
    /// The function's code.
    pub task: PathBuf,
    /// The function's layers (read-only, namespace sandbox).
    pub opt: PathBuf,
    /// Runtime API address.
    pub api: SocketAddr,
    /// A detached disk-backed file system flintd made for /tmp (namespace sandbox),
    /// attached instead of a tmpfs; owned by the process, used once.
    pub tmp_fd: Option<RawFd>,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            tmp: PathBuf::from("/tmp"),
            task: PathBuf::from("/var/task"),
            opt: PathBuf::from("/opt"),
            api: SocketAddr::from(([127, 0, 0, 1], 9001)),
            tmp_fd: None,
        }
    }
}

/// Errors that end the loop before it started.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Duplicating the host stream for writing failed
    #[error("duplicating the host stream: {0}")]
    Dup(std::io::Error),
    /// Starting the reaper thread failed
    #[error("starting the reaper: {0}")]
    Reaper(std::io::Error),
    /// Sending Hello failed
    #[error("sending Hello: {0}")]
    Hello(FrameError),
}

/// Opens the host stream again after the host reset it (a microVM restored from a
/// snapshot: the VMM resets every vsock connection). `None` where a reset is final.
pub type Reconnect<'a> = Option<&'a dyn Fn() -> Result<File, String>>;

/// True for the read errors a reset connection gives (ECONNRESET, ENOTCONN).
pub fn is_reset(e: &FrameError) -> bool {
    matches!(e, FrameError::Io(io) if matches!(
        io.kind(),
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::NotConnected
    ))
}

fn hello(started: Instant) -> Msg {
    Msg::Hello(Hello {
        protocol_version: flint_proto::init::PROTOCOL_VERSION,
        init_version: INIT_VERSION.into(),
        boot_ns: started.elapsed().as_nanos() as u64,
    })
}

/// Runs the loop on `stream`; returns the process exit code (0 on Shutdown or end of
/// stream, 1 on a malformed frame or a broken stream). With `reconnect`, a reset
/// stream is opened again and Hello said again, the state kept (a restored microVM).
pub fn run(
    stream: File,
    started: Instant,
    paths: &Paths,
    reconnect: Reconnect<'_>,
) -> Result<i32, ControlError> {
    let writer = stream.try_clone().map_err(ControlError::Dup)?;
    let mut stream = FdStream::new(stream);
    let shared = Arc::new(Shared::new(HostLink::new(Box::new(writer))));
    reaper::spawn(shared.clone()).map_err(ControlError::Reaper)?;
    shared
        .link
        .send(hello(started))
        .map_err(ControlError::Hello)?;
    let calls = Arc::new(HostCalls::default());
    let mut prepared: Option<Prepare> = None;
    let mut configured = false;
    let mut opt = layers::Opt::new(paths.opt.clone());
    let code = loop {
        let msg: HostMessage = match read_frame(&mut stream) {
            Ok(m) => m,
            Err(FrameError::Closed) => break 0,
            Err(e) if is_reset(&e) && reconnect.is_some() => {
                match reopen(reconnect, &shared, started) {
                    Ok(again) => {
                        stream = again;
                        continue;
                    }
                    Err(e) => {
                        eprintln!("flint-init: the host reset the stream; reconnecting: {e}");
                        break 1;
                    }
                }
            }
            Err(e) => {
                eprintln!("flint-init: host stream: {e}");
                break 1;
            }
        };
        match msg.msg {
            Some(host_message::Msg::Prepare(p)) if prepared.is_none() && !configured => {
                warm_up(&p, &shared, paths);
                prepared = Some(p);
            }
            Some(host_message::Msg::Prepare(_)) => {
                eprintln!("flint-init: ignoring a Prepare after Prepare or Configure");
            }
            Some(host_message::Msg::Layer(layer)) if !configured => opt.add(layer),
            Some(host_message::Msg::Layer(_)) => {
                eprintln!("flint-init: ignoring a Layer after Configure");
            }
            Some(host_message::Msg::Configure(cfg)) if !configured => {
                configured = true;
                // The descriptors come in order: the code's, then the layers'.
                let code_mount = if cfg.code_mount {
                    stream.take_fd()
                } else {
                    None
                };
                let opt_mount = if cfg.opt_mount {
                    stream.take_fd()
                } else {
                    None
                };
                let tmp_mount = if cfg.tmp_mount {
                    stream.take_fd()
                } else {
                    None
                };
                let mounts = HostMounts {
                    code: code_mount,
                    opt: opt_mount,
                    tmp: tmp_mount,
                    layers: &mut opt,
                };
                configure(cfg, mounts, prepared.as_ref(), &shared, &calls, paths);
            }
            Some(host_message::Msg::Configure(_)) => {
                eprintln!("flint-init: ignoring a second Configure");
            }
            Some(host_message::Msg::Invoke(inv)) => shared.push_invoke(inv),
            Some(host_message::Msg::Reply(r)) => calls.deliver(r),
            Some(host_message::Msg::Shutdown(_)) => break 0,
            Some(host_message::Msg::Resume(r)) => {
                // Siblings restored from one snapshot must not share random state:
                // power off rather than serve with it.
                if let Err(e) = resume::apply(&r, &mut resume::Live) {
                    eprintln!("flint-init: {e}");
                    break 1;
                }
            }
            None => eprintln!("flint-init: ignoring an empty or unknown host message"),
        }
    };
    shared.begin_shutdown();
    kill_runtime();
    Ok(code)
}

/// Opens the host stream again, points the shared link at it and says Hello again.
fn reopen(reconnect: Reconnect<'_>, shared: &Shared, started: Instant) -> Result<FdStream, String> {
    let f = reconnect.ok_or("no way to reconnect")?()?;
    let w = f.try_clone().map_err(|e| e.to_string())?;
    shared.link.replace(Box::new(w));
    shared
        .link
        .send(hello(started))
        .map_err(|e| e.to_string())?;
    Ok(FdStream::new(f))
}

/// SIGKILLs the runtime's whole process group, if one is running.
pub fn kill_runtime() {
    let pgid = RUNTIME_PGID.swap(0, Ordering::SeqCst);
    if pgid > 0 {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pgid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Handles Prepare (warm pool): sandbox set-up, and the runtime when it can start
/// before its function is known. Failures are reported as InitError.
fn warm_up(p: &Prepare, shared: &Arc<Shared>, paths: &Paths) {
    shared.mark_prepared(Instant::now());
    let result = setup_sandbox(p.tmp_mb, shared, paths).and_then(|()| {
        if p.start_runtime {
            let mut vars = env::generic(&p.runtime, p.memory_mb);
            vars.push((PRESTART_VAR.to_string(), "1".to_string()));
            start_runtime(&p.bootstrap, &vars, shared, paths)
        } else {
            shared.report_prepared();
            Ok(())
        }
    });
    if let Err((error_type, message)) = result {
        shared.init_error(error_type, error_doc(error_type, &message));
    }
}

/// The read-only mounts flintd sent with Configure (namespace sandbox), and the
/// layers that came as zips before it (microVM).
struct HostMounts<'a> {
    /// The code, for /var/task.
    code: Option<OwnedFd>,
    /// The function's layers, for /opt.
    opt: Option<OwnedFd>,
    /// A /tmp of the function's size, replacing the pre-started sandbox's.
    tmp: Option<OwnedFd>,
    /// The function's layers unpacked from Layer frames, to make read-only.
    layers: &'a mut layers::Opt,
}

/// Handles Configure; every failure is reported to the host as InitError.
fn configure(
    cfg: Configure,
    mut host_mounts: HostMounts<'_>,
    prepared: Option<&Prepare>,
    shared: &Arc<Shared>,
    calls: &Arc<HostCalls>,
    paths: &Paths,
) {
    let at = Instant::now();
    if let Err((error_type, message)) = start_aws_local(&cfg, shared, calls) {
        shared.init_error(error_type, error_doc(error_type, &message));
        return;
    }
    let tmp = host_mounts.tmp.take();
    let result = match prepared {
        None => setup_sandbox(cfg.tmp_mb, shared, paths)
            .and_then(|()| replace_tmp(cfg.tmp_mount, tmp, paths))
            .and_then(|()| install_code(&cfg, host_mounts, shared, paths, at))
            .and_then(|()| start_runtime(&cfg.bootstrap, &env::compose(&cfg), shared, paths)),
        Some(p) => replace_tmp(cfg.tmp_mount, tmp, paths)
            .and_then(|()| install_code(&cfg, host_mounts, shared, paths, at))
            .and_then(|()| {
                if p.start_runtime {
                    let vars: std::collections::BTreeMap<_, _> =
                        env::compose(&cfg).into_iter().collect();
                    let doc = serde_json::json!({ "environment": vars });
                    shared.set_function_env(doc.to_string().into_bytes());
                    Ok(())
                } else {
                    start_runtime(&cfg.bootstrap, &env::compose(&cfg), shared, paths)
                }
            }),
    };
    if let Err((error_type, message)) = result {
        shared.init_error(error_type, error_doc(error_type, &message));
    }
}

type Failure = (&'static str, String);

/// Starts the loopback credentials endpoint and Lambda API proxy for a function with
/// an execution role.
fn start_aws_local(
    cfg: &Configure,
    shared: &Arc<Shared>,
    calls: &Arc<HostCalls>,
) -> Result<(), Failure> {
    if cfg.credentials.is_none() {
        return Ok(());
    }
    let listener = TcpListener::bind(env::LOCAL_API).map_err(|e| {
        (
            SETUP_ERROR,
            format!(
                "binding the credentials endpoint on {}: {e}",
                env::LOCAL_API
            ),
        )
    })?;
    let local = Arc::new(aws_local::Local {
        shared: shared.clone(),
        calls: calls.clone(),
        auth_token: cfg.credentials_auth_token.clone(),
    });
    aws_local::spawn(listener, local).map_err(|e| setup_failure(&e))
}

fn setup_failure(e: &dyn std::fmt::Display) -> Failure {
    (SETUP_ERROR, e.to_string())
}

/// Mounts /tmp and an empty, writable /var/task and starts the Runtime API.
fn setup_sandbox(tmp_mb: u32, shared: &Arc<Shared>, paths: &Paths) -> Result<(), Failure> {
    match paths.tmp_fd {
        Some(fd) => {
            // SAFETY: the launcher was handed this descriptor to own and passes it
            // here once; setup_sandbox runs at most once.
            let tree = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            host_mount::attach(tree, &paths.tmp).map_err(|e| setup_failure(&e))?;
        }
        None => mounts::tmp(&paths.tmp, tmp_mb).map_err(|e| setup_failure(&e))?,
    }
    mounts::task(&paths.task).map_err(|e| setup_failure(&e))?;
    let listener = TcpListener::bind(paths.api).map_err(|e| {
        (
            SETUP_ERROR,
            format!("binding the Runtime API on {}: {e}", paths.api),
        )
    })?;
    runtime_api::spawn(listener, shared.clone()).map_err(|e| setup_failure(&e))
}

/// Puts the /tmp that came with Configure in place of the one the sandbox has: a
/// pre-started sandbox's /tmp has the pool's size, not the function's. Nothing has
/// used the old one, as no function code ran in the sandbox yet. It is detached while
/// a descriptor of it is held, and that descriptor is closed on a thread of its own:
/// the old file system's teardown (ext4's unmount and its loop device's release, about
/// 1 ms) then happens there, not on the way to the function's first invocation.
fn replace_tmp(announced: bool, tmp: Option<OwnedFd>, paths: &Paths) -> Result<(), Failure> {
    let tree = match tmp {
        Some(tree) => tree,
        None if announced => {
            return Err(setup_failure(
                &"Configure announced a /tmp mount but no descriptor came with it",
            ))
        }
        None => return Ok(()),
    };
    let old = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(&paths.tmp)
        .map_err(|e| setup_failure(&format!("opening {}: {e}", paths.tmp.display())))?;
    nix::mount::umount2(&paths.tmp, nix::mount::MntFlags::MNT_DETACH).map_err(|e| {
        setup_failure(&format!(
            "detaching the pre-started sandbox's {}: {e}",
            paths.tmp.display()
        ))
    })?;
    host_mount::attach(tree, &paths.tmp).map_err(|e| setup_failure(&e))?;
    let closer = std::thread::Builder::new()
        .name("tmp-teardown".into())
        .spawn(move || drop(old));
    if let Err(e) = closer {
        eprintln!("flint-init: the old /tmp is torn down on this thread: {e}");
    }
    Ok(())
}

/// Unpacks the code into /var/task and makes it read-only; or, when flintd sent the
/// code as a read-only mount, attaches that over the (now read-only) empty /var/task,
/// and the layers' read-only mount (if any) over the image's /opt. Layers that came
/// as zips (microVM) are already in /opt: it is made read-only.
fn install_code(
    cfg: &Configure,
    host_mounts: HostMounts<'_>,
    shared: &Arc<Shared>,
    paths: &Paths,
    at: Instant,
) -> Result<(), Failure> {
    let installed = host_mounts.layers.finish(cfg.layer_count);
    let (layer_count, layers_ns) = installed.map_err(|e| {
        let error_type = if e.is_bad_zip() {
            ZIP_ERROR
        } else {
            SETUP_ERROR
        };
        (error_type, e.to_string())
    })?;
    shared.lock().layers = layer_count;
    if cfg.code_mount {
        mounts::remount_readonly(&paths.task).map_err(|e| setup_failure(&e))?;
        let tree = host_mounts.code.ok_or_else(|| {
            setup_failure(&"Configure announced a code mount but no descriptor came with it")
        })?;
        host_mount::attach(tree, &paths.task).map_err(|e| setup_failure(&e))?;
        if cfg.opt_mount {
            let opt = host_mounts.opt.ok_or_else(|| {
                setup_failure(&"Configure announced a layers mount but no descriptor came with it")
            })?;
            host_mount::attach(opt, &paths.opt).map_err(|e| setup_failure(&e))?;
        }
        shared.mark_configured(at, at.elapsed().as_nanos() as u64);
        return Ok(());
    }
    let unpacked = unpack::unpack(&cfg.code_zip, &paths.task);
    let unpack_ns = at.elapsed().as_nanos() as u64 + layers_ns;
    // Read-only even when unpacking failed half-way.
    mounts::remount_readonly(&paths.task).map_err(|e| setup_failure(&e))?;
    unpacked.map_err(|e| (ZIP_ERROR, e.to_string()))?;
    shared.mark_configured(at, unpack_ns);
    Ok(())
}

/// Starts the runtime process with `vars`, its output going to the log forwarder.
fn start_runtime(
    bootstrap: &[String],
    vars: &[(String, String)],
    shared: &Arc<Shared>,
    paths: &Paths,
) -> Result<(), Failure> {
    let prepared = process::Prepared::new(
        bootstrap,
        vars,
        &paths.task,
        process::RUNTIME_UID,
        process::RUNTIME_GID,
    )
    .map_err(|e| (ENTRYPOINT_ERROR, format!("invalid bootstrap command: {e}")))?
    .with_seccomp(seccomp::Filters::build().map_err(|e| setup_failure(&e))?);
    let (log_r, log_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| setup_failure(&format!("log pipe: {e}")))?;
    let log_pipe = logs::LogPipe::new(log_r).map_err(|e| setup_failure(&e))?;
    shared.set_log_pipe(log_pipe.clone());
    logs::spawn(log_pipe, shared.clone()).map_err(|e| setup_failure(&e))?;

    // Hold the state lock from fork until the exec result is known, so the reaper
    // sees the runtime's pid and any InvalidEntrypoint before it handles the exit.
    let mut st = shared.lock();
    let forked = process::spawn(&prepared, log_w.as_fd());
    drop(log_w);
    let forked = match forked {
        Ok(f) => f,
        Err(e) => {
            drop(st);
            return Err((ENTRYPOINT_ERROR, e.to_string()));
        }
    };
    st.runtime_pid = Some(forked.pid);
    RUNTIME_PGID.store(forked.pid, Ordering::SeqCst);
    if let Err(e) = forked.exec_result() {
        let msg = format!("Couldn't find valid bootstrap(s): {e}");
        report_init_error(
            &mut st,
            &shared.link,
            ENTRYPOINT_ERROR,
            error_doc(ENTRYPOINT_ERROR, &msg),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_reset_stream_is_opened_again() {
        let io = |k| FrameError::Io(std::io::Error::from(k));
        assert!(is_reset(&io(std::io::ErrorKind::ConnectionReset)));
        assert!(is_reset(&io(std::io::ErrorKind::NotConnected)));
        assert!(!is_reset(&io(std::io::ErrorKind::BrokenPipe)));
        assert!(!is_reset(&FrameError::Closed));
        assert!(!is_reset(&FrameError::TooLarge(1)));
    }

    /// A /tmp announced by Configure but missing from the frame is an error, not the
    /// pool's /tmp kept at the wrong size; nothing announced, nothing changes.
    #[test]
    fn an_announced_tmp_without_its_descriptor_is_refused() {
        let paths = Paths {
            tmp: PathBuf::from("/nonexistent/flint-test-tmp"),
            ..Paths::default()
        };
        let (kind, message) = replace_tmp(true, None, &paths).unwrap_err();
        assert_eq!(kind, SETUP_ERROR);
        assert!(message.contains("no descriptor came with it"), "{message}");
        assert!(replace_tmp(false, None, &paths).is_ok());
    }

    fn pair() -> (File, std::os::unix::net::UnixStream) {
        let (guest, host) = std::os::unix::net::UnixStream::pair().unwrap();
        (File::from(OwnedFd::from(guest)), host)
    }

    /// A restored microVM: the old stream reads ECONNRESET (here a Unix socket whose
    /// peer closed with a frame unread, as the VMM's reset does to a vsock one), a new
    /// stream replaces it, Hello goes out again on it, later reports follow it and the
    /// host's messages arrive on it.
    #[test]
    fn a_reset_stream_is_opened_again_and_hello_said_again() {
        use flint_proto::frame::write_frame;
        use flint_proto::init::{GuestMessage, Prepared, Shutdown};
        let (old_guest, old_host) = pair();
        let shared = Shared::new(HostLink::new(Box::new(old_guest.try_clone().unwrap())));
        shared.link.send(hello(Instant::now())).unwrap();
        drop(old_host);
        let mut old = FdStream::new(old_guest);
        let e = read_frame::<_, HostMessage>(&mut old).unwrap_err();
        assert!(is_reset(&e), "{e}");

        let (new_guest, mut new_host) = pair();
        let slot = std::sync::Mutex::new(Some(new_guest));
        let reconnect = || {
            slot.lock()
                .unwrap()
                .take()
                .ok_or_else(|| "no more streams".to_string())
        };
        let mut stream = reopen(Some(&reconnect), &shared, Instant::now()).unwrap();
        let m: GuestMessage = read_frame(&mut new_host).unwrap();
        assert!(matches!(m.msg, Some(Msg::Hello(_))), "{m:?}");
        shared
            .link
            .send(Msg::Prepared(Prepared { prepare_ns: 7 }))
            .unwrap();
        let m: GuestMessage = read_frame(&mut new_host).unwrap();
        assert!(matches!(m.msg, Some(Msg::Prepared(_))), "{m:?}");
        let shutdown = HostMessage {
            msg: Some(host_message::Msg::Shutdown(Shutdown {})),
        };
        write_frame(&mut new_host, &shutdown).unwrap();
        let m: HostMessage = read_frame(&mut stream).unwrap();
        assert_eq!(m, shutdown);

        let e = reopen(Some(&reconnect), &shared, Instant::now()).err();
        assert_eq!(e.as_deref(), Some("no more streams"));
        assert!(reopen(None, &shared, Instant::now()).is_err());
    }
}
