//! The inotify side of a file-event trigger: one thread per watched directory that
//! reads the kernel's events and sends them, in batches, to the trigger's delivery
//! task (`deliver.rs`).
//!
//! The directory and its subdirectories are watched (one inotify watch each, symbolic
//! links not followed): a key is a file's path relative to DIR (`a/b/c.csv`). A file
//! closed after writing (`IN_CLOSE_WRITE`) or moved in (`IN_MOVED_TO`) is a creation;
//! a deletion (`IN_DELETE`) or a move out (`IN_MOVED_FROM`) a removal. A subdirectory
//! created or moved in is watched at once and its files found then are sent as
//! creations (files written before the watch was in place; a file may so be reported
//! twice); a subdirectory moved out stops being watched (its files give no removals).
//! When the kernel's queue overflows
//! (`IN_Q_OVERFLOW`, more than `fs.inotify.max_queued_events` unread events) the
//! thread says so and the delivery task rescans the directory. Whenever the queue has
//! been read empty, the thread sends [`Msg::Drained`] with the time it was empty:
//! every change before that time is in a batch already sent.

use super::spec::FileEvent;
use chrono::{DateTime, Utc};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, InotifyEvent, WatchDescriptor};
use std::collections::HashMap;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
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
        | AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
        | AddWatchFlags::IN_ONLYDIR
        | AddWatchFlags::IN_DONT_FOLLOW
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
    let root_wd = ino.add_watch(&dir, flags()).map_err(err)?;
    let mut tree = Tree {
        ino,
        root: dir,
        root_wd,
        dirs: HashMap::from([(root_wd, PathBuf::new())]),
    };
    tree.add_below(Path::new(""), &mut Vec::new());
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::Builder::new()
        .name(format!("watch-{trigger}"))
        .spawn(move || run(tree, tx, flag))
        .map_err(WatchError::Thread)?;
    Ok(WatchHandle { stop })
}

/// The watched tree: a watch per directory, by descriptor, with its path relative to
/// the root.
struct Tree {
    ino: Inotify,
    root: PathBuf,
    root_wd: WatchDescriptor,
    dirs: HashMap<WatchDescriptor, PathBuf>,
}

/// What one inotify event means for the watch.
enum Seen {
    Overflow,
    Gone,
    Nothing,
}

impl Tree {
    /// Watches every directory below `rel` (not following symbolic links); the files
    /// found go to `found` as creations.
    fn add_below(&mut self, rel: &Path, found: &mut Vec<Change>) {
        let mut stack = vec![rel.to_path_buf()];
        while let Some(rel) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(self.root.join(&rel)) else {
                continue;
            };
            for e in entries.flatten() {
                let Ok(kind) = e.file_type() else { continue };
                let child = rel.join(e.file_name());
                if kind.is_dir() {
                    match self.ino.add_watch(&self.root.join(&child), flags()) {
                        Ok(wd) => {
                            self.dirs.insert(wd, child.clone());
                            stack.push(child);
                        }
                        Err(e) => {
                            tracing::warn!(dir = %child.display(), error = %e, "subdirectory not watched (fs.inotify.max_user_watches?)")
                        }
                    }
                } else if kind.is_file() {
                    found.push(change(FileEvent::Created, &child));
                }
            }
        }
    }

    /// Stops watching `rel` and everything below it (moved out).
    fn remove_below(&mut self, rel: &Path) {
        let gone: Vec<WatchDescriptor> = self
            .dirs
            .iter()
            .filter(|(_, p)| p.starts_with(rel))
            .map(|(wd, _)| *wd)
            .collect();
        for wd in gone {
            self.dirs.remove(&wd);
            let _ = self.ino.rm_watch(wd);
        }
    }

    /// Handles one event; changes go to `batch`.
    fn event(&mut self, e: InotifyEvent, batch: &mut Vec<Change>) -> Seen {
        let mask = e.mask;
        if mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
            // Directories made while events were lost are watched from now on.
            let mut ignored = Vec::new();
            self.add_below(Path::new(""), &mut ignored);
            return Seen::Overflow;
        }
        if e.wd == self.root_wd
            && mask.intersects(
                AddWatchFlags::IN_DELETE_SELF
                    | AddWatchFlags::IN_MOVE_SELF
                    | AddWatchFlags::IN_IGNORED,
            )
        {
            return Seen::Gone;
        }
        if mask.contains(AddWatchFlags::IN_IGNORED) {
            self.dirs.remove(&e.wd);
            return Seen::Nothing;
        }
        let (Some(dir), Some(name)) = (self.dirs.get(&e.wd), e.name.as_deref()) else {
            return Seen::Nothing;
        };
        let rel = dir.join(name);
        if mask.contains(AddWatchFlags::IN_ISDIR) {
            if mask.intersects(AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO) {
                match self.ino.add_watch(&self.root.join(&rel), flags()) {
                    Ok(wd) => {
                        self.dirs.insert(wd, rel.clone());
                        // Files (and directories) made before the watch was in place.
                        self.add_below(&rel, batch);
                    }
                    Err(e) => {
                        tracing::warn!(dir = %rel.display(), error = %e, "subdirectory not watched")
                    }
                }
            } else if mask.contains(AddWatchFlags::IN_MOVED_FROM) {
                self.remove_below(&rel);
            }
            return Seen::Nothing;
        }
        if mask.intersects(AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_MOVED_TO) {
            batch.push(change(FileEvent::Created, &rel));
        } else if mask.intersects(AddWatchFlags::IN_DELETE | AddWatchFlags::IN_MOVED_FROM) {
            batch.push(change(FileEvent::Removed, &rel));
        }
        Seen::Nothing
    }
}

