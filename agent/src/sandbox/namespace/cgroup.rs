//! The cgroup of one namespace sandbox: memory cap and process limit, on cgroup v1 or
//! v2 (detected by cgroups-rs at start-up). flint-init joins it by writing its own pid
//! into every `cgroup.procs` listed by [`SandboxCgroup::procs_files`].

use super::super::SandboxError;
use cgroups_rs::fs::{hierarchies, Cgroup, MaxValue};
use std::path::PathBuf;

pub(super) const CONTROLLERS: [&str; 2] = ["memory", "pids"];

/// One sandbox's cgroup (one directory per controller on v1, one on v2).
pub struct SandboxCgroup {
    cg: Cgroup,
    path: String,
}

fn err(path: &str, e: impl std::fmt::Display) -> SandboxError {
    SandboxError::Cgroup {
        path: path.to_string(),
        message: e.to_string(),
    }
}

impl SandboxCgroup {
    /// Creates `parent/id` with `memory_mb` MB of memory and `pids` processes at most.
    pub fn create(parent: &str, id: &str, memory_mb: u32, pids: u64) -> Result<Self, SandboxError> {
        let path = format!("{parent}/{id}");
        let limit = i64::from(memory_mb) * 1024 * 1024;
        let cg = cgroups_rs::fs::cgroup_builder::CgroupBuilder::new(&path)
            .set_specified_controllers(CONTROLLERS.iter().map(|s| s.to_string()).collect())
            .memory()
            .memory_hard_limit(limit)
            .done()
            .pid()
            .maximum_number_of_processes(MaxValue::Value(pids as i64))
            .done()
            .build(hierarchies::auto())
            .map_err(|e| err(&path, e))?;
        let me = Self { cg, path };
        if me.procs_files().len() != CONTROLLERS.len() && !me.cg.v2() {
            let _ = me.cg.delete();
            return Err(err(&me.path, "memory and pids controllers are required"));
        }
        Ok(me)
    }

    /// The relative cgroup path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The `cgroup.procs` files a process writes its pid to, to join.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self
            .cg
            .subsystems()
            .iter()
            .map(|s| s.to_controller().path().join("cgroup.procs"))
            .collect();
        files.sort();
        files.dedup();
        files
    }

    fn memory_dir(&self) -> Option<PathBuf> {
        self.cg.subsystems().iter().find_map(|s| match s {
            cgroups_rs::fs::Subsystem::Mem(m) => {
                Some(cgroups_rs::fs::Controller::path(m).to_path_buf())
            }
            _ => None,
        })
    }

    /// How many processes the OOM killer has killed in this cgroup.
    pub fn oom_kills(&self) -> u64 {
        let Some(dir) = self.memory_dir() else {
            return 0;
        };
        let file = if self.cg.v2() {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        std::fs::read_to_string(dir.join(file))
            .ok()
            .and_then(|s| parse_oom_kill(&s))
            .unwrap_or(0)
    }

    /// Peak memory use in bytes (memory.max_usage_in_bytes on v1, memory.peak on v2).
    pub fn memory_peak(&self) -> Option<u64> {
        let dir = self.memory_dir()?;
        let file = if self.cg.v2() {
            "memory.peak"
        } else {
            "memory.max_usage_in_bytes"
        };
        std::fs::read_to_string(dir.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Pids currently in the cgroup (any controller).
    pub fn pids(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        for f in self.procs_files() {
            if let Ok(s) = std::fs::read_to_string(&f) {
                pids.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
            }
        }
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// SIGKILLs every process in the cgroup.
    pub fn kill_all(&self) {
        if self.cg.v2() && self.cg.kill().is_ok() {
            return;
        }
        for pid in self.pids() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    /// Removes the cgroup; it must be empty.
    pub fn delete(&self) -> Result<(), SandboxError> {
        self.cg.delete().map_err(|e| err(&self.path, e))
    }
}

/// Reads the "oom_kill N" line of memory.oom_control (v1) or memory.events (v2).
fn parse_oom_kill(s: &str) -> Option<u64> {
    s.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_oom_kill_lines() {
        assert_eq!(
            parse_oom_kill("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"),
            Some(3)
        );
        assert_eq!(
            parse_oom_kill("low 0\nhigh 0\nmax 5\noom 2\noom_kill 2\noom_group_kill 0\n"),
            Some(2)
        );
        assert_eq!(parse_oom_kill("oom_kill_disable 0\n"), None);
    }
}
