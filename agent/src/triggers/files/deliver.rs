//! A file-event trigger's delivery task: turns the watcher's changes (and rescans)
//! into S3 records and stores each as an asynchronous (Event) invocation in the
//! durable queue, so an accepted change is never lost and gets Lambda's retries.
//!
//! At least once: a queue that refuses an event is retried a few times (then the
//! event is counted as failed and the trigger's last error says why); an inotify
//! overflow rescans the directory and delivers every file in it again; after a
//! restart every file modified after the trigger's mark is delivered again.

use super::record::{md5_file, payload, record, Object, Origin, S3Event, Sequencer};
use super::spec::{FileEvent, FilesSpec};
use super::state::{Count, FilesState};
use super::watch::{Change, Msg};
use crate::triggers::scheduler::Host;
use chrono::{DateTime, TimeDelta, Utc};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Events queued at once (each is one registry commit, shared by those waiting).
const PARALLEL: usize = 128;
/// Attempts to queue one event before it counts as failed.
const ATTEMPTS: u32 = 6;
/// How far before the mark a restart's rescan reaches (coarse file times).
const MARK_SLACK: TimeDelta = TimeDelta::seconds(1);

/// The trigger a delivery task works for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub function: String,
    pub spec: FilesSpec,
}

/// One trigger's delivery.
pub struct Delivery {
    pub agent: Weak<dyn Host>,
    pub target: Target,
    pub state: Arc<FilesState>,
    pub sequencer: Arc<Sequencer>,
}

