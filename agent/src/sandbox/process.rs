//! What the namespace and microVM sandboxes share: one host process (the flint-init
//! launcher, or flint-vmm) inside the sandbox's cgroup, and the stream to flint-init.
//! Tearing down kills the process and everything left in the cgroup, then removes it.

use super::namespace::cgroup::SandboxCgroup;
use super::SandboxError;
use std::time::Duration;

/// A sandbox's host process, cgroup and stream.
pub struct ProcessSandbox {
    pub id: String,
    pub child: Option<tokio::process::Child>,
    pub cgroup: Option<SandboxCgroup>,
    pub stream: Option<tokio::net::UnixStream>,
}

impl ProcessSandbox {
    /// A sandbox whose process is not started yet.
    pub fn new(id: &str, cgroup: SandboxCgroup) -> Self {
        Self {
            id: id.to_string(),
            child: None,
            cgroup: Some(cgroup),
            stream: None,
        }
    }

    /// True when the OOM killer struck in the cgroup.
    pub fn oom_killed(&self) -> bool {
        self.cgroup.as_ref().is_some_and(|c| c.oom_kills() > 0)
    }

    /// Peak memory of the cgroup, in bytes.
    pub fn memory_peak(&self) -> Option<u64> {
        self.cgroup.as_ref().and_then(|c| c.memory_peak())
    }

    /// Applies the cgroup's CPU quota.
    pub fn limit_cpu(&self) -> Result<(), SandboxError> {
        self.cgroup.as_ref().map_or(Ok(()), |c| c.limit_cpu())
    }

    /// Freezes everything in the cgroup (the whole VMM process for a microVM: its
    /// vCPU threads stop like any others).
    pub fn freeze(&self) -> Result<(), SandboxError> {
        self.cgroup.as_ref().map_or(Ok(()), |c| c.freeze())
    }

    /// Thaws the cgroup.
    pub fn thaw(&self) -> Result<(), SandboxError> {
        self.cgroup.as_ref().map_or(Ok(()), |c| c.thaw())
    }

    /// Kills the process and everything in the cgroup, then removes the cgroup.
    pub async fn teardown(&mut self) -> Result<(), SandboxError> {
        self.stream = None;
        // Thawed and unthrottled first, or the killed processes exit slowly or never.
        if let Some(cg) = &self.cgroup {
            cg.release();
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        let Some(cg) = self.cgroup.take() else {
            return Ok(());
        };
        for _ in 0..500 {
            cg.kill_all();
            if cg.pids().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut last = Ok(());
        for _ in 0..100 {
            last = cg.delete();
            if last.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if let Err(e) = &last {
            tracing::warn!(sandbox = %self.id, error = %e, "cgroup left behind");
        }
        last
    }
}

impl Drop for ProcessSandbox {
    /// Not torn down through `teardown` (a panic, an aborted task): kill what we can
    /// synchronously, reaping the process so the cgroup can be removed.
    fn drop(&mut self) {
        if let Some(cg) = &self.cgroup {
            cg.release();
        }
        if let Some(child) = &mut self.child {
            let _ = child.start_kill();
            for _ in 0..100 {
                if matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        if let Some(cg) = self.cgroup.take() {
            cg.kill_all();
            for _ in 0..100 {
                if cg.pids().is_empty() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = cg.delete();
        }
    }
}
