//! Starts the function's runtime: fork + execve with everything prepared before the
//! fork (the child only makes async-signal-safe system calls). The child gets its own
//! session, stdin from /dev/null, stdout+stderr into the log pipe, oom_score_adj 0,
//! an empty capability bounding set, no supplementary groups, uid 993 / gid 990,
//! PR_SET_NO_NEW_PRIVS, cwd /var/task, no other inherited descriptors and, when given,
//! the seccomp filters ([`crate::seccomp`]) installed last before exec. Exec failures
//! come back through a close-on-exec pipe.

use std::ffi::{c_char, CString};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// Lambda's runtime user (sbx_user1051).
pub const RUNTIME_UID: u32 = 993;
/// Lambda's runtime group.
pub const RUNTIME_GID: u32 = 990;

/// Errors starting the runtime.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The bootstrap command is empty
    #[error("the bootstrap command is empty")]
    NoCommand,
    /// An argument, variable or path contains a NUL byte
    #[error("{0:?} contains a NUL byte")]
    Nul(String),
    /// A system call before the fork failed
    #[error("{0}: {1}")]
    Sys(&'static str, nix::Error),
}

/// The child could not become the runtime.
#[derive(Debug, thiserror::Error)]
#[error("{stage} {path:?} failed: {errno}")]
pub struct ExecError {
    /// The step that failed (for example "exec").
    pub stage: &'static str,
    /// The program path.
    pub path: String,
    /// The error number.
    pub errno: nix::Error,
}

const STAGES: [&str; 8] = [
    "setsid",
    "dup2",
    "setgroups",
    "setgid",
    "setuid",
    "chdir",
    "exec",
    "seccomp",
];

/// Everything the child needs, allocated before the fork.
pub struct Prepared {
    path: String,
    argv: Vec<CString>,
    env: Vec<CString>,
    cwd: CString,
    uid: u32,
    gid: u32,
    seccomp: Option<crate::seccomp::Filters>,
}

impl Prepared {
    /// Installs `filters` in the child just before exec.
    pub fn with_seccomp(mut self, filters: crate::seccomp::Filters) -> Self {
        self.seccomp = Some(filters);
        self
    }

    /// Prepares `argv` (argv[0] is the program path, relative paths resolve against
    /// `cwd`) with environment `env`, to run as `uid`/`gid`.
    pub fn new(
        argv: &[String],
        env: &[(String, String)],
        cwd: &Path,
        uid: u32,
        gid: u32,
    ) -> Result<Self, SpawnError> {
        let path = argv.first().ok_or(SpawnError::NoCommand)?.clone();
        if path.is_empty() {
            return Err(SpawnError::NoCommand);
        }
        let cstr = |s: &str| CString::new(s).map_err(|_| SpawnError::Nul(s.to_string()));
        Ok(Prepared {
            argv: argv.iter().map(|a| cstr(a)).collect::<Result<_, _>>()?,
            env: env
                .iter()
                .map(|(k, v)| cstr(&format!("{k}={v}")))
                .collect::<Result<_, _>>()?,
            cwd: cstr(&cwd.to_string_lossy())?,
            path,
            uid,
            gid,
            seccomp: None,
        })
    }
}

/// A forked child that has not yet reported whether its exec worked.
pub struct Forked {
    /// The child's pid (also its session and process group id).
    pub pid: i32,
    path: String,
    status: OwnedFd,
}

impl Forked {
    /// Blocks until the child has exec'd (Ok) or failed before/at exec (Err).
    pub fn exec_result(self) -> Result<(), ExecError> {
        let mut buf = [0u8; 8];
        let n = loop {
            match nix::unistd::read(self.status.as_raw_fd(), &mut buf) {
                Err(nix::Error::EINTR) => continue,
                Ok(n) => break n,
                Err(_) => break 0,
            }
        };
        if n < 8 {
            return Ok(());
        }
        let stage = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        let errno = i32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]);
        Err(ExecError {
            stage: STAGES.get(stage).copied().unwrap_or("start"),
            path: self.path,
            errno: nix::Error::from_raw(errno),
        })
    }
}

/// Forks and execs the runtime with stdout/stderr on `output`.
pub fn spawn(p: &Prepared, output: BorrowedFd<'_>) -> Result<Forked, SpawnError> {
    let mut argv: Vec<*const c_char> = p.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const c_char> = p.env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    let (status_r, status_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| SpawnError::Sys("pipe2", e))?;
    let devnull = nix::fcntl::open(
        "/dev/null",
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| SpawnError::Sys("open /dev/null", e))?;
    // SAFETY: `devnull` was just returned by open() and is owned by nobody else.
    let devnull = unsafe { OwnedFd::from_raw_fd(devnull) };
    let fds = ChildFds {
        devnull: devnull.as_raw_fd(),
        output: output.as_raw_fd(),
        status: status_w.as_raw_fd(),
    };
    // SAFETY: fork() in a multi-threaded process: the child only runs `child_main`,
    // which makes async-signal-safe system calls on memory prepared above (no
    // allocation, no locks) and ends in execve or _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(SpawnError::Sys("fork", nix::Error::last()));
    }
    if pid == 0 {
        // SAFETY: we are the freshly forked child; see above.
        unsafe { child_main(p, &argv, &envp, &fds) }
    }
    drop(status_w);
    Ok(Forked {
        pid,
        path: p.path.clone(),
        status: status_r,
    })
}

