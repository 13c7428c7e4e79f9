//! The inotify side of a file-event trigger: one thread per watched directory that
//! reads the kernel's events and sends them, in batches, to the trigger's delivery
//! task (`deliver.rs`).
//!
//! Only the directory itself is watched, not its subdirectories: keys are file names
//! in DIR. A file closed after writing (`IN_CLOSE_WRITE`) or moved in
//! (`IN_MOVED_TO`) is a creation; a deletion (`IN_DELETE`) or a move out
//! (`IN_MOVED_FROM`) a removal. When the kernel's queue overflows
//! (`IN_Q_OVERFLOW`, more than `fs.inotify.max_queued_events` unread events) the
//! thread says so and the delivery task rescans the directory. Whenever the queue has
//! been read empty, the thread sends [`Msg::Drained`] with the time it was empty:
//! every change before that time is in a batch already sent.

use super::spec::FileEvent;
use chrono::{DateTime, Utc};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// The most changes in one batch.
const BATCH_MAX: usize = 1024;
/// How often the thread looks at its stop flag while idle, in milliseconds.
const POLL_MS: u16 = 200;

/// A watch that could not be set up or broke.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// inotify_init or inotify_add_watch failed
    #[error("watching {dir}: {source}")]
    Watch { dir: PathBuf, source: nix::Error },
    /// The directory was deleted or moved away
    #[error(
        "watched directory {0} was deleted or moved; recreate it and disable/enable the trigger"
    )]
    Gone(PathBuf),
    /// The watcher thread could not start
    #[error("starting the watcher thread: {0}")]
    Thread(std::io::Error),
}

/// One change in the watched directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub event: FileEvent,
    /// The file's name in the directory (the object key before filters).
    pub key: String,
    /// When the watcher read it.
    pub at: DateTime<Utc>,
}

/// What the watcher thread sends.
#[derive(Debug)]
pub enum Msg {
    Changes(Vec<Change>),
    /// The kernel queue was read empty at this time.
    Drained(DateTime<Utc>),
    /// The kernel queue overflowed: changes were lost; rescan.
    Overflow,
    /// The watch ended with this error.
    Failed(WatchError),
}

/// Stops the thread when dropped.
pub struct WatchHandle {
    stop: Arc<AtomicBool>,
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn flags() -> AddWatchFlags {
    AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
        | AddWatchFlags::IN_ONLYDIR
}

/// Starts watching `dir` (the watch is in place when this returns) on a thread
/// named after `trigger`; changes go to `tx`.
pub fn start(
    trigger: &str,
    dir: PathBuf,
    tx: mpsc::Sender<Msg>,
) -> Result<WatchHandle, WatchError> {
    let err = |source| WatchError::Watch {
        dir: dir.clone(),
        source,
    };
    let ino = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).map_err(err)?;
    ino.add_watch(&dir, flags()).map_err(err)?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::Builder::new()
        .name(format!("watch-{trigger}"))
        .spawn(move || run(ino, dir, tx, flag))
        .map_err(WatchError::Thread)?;
    Ok(WatchHandle { stop })
}

/// Maps one inotify event to a change, or to what it means for the watch.
enum Seen {
    Change(Change),
    Overflow,
    Gone,
    Nothing,
}

fn classify(mask: AddWatchFlags, name: Option<&std::ffi::OsStr>) -> Seen {
    if mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
        return Seen::Overflow;
    }
    if mask.intersects(
        AddWatchFlags::IN_DELETE_SELF | AddWatchFlags::IN_MOVE_SELF | AddWatchFlags::IN_IGNORED,
    ) {
        return Seen::Gone;
    }
    let Some(name) = name.filter(|_| !mask.contains(AddWatchFlags::IN_ISDIR)) else {
        return Seen::Nothing;
    };
    let event = if mask.intersects(AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_MOVED_TO) {
        FileEvent::Created
    } else if mask.intersects(AddWatchFlags::IN_DELETE | AddWatchFlags::IN_MOVED_FROM) {
        FileEvent::Removed
    } else {
        return Seen::Nothing;
    };
    Seen::Change(Change {
        event,
        key: String::from_utf8_lossy(name.as_bytes()).into_owned(),
        at: Utc::now(),
    })
}