fn change(event: FileEvent, rel: &Path) -> Change {
    Change {
        event,
        key: String::from_utf8_lossy(rel.as_os_str().as_bytes()).into_owned(),
        at: Utc::now(),
    }
}

fn run(mut tree: Tree, tx: mpsc::Sender<Msg>, stop: Arc<AtomicBool>) {
    let mut batch = Vec::new();
    let mut dirty = false;
    let send = |m: Msg| tx.blocking_send(m).is_ok();
    while !stop.load(Ordering::Relaxed) {
        let before = Utc::now();
        match tree.ino.read_events() {
            Ok(events) => {
                dirty = true;
                for e in events {
                    match tree.event(e, &mut batch) {
                        Seen::Overflow => {
                            if !send(Msg::Changes(std::mem::take(&mut batch)))
                                || !send(Msg::Overflow)
                            {
                                return;
                            }
                        }
                        Seen::Gone => {
                            let _ = send(Msg::Changes(std::mem::take(&mut batch)));
                            let _ = send(Msg::Failed(WatchError::Gone(tree.root.clone())));
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
                let mut fds = [PollFd::new(tree.ino.as_fd(), PollFlags::POLLIN)];
                match poll(&mut fds, PollTimeout::from(POLL_MS)) {
                    Ok(_) | Err(nix::Error::EINTR) => {}
                    Err(source) => {
                        let dir = tree.root.clone();
                        let _ = send(Msg::Failed(WatchError::Watch { dir, source }));
                        return;
                    }
                }
            }
            Err(nix::Error::EINTR) => {}
            Err(source) => {
                let dir = tree.root.clone();
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
    async fn writes_moves_and_deletes_are_seen_and_directories_give_no_change() {
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

    /// Collects changes into `got` until it holds (event, key).
    async fn collect(
        rx: &mut mpsc::Receiver<Msg>,
        got: &mut std::collections::BTreeSet<(FileEvent, String)>,
        event: FileEvent,
        key: &str,
    ) {
        while !got.contains(&(event, key.to_string())) {
            for c in changes_until(rx, 1).await {
                got.insert((c.event, c.key));
            }
        }
    }

    #[tokio::test]
    async fn subdirectories_are_watched_including_new_and_moved_in_ones() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("old/deep")).unwrap();
        let (tx, mut rx) = mpsc::channel(64);
        let _h = start("t", d.path().to_path_buf(), tx).unwrap();
        std::fs::write(d.path().join("old/deep/a"), b"1").unwrap();
        // A new directory, and a file in it at once (caught by the watch or by the
        // look inside that follows it; maybe both).
        std::fs::create_dir(d.path().join("new")).unwrap();
        std::fs::write(d.path().join("new/b"), b"2").unwrap();
        // A directory with a file, moved in.
        let outside = tempfile::tempdir_in(d.path().parent().unwrap()).unwrap();
        std::fs::create_dir(outside.path().join("m")).unwrap();
        std::fs::write(outside.path().join("m/c"), b"3").unwrap();
        std::fs::rename(outside.path().join("m"), d.path().join("m")).unwrap();
        let mut got = std::collections::BTreeSet::new();
        collect(&mut rx, &mut got, FileEvent::Created, "new/b").await;
        collect(&mut rx, &mut got, FileEvent::Created, "m/c").await;
        std::fs::remove_file(d.path().join("old/deep/a")).unwrap();
        // Moved out: no longer watched, so this write is not seen.
        std::fs::rename(d.path().join("new"), outside.path().join("new")).unwrap();
        std::fs::write(outside.path().join("new/after"), b"4").unwrap();
        std::fs::write(d.path().join("end"), b"5").unwrap();
        collect(&mut rx, &mut got, FileEvent::Created, "end").await;
        let want: std::collections::BTreeSet<_> = [
            (FileEvent::Created, "old/deep/a"),
            (FileEvent::Created, "new/b"),
            (FileEvent::Created, "m/c"),
            (FileEvent::Removed, "old/deep/a"),
            (FileEvent::Created, "end"),
        ]
        .into_iter()
        .map(|(e, k)| (e, k.to_string()))
        .collect();
        assert_eq!(got, want);
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
