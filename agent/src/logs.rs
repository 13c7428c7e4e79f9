//! Function logs: each function's output, with Lambda's START/END/REPORT lines,
//! appended to `<data>/logs/<function>.log`; the tail of one invocation's log is what
//! LogType Tail returns.
//!
//! Disk use is bounded: one invocation keeps at most [`INVOCATION_LOG_MAX`] bytes of
//! output (the rest is dropped, with a marker line), and a log file that would grow
//! past its cap (`--function-log-max-bytes`) is rotated to `<function>.log.1`,
//! replacing the previous one: a function takes at most twice the cap on disk. By
//! age: [`Logs::expire`] removes the files not written for longer than
//! `--function-log-retention-days` (log_retention.rs asks at start and hourly).
//!
//! The files are written by one thread of their own (`flint-logs`), in the order the
//! appends and removals were asked for: an invocation hands its log over and returns
//! without file I/O on the async workers or a wait. [`Logs::flush`] waits until
//! everything handed over is in the files (agent shutdown, tests).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};

/// Most output one invocation keeps, in memory and on disk.
pub const INVOCATION_LOG_MAX: usize = 1024 * 1024;

/// Work handed to the writer thread before a sender waits (each holds at most one
/// invocation's log).
const QUEUE: usize = 128;

/// The log directory, written by its own thread.
#[derive(Debug)]
pub struct Logs {
    /// The writer thread's queue; the thread ends once this is dropped.
    tx: SyncSender<Op>,
}

/// What the writer thread does, in order.
#[derive(Debug)]
enum Op {
    Append(Append),
    Remove(String),
    /// Remove every file last written longer ago than this.
    Expire(std::time::Duration),
    /// Answered once everything before it is done.
    Flush(std::sync::mpsc::Sender<()>),
}

/// One invocation's log for a function's file.
#[derive(Debug)]
pub struct Append {
    pub function: String,
    pub text: Vec<u8>,
    /// Told once the text is in the file (or the write failed and was logged).
    pub written: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Append {
    /// An append nobody waits for.
    pub fn new(function: &str, text: Vec<u8>) -> Self {
        Self {
            function: function.to_string(),
            text,
            written: None,
        }
    }
}

/// The files themselves (the writer thread's side).
#[derive(Debug)]
struct LogFiles {
    dir: PathBuf,
    /// A log file is rotated before it would grow past this.
    max_file_bytes: u64,
}

/// Appends function output to one invocation's log, keeping at most
/// [`INVOCATION_LOG_MAX`] bytes; the first output past the cap is replaced by a
/// marker line, later output is dropped.
pub fn push_capped(log: &mut Vec<u8>, data: &[u8]) {
    if log.len() >= INVOCATION_LOG_MAX {
        return;
    }
    let room = INVOCATION_LOG_MAX - log.len();
    if data.len() <= room {
        log.extend_from_slice(data);
        return;
    }
    log.extend_from_slice(&data[..room]);
    log.extend_from_slice(
        format!(
            "\n[flint] this invocation's output passed {INVOCATION_LOG_MAX} bytes: the rest is dropped\n"
        )
        .as_bytes(),
    );
}

impl Logs {
    /// Opens (creating) the log directory and starts its writer thread; files are
    /// rotated at `max_file_bytes`.
    pub fn open(dir: &Path, max_file_bytes: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let files = LogFiles {
            dir: dir.to_path_buf(),
            max_file_bytes: max_file_bytes.max(1),
        };
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("flint-logs".into())
            .spawn(move || files.serve(rx))?;
        Ok(Self { tx })
    }

    /// Hands one invocation's log to the writer without waiting; gives it back when
    /// the writer's queue is full (then call [`append`](Self::append) where waiting is
    /// allowed).
    pub fn try_append(&self, append: Append) -> Result<(), Append> {
        match self.tx.try_send(Op::Append(append)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(Op::Append(a))) => Err(a),
            Err(e) => {
                tracing::error!(error = %e, "function log writer is gone");
                Ok(())
            }
        }
    }