fn run(ino: Inotify, dir: PathBuf, tx: mpsc::Sender<Msg>, stop: Arc<AtomicBool>) {
    let mut batch = Vec::new();
    let mut dirty = false;
    let send = |m: Msg| tx.blocking_send(m).is_ok();
    while !stop.load(Ordering::Relaxed) {
        let before = Utc::now();
        match ino.read_events() {
            Ok(events) => {
                dirty = true;
                for e in events {
                    match classify(e.mask, e.name.as_deref()) {
                        Seen::Change(c) => batch.push(c),
                        Seen::Overflow => {
                            if !send(Msg::Changes(std::mem::take(&mut batch)))
                                || !send(Msg::Overflow)
                            {
                                return;
                            }
                        }
                        Seen::Gone => {
                            let _ = send(Msg::Changes(std::mem::take(&mut batch)));
                            let _ = send(Msg::Failed(WatchError::Gone(dir.clone())));
                            return;
                        }
                        Seen::Nothing => {}
                    }
                }
                if batch.len() >= BATCH_MAX && !send(Msg::Changes(std::mem::take(&mut batch))) {
                    return;
                }
            }
            Err(nix::Error::EAGAIN) => {
                // Empty at `before`: everything up to then is in `batch` or sent.
                if !batch.is_empty() && !send(Msg::Changes(std::mem::take(&mut batch))) {
                    return;
                }
                if dirty {
                    dirty = false;
                    if !send(Msg::Drained(before)) {
                        return;
                    }
                }
                let mut fds = [PollFd::new(ino.as_fd(), PollFlags::POLLIN)];
                match poll(&mut fds, PollTimeout::from(POLL_MS)) {
                    Ok(_) | Err(nix::Error::EINTR) => {}
                    Err(source) => {
                        let _ = send(Msg::Failed(WatchError::Watch { dir, source }));
                        return;
                    }
                }
            }
            Err(nix::Error::EINTR) => {}
            Err(source) => {
                let _ = send(Msg::Failed(WatchError::Watch { dir, source }));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn changes_until(rx: &mut mpsc::Receiver<Msg>, n: usize) -> Vec<Change> {
        let mut got = Vec::new();
        while got.len() < n {
            match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
                Ok(Some(Msg::Changes(c))) => got.extend(c),
                Ok(Some(_)) => {}
                other => panic!("after {got:?}: {other:?}"),
            }
        }
        got
    }

    #[tokio::test]
    async fn writes_moves_and_deletes_are_seen_and_directories_ignored() {
        let d = tempfile::tempdir().unwrap();
        let (tx, mut rx) = mpsc::channel(64);
        let _h = start("t", d.path().to_path_buf(), tx).unwrap();
        std::fs::write(d.path().join("a.txt"), b"hello").unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        let outside = tempfile::tempdir_in(d.path().parent().unwrap()).unwrap();
        std::fs::write(outside.path().join("b"), b"x").unwrap();
        std::fs::rename(outside.path().join("b"), d.path().join("b")).unwrap();
        std::fs::remove_file(d.path().join("a.txt")).unwrap();
        let got = changes_until(&mut rx, 3).await;
        let got: Vec<_> = got.iter().map(|c| (c.event, c.key.as_str())).collect();
        assert_eq!(
            got,
            [
                (FileEvent::Created, "a.txt"),
                (FileEvent::Created, "b"),
                (FileEvent::Removed, "a.txt"),
            ]
        );
    }

    #[tokio::test]
    async fn a_kernel_queue_overflow_is_reported() {
        let limit: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let d = tempfile::tempdir().unwrap();
        // A channel of one: the thread blocks on its second message, so the kernel's
        // queue fills while the files are written.
        let (tx, mut rx) = mpsc::channel(1);
        let _h = start("t", d.path().to_path_buf(), tx).unwrap();
        std::fs::write(d.path().join("first"), b"").unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        for i in 0..limit + BATCH_MAX + 100 {
            std::fs::write(d.path().join(format!("f{i}")), b"").unwrap();
        }
        let mut overflow = false;
        while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            if matches!(m, Msg::Overflow) {
                overflow = true;
                break;
            }
        }
        assert!(
            overflow,
            "no overflow reported after {limit}+ unread events"
        );
    }

    #[tokio::test]
    async fn a_deleted_directory_ends_the_watch_with_a_clear_error() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("w");
        std::fs::create_dir(&dir).unwrap();
        let (tx, mut rx) = mpsc::channel(64);
        let _h = start("t", dir.clone(), tx).unwrap();
        std::fs::remove_dir(&dir).unwrap();
        loop {
            match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
                Ok(Some(Msg::Failed(e))) => {
                    assert!(e.to_string().contains("was deleted or moved"), "{e}");
                    break;
                }
                Ok(Some(_)) => {}
                other => panic!("{other:?}"),
            }
        }
    }
}
