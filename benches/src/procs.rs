//! Runs a process to completion and measures it: wall time from spawn to reap and CPU
//! time from the kernel's rusage (wait4), with a deadline; peak resident memory through
//! GNU time (see [`peak_rss_kib`]).

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Errors running a measured process.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// The program could not be started
    #[error("cannot start {prog}: {source}")]
    Spawn {
        prog: String,
        source: std::io::Error,
    },
    /// wait4 failed
    #[error("wait4 on {prog} failed: {source}")]
    Wait {
        prog: String,
        source: std::io::Error,
    },
    /// The program ran past its deadline and was killed
    #[error("{prog} did not finish within {deadline:?} and was killed")]
    Timeout { prog: String, deadline: Duration },
    /// The program failed
    #[error("{prog} exited with status {status}: {stderr}")]
    Failed {
        prog: String,
        status: i32,
        stderr: String,
    },
}

/// What one run of a process cost.
#[derive(Debug, Clone)]
pub struct ProcRun {
    /// Exit code, or 128 + signal number.
    pub status: i32,
    pub wall: Duration,
    /// User + system CPU time.
    pub cpu: Duration,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

fn tv(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
}

/// Runs `cmd` (stdin null, stdout and stderr captured: keep them small), reaps it with
/// wait4 and returns its costs. Killed after `deadline`.
pub fn run(cmd: &mut Command, deadline: Duration) -> Result<ProcRun, ProcError> {
    let prog = cmd.get_program().to_string_lossy().into_owned();
    let t0 = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ProcError::Spawn {
            prog: prog.clone(),
            source,
        })?;
    let pid = child.id() as libc::pid_t;
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(deadline).is_err() {
            // SAFETY: kill(2) with a pid we spawned and have not reaped yet (the reaper
            // signals `done` before reaping returns to the caller); no memory is touched.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            return true;
        }
        false
    });
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = loop {
        // SAFETY: `status` and `usage` are valid, writable and live for the call; `pid`
        // is our own unreaped child.
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if rc == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        break rc;
    };
    let wall = t0.elapsed();
    let _ = done_tx.send(());
    let killed = watchdog.join().unwrap_or(false);
    if rc == -1 {
        return Err(ProcError::Wait {
            prog,
            source: std::io::Error::last_os_error(),
        });
    }
    if killed {
        return Err(ProcError::Timeout { prog, deadline });
    }
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_end(&mut stdout);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_end(&mut stderr);
    }
    let status = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    Ok(ProcRun {
        status,
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        stdout,
        stderr,
    })
}

/// Like [`run`], but a non-zero exit status is an error.
pub fn run_ok(cmd: &mut Command, deadline: Duration) -> Result<ProcRun, ProcError> {
    let prog = cmd.get_program().to_string_lossy().into_owned();
    let r = run(cmd, deadline)?;
    if r.status != 0 {
        return Err(ProcError::Failed {
            prog,
            status: r.status,
            stderr: String::from_utf8_lossy(&r.stderr).trim().to_string(),
        });
    }
    Ok(r)
}

/// GNU time, which reports a child's peak RSS without the inflation wait4 shows for our
/// own children (a vfork'd child's ru_maxrss starts at the parent's resident size).
pub const GNU_TIME: &str = "/usr/bin/time";

/// Peak resident memory (KiB) of `prog args`, measured by GNU time; `None` when
/// /usr/bin/time is not installed. Any exit status is accepted.
pub fn peak_rss_kib(
    prog: &std::path::Path,
    args: &[std::ffi::OsString],
    deadline: Duration,
) -> Result<Option<u64>, ProcError> {
    if !std::path::Path::new(GNU_TIME).is_file() {
        return Ok(None);
    }
    let r = run(
        Command::new(GNU_TIME)
            .args(["-f", "FLINT_BENCH_MAXRSS_KIB %M"])
            .arg(prog)
            .args(args),
        deadline,
    )?;
    let stderr = String::from_utf8_lossy(&r.stderr);
    Ok(stderr
        .lines()
        .find_map(|l| l.strip_prefix("FLINT_BENCH_MAXRSS_KIB "))
        .and_then(|v| v.trim().parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_short_process() {
        let r = run_ok(
            Command::new("sh").args(["-c", "echo hi"]),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(r.stdout, b"hi\n");
        assert!(r.wall > Duration::ZERO);
    }

    #[test]
    fn reports_exit_status_and_failure() {
        let r = run(
            Command::new("sh").args(["-c", "exit 3"]),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(r.status, 3);
        let e = run_ok(
            Command::new("sh").args(["-c", "echo no >&2; exit 4"]),
            Duration::from_secs(5),
        );
        assert!(
            matches!(e, Err(ProcError::Failed { status: 4, .. })),
            "{e:?}"
        );
    }

    #[test]
    fn gnu_time_sees_a_small_child_as_small() {
        let kib = peak_rss_kib(
            std::path::Path::new("/bin/true"),
            &[],
            Duration::from_secs(5),
        )
        .unwrap()
        .expect("/usr/bin/time is installed on Flint's hosts (Debian package time)");
        assert!(kib > 0 && kib < 8 * 1024, "true used {kib} KiB");
    }

    #[test]
    fn kills_a_process_past_its_deadline() {
        let t0 = Instant::now();
        let e = run(Command::new("sleep").arg("10"), Duration::from_millis(200));
        assert!(matches!(e, Err(ProcError::Timeout { .. })), "{e:?}");
        assert!(t0.elapsed() < Duration::from_secs(5));
    }
}