    /// Hands one invocation's log to the writer, waiting for room in its queue.
    /// Blocking.
    pub fn append(&self, append: Append) {
        self.send(Op::Append(append));
    }

    /// Removes a deleted function's log and its rotated predecessor (after any append
    /// handed over before) and waits until they are gone. Blocking.
    pub fn remove(&self, function: &str) {
        self.send(Op::Remove(function.to_string()));
        self.flush();
    }

    /// Removes the log files (current and rotated, of any function) last written
    /// longer than `max_age` ago, in order with the appends (an append in flight is
    /// never lost to it), and waits until it is done. Blocking.
    pub fn expire(&self, max_age: std::time::Duration) {
        self.send(Op::Expire(max_age));
        self.flush();
    }

    /// Waits until everything handed over so far is in the files. Blocking.
    pub fn flush(&self) {
        let (done, wait) = std::sync::mpsc::channel();
        self.send(Op::Flush(done));
        let _ = wait.recv();
    }

    fn send(&self, op: Op) {
        if let Err(e) = self.tx.send(op) {
            tracing::error!(error = %e, "function log writer is gone");
        }
    }
}

impl Drop for Logs {
    /// Writes what is still queued; the writer thread then ends with the queue.
    fn drop(&mut self) {
        self.flush();
    }
}

impl LogFiles {
    fn path(&self, function: &str) -> PathBuf {
        self.dir.join(format!("{function}.log"))
    }

    fn rotated(&self, function: &str) -> PathBuf {
        self.dir.join(format!("{function}.log.1"))
    }

    /// The writer thread: does each operation in order until every sender is gone.
    fn serve(self, rx: Receiver<Op>) {
        for op in rx {
            match op {
                Op::Append(a) => {
                    self.append(&a.function, &a.text);
                    if let Some(written) = a.written {
                        let _ = written.send(());
                    }
                }
                Op::Remove(function) => self.remove(&function),
                Op::Expire(max_age) => self.expire(max_age),
                Op::Flush(done) => {
                    let _ = done.send(());
                }
            }
        }
    }

    /// Appends one invocation's log, rotating the file first if it would pass its
    /// cap. Text longer than the cap keeps its last `cap` bytes.
    fn append(&self, function: &str, text: &[u8]) {
        let cap = usize::try_from(self.max_file_bytes).unwrap_or(usize::MAX);
        let text = &text[text.len().saturating_sub(cap)..];
        let path = self.path(function);
        let size = std::fs::metadata(&path).map_or(0, |m| m.len());
        if size > 0 && size + text.len() as u64 > self.max_file_bytes {
            if let Err(e) = std::fs::rename(&path, self.rotated(function)) {
                tracing::warn!(function, error = %e, "rotating function log");
            }
        }
        let r = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(text));
        if let Err(e) = r {
            tracing::warn!(function, error = %e, "writing function log");
        }
    }

    fn expire(&self, max_age: std::time::Duration) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let now = std::time::SystemTime::now();
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if !(name.ends_with(".log") || name.ends_with(".log.1")) {
                continue;
            }
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > max_age);
            if old {
                match std::fs::remove_file(e.path()) {
                    Ok(()) => tracing::info!(file = %name, "function log expired"),
                    Err(err) => tracing::warn!(file = %name, error = %err, "expiring function log"),
                }
            }
        }
    }

    fn remove(&self, function: &str) {
        let _ = std::fs::remove_file(self.path(function));
        let _ = std::fs::remove_file(self.rotated(function));
    }
}