struct ChildFds {
    devnull: RawFd,
    output: RawFd,
    status: RawFd,
}

/// The child between fork and exec.
///
/// # Safety
/// Must only be called in the child right after fork(); `argv`/`envp` are
/// NULL-terminated arrays of pointers into `p`.
unsafe fn child_main(
    p: &Prepared,
    argv: &[*const c_char],
    envp: &[*const c_char],
    fds: &ChildFds,
) -> ! {
    let fail = |stage: u32| -> ! {
        // SAFETY: errno location, write and _exit are async-signal-safe.
        unsafe {
            let errno = *libc::__errno_location();
            let mut buf = [0u8; 8];
            buf[..4].copy_from_slice(&stage.to_ne_bytes());
            buf[4..].copy_from_slice(&errno.to_ne_bytes());
            libc::write(fds.status, buf.as_ptr().cast(), buf.len());
            libc::_exit(127)
        }
    };
    // SAFETY: plain system calls on valid, pre-built arguments (see the function docs).
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        for sig in 1..32 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        if libc::setsid() < 0 {
            fail(0);
        }
        if libc::dup2(fds.devnull, 0) < 0
            || libc::dup2(fds.output, 1) < 0
            || libc::dup2(fds.output, 2) < 0
        {
            fail(1);
        }
        // init runs unkillable by the OOM killer; the runtime must not.
        let oom = libc::open(c"/proc/self/oom_score_adj".as_ptr(), libc::O_WRONLY);
        if oom >= 0 {
            libc::write(oom, b"0".as_ptr().cast(), 1);
            libc::close(oom);
        }
        for cap in 0..64 {
            libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0);
        }
        if libc::setgroups(0, std::ptr::null()) < 0 {
            fail(2);
        }
        if libc::setgid(p.gid) < 0 {
            fail(3);
        }
        if libc::setuid(p.uid) < 0 {
            fail(4);
        }
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        if libc::chdir(p.cwd.as_ptr()) < 0 {
            fail(5);
        }
        close_other_fds();
        if let Some(filters) = &p.seccomp {
            if let Err(errno) = filters.apply() {
                *libc::__errno_location() = errno;
                fail(7);
            }
        }
        libc::execve(argv[0], argv.as_ptr(), envp.as_ptr());
        fail(6)
    }
}

/// Marks every descriptor above stderr close-on-exec (the status pipe already is).
///
/// # Safety
/// Async-signal-safe; only for the child after fork.
unsafe fn close_other_fds() {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range with CLOEXEC only changes descriptor flags.
    let r = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    if r != 0 {
        for fd in 3..4096 {
            // SAFETY: F_SETFD on a possibly-unused descriptor fails harmlessly.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn empty_command_and_nul_bytes_are_rejected() {
        let cwd = Path::new("/");
        assert!(matches!(
            Prepared::new(&[], &[], cwd, 0, 0),
            Err(SpawnError::NoCommand)
        ));
        assert!(matches!(
            Prepared::new(&[String::new()], &[], cwd, 0, 0),
            Err(SpawnError::NoCommand)
        ));
        assert!(matches!(
            Prepared::new(&["/bin/a\0b".into()], &[], cwd, 0, 0),
            Err(SpawnError::Nul(_))
        ));
    }

    #[test]
    fn exec_failure_names_the_path() {
        let me_uid = nix::unistd::getuid().as_raw();
        let me_gid = nix::unistd::getgid().as_raw();
        let p = Prepared::new(
            &["/nonexistent/bootstrap".into()],
            &[],
            Path::new("/"),
            me_uid,
            me_gid,
        )
        .unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        let forked = spawn(&p, w.as_fd()).unwrap();
        let pid = forked.pid;
        let err = forked.exec_result().unwrap_err();
        assert_eq!(err.stage, "exec");
        assert_eq!(err.errno, nix::Error::ENOENT);
        assert!(err.to_string().contains("/nonexistent/bootstrap"));
        let st = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
        assert_eq!(
            st,
            nix::sys::wait::WaitStatus::Exited(nix::unistd::Pid::from_raw(pid), 127)
        );
        drop(r);
    }
}