/// The files in `dir` and its subdirectories (symbolic links not followed) modified
/// after `since` (all with None), as creations keyed by their relative paths.
pub fn scan(dir: &Path, since: Option<DateTime<Utc>>) -> std::io::Result<Vec<Change>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let entries = match std::fs::read_dir(dir.join(&rel)) {
            Ok(e) => e,
            // The top must be readable; a subdirectory may vanish meanwhile.
            Err(e) if rel.as_os_str().is_empty() => return Err(e),
            Err(_) => continue,
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            let child = rel.join(entry.file_name());
            if meta.is_dir() {
                stack.push(child);
                continue;
            }
            if !meta.is_file() {
                continue;
            }
            let modified: Option<DateTime<Utc>> = meta.modified().ok().map(DateTime::from);
            if let (Some(since), Some(m)) = (since, modified) {
                if m <= since {
                    continue;
                }
            }
            out.push(Change {
                event: FileEvent::Created,
                key: child.to_string_lossy().into_owned(),
                at: Utc::now(),
            });
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// Size and MD5 of a file; None when it is gone (or unreadable).
fn describe(path: &Path) -> (Option<u64>, Option<String>) {
    match md5_file(path) {
        Ok((size, md5)) => (Some(size), Some(md5)),
        Err(_) => (None, None),
    }
}

impl Delivery {
    /// Runs until the watcher stops (or fails) or the agent is gone. `mark`: the
    /// trigger's stored mark; files modified after it are delivered first (the
    /// watch is already in place, so nothing falls between the two).
    pub async fn run(self, mut rx: mpsc::Receiver<Msg>, mark: Option<DateTime<Utc>>) {
        let dir = PathBuf::from(&self.target.spec.dir);
        match mark {
            Some(m) => {
                let since = m - MARK_SLACK;
                let d = dir.clone();
                match tokio::task::spawn_blocking(move || scan(&d, Some(since))).await {
                    Ok(Ok(changes)) => {
                        tracing::info!(files = changes.len(), mark = %m, "delivering files modified after the mark");
                        self.deliver(changes).await;
                    }
                    Ok(Err(e)) => {
                        self.error(format!("rescan of {}: {e}", dir.display()))
                            .await
                    }
                    Err(e) => self.error(format!("rescan task: {e}")).await,
                }
            }
            None => self.set_mark(Utc::now()).await,
        }
        let mut clean = true;
        while let Some(msg) = rx.recv().await {
            match msg {
                Msg::Changes(c) => clean &= self.deliver(c).await,
                Msg::Drained(at) => {
                    if clean {
                        self.set_mark(at).await;
                    }
                    clean = true;
                }
                Msg::Overflow => {
                    self.state.add(&self.target.name, Count::Overflow, 1);
                    tracing::warn!(dir = %dir.display(), "inotify queue overflowed: rescanning the directory (every file is delivered again)");
                    let d = dir.clone();
                    match tokio::task::spawn_blocking(move || scan(&d, None)).await {
                        Ok(Ok(changes)) => clean &= self.deliver(changes).await,
                        Ok(Err(e)) => {
                            clean = false;
                            self.error(format!("rescan of {}: {e}", dir.display()))
                                .await
                        }
                        Err(e) => {
                            clean = false;
                            self.error(format!("rescan task: {e}")).await
                        }
                    }
                }
                Msg::Failed(e) => {
                    tracing::warn!(error = %e, "file watch ended");
                    self.error(e.to_string()).await;
                    return;
                }
            }
        }
    }

    /// Queues the changes that pass the filters; true when all were queued.
    pub async fn deliver(&self, changes: Vec<Change>) -> bool {
        let spec = &self.target.spec;
        let wanted: Vec<Change> = changes
            .into_iter()
            .filter(|c| spec.wants(c.event) && spec.matches(&c.key))
            .collect();
        if wanted.is_empty() {
            return true;
        }
        self.state
            .add(&self.target.name, Count::Seen, wanted.len() as u64);
        let mut ok = true;
        let mut last_err = None;
        for chunk in wanted.chunks(PARALLEL) {
            let mut set = JoinSet::new();
            for c in chunk {
                let payload = self.payload_for(c.clone());
                let (agent, function) = (self.agent.clone(), self.target.function.clone());
                set.spawn(async move {
                    let payload = payload.await?;
                    queue(agent, function, payload).await
                });
            }
            while let Some(r) = set.join_next().await {
                match r.unwrap_or_else(|e| Err(format!("delivery task: {e}"))) {
                    Ok(()) => self.state.add(&self.target.name, Count::Delivered, 1),
                    Err(e) => {
                        ok = false;
                        self.state.add(&self.target.name, Count::Failed, 1);
                        last_err = Some(e);
                    }
                }
            }
        }
        if let Some(e) = last_err {
            tracing::warn!(error = %e, "file events could not be queued");
            self.error(e).await;
        }
        ok
    }

    /// The invocation payload of one change (the file is read off the async workers).
    fn payload_for(
        &self,
        c: Change,
    ) -> impl std::future::Future<Output = Result<Vec<u8>, String>> + Send + 'static {
        let path = Path::new(&self.target.spec.dir).join(&c.key);
        let sequencer = self.sequencer.next();
        let (bucket, agent) = (self.target.name.clone(), self.agent.clone());
        async move {
            let (size, md5_hex) = match c.event {
                FileEvent::Created => tokio::task::spawn_blocking(move || describe(&path))
                    .await
                    .map_err(|e| format!("reading the file: {e}"))?,
                FileEvent::Removed => (None, None),
            };
            let agent = agent.upgrade().ok_or("the agent is stopping")?;
            let (region, account) = agent.region_account();
            let origin = Origin {
                region: &region,
                account: &account,
                bucket: &bucket,
            };
            let event = match c.event {
                FileEvent::Created => S3Event::Put,
                FileEvent::Removed => S3Event::Delete,
            };
            let object = Object {
                key: c.key,
                size,
                md5_hex,
            };
            Ok(payload(vec![record(
                &origin, event, c.at, &object, &sequencer,
            )]))
        }
    }

    async fn set_mark(&self, at: DateTime<Utc>) {
        let (agent, name) = (self.agent.clone(), self.target.name.clone());
        let r = tokio::task::spawn_blocking(move || {
            let a = agent.upgrade().ok_or("the agent is stopping".to_string())?;
            a.store()
                .set_files_mark(&name, at)
                .map_err(|e| e.to_string())
        })
        .await;
        if let Ok(Err(e)) | Err(e) = r.map_err(|e| e.to_string()) {
            tracing::warn!(error = %e, "could not store the trigger's mark");
        }
    }

    /// Records the trigger's last error.
    async fn error(&self, msg: String) {
        let (agent, name) = (self.agent.clone(), self.target.name.clone());
        let msg = format!("{}: {msg}", crate::triggers::store::fmt_time(Utc::now()));
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(a) = agent.upgrade() {
                let _ = a.store().set_trigger_error(&name, Some(&msg));
            }
        })
        .await;
    }
}

/// Stores one event in the durable queue, retrying a refusal with backoff.
pub async fn queue(
    agent: Weak<dyn Host>,
    function: String,
    payload: Vec<u8>,
) -> Result<(), String> {
    let mut wait = Duration::from_millis(50);
    let mut last = String::new();
    for _ in 0..ATTEMPTS {
        let Some(a) = agent.upgrade() else {
            return Err("the agent is stopping".into());
        };
        match a.invoke_event(function.clone(), payload.clone()).await {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
    Err(format!("queueing the event for {function}: {last}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_lists_files_modified_after_the_mark() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("old"), b"1").unwrap();
        std::fs::create_dir_all(d.path().join("sub/deeper")).unwrap();
        std::fs::write(d.path().join("sub/deeper/n"), b"2").unwrap();
        std::os::unix::fs::symlink(d.path().join("sub"), d.path().join("link")).unwrap();
        let all = scan(d.path(), None).unwrap();
        let keys: Vec<_> = all.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["old", "sub/deeper/n"]);
        let later = Utc::now() + TimeDelta::seconds(5);
        assert!(scan(d.path(), Some(later)).unwrap().is_empty());
        let earlier = Utc::now() - TimeDelta::seconds(5);
        assert_eq!(scan(d.path(), Some(earlier)).unwrap().len(), 2);
    }
}