/// The last `max` bytes of `log`, cut at a character boundary.
pub fn tail(log: &[u8], max: usize) -> String {
    let start = log.len().saturating_sub(max);
    let mut s = &log[start..];
    // Skip continuation bytes of a character cut in half.
    while let Some((&b, rest)) = s.split_first() {
        if b & 0xC0 == 0x80 {
            s = rest;
        } else {
            break;
        }
    }
    String::from_utf8_lossy(s).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_end_and_whole_characters() {
        assert_eq!(tail(b"abcdef", 3), "def");
        assert_eq!(tail(b"ab", 10), "ab");
        let s = "ééé".as_bytes(); // 6 bytes
        assert_eq!(tail(s, 5), "éé");
    }

    #[test]
    fn append_accumulates() {
        let d = tempfile::tempdir().unwrap();
        let logs = Logs::open(d.path(), 1 << 20).unwrap();
        logs.append(Append::new("f", b"one\n".to_vec()));
        assert!(logs.try_append(Append::new("f", b"two\n".to_vec())).is_ok());
        logs.flush();
        assert_eq!(
            std::fs::read(d.path().join("f.log")).unwrap(),
            b"one\ntwo\n"
        );
        logs.remove("f");
        logs.flush();
        assert!(!d.path().join("f.log").exists());
    }

    #[test]
    fn files_rotate_at_their_cap_and_keep_one_predecessor() {
        let d = tempfile::tempdir().unwrap();
        let logs = Logs::open(d.path(), 100).unwrap();
        for i in 0..50 {
            logs.append(Append::new(
                "f",
                format!("line {i:02} of the log\n").into_bytes(),
            ));
        }
        logs.flush();
        let cur = std::fs::read_to_string(d.path().join("f.log")).unwrap();
        let old = std::fs::read_to_string(d.path().join("f.log.1")).unwrap();
        assert!(cur.len() <= 100 && old.len() <= 100, "{cur:?} {old:?}");
        assert!(cur.ends_with("line 49 of the log\n"), "{cur:?}");
        // Nothing is lost across the rotation: the old file ends where the new begins.
        let num = |l: &str| l[5..7].parse::<u32>().unwrap();
        let last_old = num(old.lines().last().unwrap());
        let first_cur = num(cur.lines().next().unwrap());
        assert_eq!(last_old + 1, first_cur);
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 2);
        // One huge invocation keeps its end, within the cap.
        logs.append(Append::new("g", vec![b'x'; 1000]));
        logs.flush();
        assert_eq!(
            std::fs::metadata(d.path().join("g.log")).unwrap().len(),
            100
        );
        logs.remove("f");
        logs.flush();
        assert!(!d.path().join("f.log.1").exists());
    }

    #[test]
    fn files_older_than_the_retention_are_expired_others_kept() {
        let d = tempfile::tempdir().unwrap();
        let logs = Logs::open(d.path(), 1 << 20).unwrap();
        logs.append(Append::new("new", b"x\n".to_vec()));
        logs.flush();
        let old = d.path().join("old.log.1");
        std::fs::write(&old, "y\n").unwrap();
        std::fs::write(d.path().join("notes.txt"), "z").unwrap();
        let ten_days = std::time::SystemTime::now() - std::time::Duration::from_secs(10 * 86_400);
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(ten_days)
            .unwrap();
        logs.expire(std::time::Duration::from_secs(86_400));
        assert!(!old.exists());
        assert!(d.path().join("new.log").exists());
        assert!(
            d.path().join("notes.txt").exists(),
            "only log files are touched"
        );
    }

    #[test]
    fn one_invocation_keeps_at_most_the_cap_with_a_marker() {
        let mut log = b"START\n".to_vec();
        let chunk = vec![b'y'; 64 * 1024];
        for _ in 0..100 {
            push_capped(&mut log, &chunk);
        }
        assert!(log.len() < INVOCATION_LOG_MAX + 200, "{}", log.len());
        let text = String::from_utf8_lossy(&log);
        assert!(text.starts_with("START\n"));
        assert!(
            text.ends_with("the rest is dropped\n"),
            "{}",
            &text[text.len() - 100..]
        );
        assert_eq!(text.matches("[flint]").count(), 1);
    }
}
