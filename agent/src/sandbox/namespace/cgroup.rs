//! The cgroup of one sandbox: memory cap, process limit, CPU quota in proportion to
//! memory ([`super::cpu`]) and the freezer, on cgroup v1 or v2 (detected by cgroups-rs
//! at start-up). flint-init joins it by writing its own pid into every `cgroup.procs`
//! listed by [`SandboxCgroup::procs_files`] (one write after another: only the first
//! waits for the kernel's RCU grace period).

use super::super::SandboxError;
use super::cpu::CpuQuota;
use cgroups_rs::fs::{hierarchies, Cgroup, MaxValue, Subsystem};
use std::path::{Path, PathBuf};

/// The v1 hierarchies a sandbox joins (cpuacct for its CPU usage, freezer to stop it
/// between invocations).
pub(super) const CONTROLLERS: [&str; 5] = ["memory", "pids", "cpu", "cpuacct", "freezer"];
/// The v2 controllers enabled for a sandbox (the freezer is core v2: `cgroup.freeze`;
/// CPU usage is in `cpu.stat`).
const CONTROLLERS_V2: [&str; 3] = ["memory", "pids", "cpu"];

/// One sandbox's cgroup (one directory per controller on v1, one on v2).
pub struct SandboxCgroup {
    cg: Cgroup,
    path: String,
    cpu: CpuQuota,
}

fn err(path: &str, e: impl std::fmt::Display) -> SandboxError {
    SandboxError::Cgroup {
        path: path.to_string(),
        message: e.to_string(),
    }
}

impl SandboxCgroup {
    /// Creates `parent/id` with `memory_mb` MB of memory, `pids` processes at most and
    /// the CPU weight of `cpu`; its quota waits for [`limit_cpu`](Self::limit_cpu).
    pub fn create(
        parent: &str,
        id: &str,
        memory_mb: u32,
        pids: u64,
        cpu: CpuQuota,
    ) -> Result<Self, SandboxError> {
        let path = format!("{parent}/{id}");
        let limit = i64::from(memory_mb) * 1024 * 1024;
        let hier = hierarchies::auto();
        let names: &[&str] = if hier.v2() {
            &CONTROLLERS_V2
        } else {
            &CONTROLLERS
        };
        let cg = cgroups_rs::fs::cgroup_builder::CgroupBuilder::new(&path)
            .set_specified_controllers(names.iter().map(|s| s.to_string()).collect())
            .memory()
            .memory_hard_limit(limit)
            .done()
            .pid()
            .maximum_number_of_processes(MaxValue::Value(pids as i64))
            .done()
            .build(hier)
            .map_err(|e| err(&path, e))?;
        let me = Self { cg, path, cpu };
        if me.procs_files().len() != CONTROLLERS.len() && !me.cg.v2() {
            let _ = me.cg.delete();
            return Err(err(
                &me.path,
                "the memory, pids, cpu, cpuacct and freezer controllers are required",
            ));
        }
        if let Err(e) = me.set_cpu_weight() {
            let _ = me.cg.delete();
            return Err(e);
        }
        Ok(me)
    }

    /// True on a cgroup v2 hierarchy.
    pub fn v2(&self) -> bool {
        self.cg.v2()
    }

    /// Gives a parked cgroup ([`super::parked`]) its sandbox's name `parent/id`: on v1
    /// a rename of its directory in each hierarchy (within the same parent: no process
    /// moves, no RCU wait). cgroup v2 cannot rename a cgroup.
    pub fn rename(&mut self, parent: &str, id: &str) -> Result<(), SandboxError> {
        if self.cg.v2() {
            return Err(err(&self.path, "cgroup v2 cannot rename a cgroup"));
        }
        let path = format!("{parent}/{id}");
        for dir in self.dirs() {
            let to = dir.with_file_name(id);
            std::fs::rename(&dir, &to).map_err(|e| {
                err(
                    &self.path,
                    format!("renaming {} to {id}: {e}", dir.display()),
                )
            })?;
        }
        self.cg = Cgroup::load_with_specified_controllers(
            hierarchies::auto(),
            &path,
            CONTROLLERS.iter().map(|s| s.to_string()).collect(),
        );
        self.path = path;
        Ok(())
    }

    /// Sets the memory cap and the CPU weight of a sandbox of `memory_mb` (a parked
    /// cgroup gets its sandbox's values here, before the sandbox's code runs).
    pub fn set_limits(&mut self, memory_mb: u32) -> Result<(), SandboxError> {
        let bytes = (u64::from(memory_mb) * 1024 * 1024).to_string();
        if self.cg.v2() {
            self.write("memory", "memory.max", &bytes)?;
        } else {
            self.write("memory", "memory.limit_in_bytes", &bytes)?;
        }
        self.cpu = CpuQuota::for_memory(memory_mb);
        self.set_cpu_weight()
    }

    /// The cgroup's directories (one per hierarchy on v1).
    fn dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self
            .cg
            .subsystems()
            .iter()
            .map(|s| s.to_controller().path().to_path_buf())
            .collect();
        dirs.sort();
        dirs.dedup();
        dirs
    }

    /// The directory of controller `name` ("memory", "cpu", ...; on v2 the one directory).
    fn dir(&self, name: &str) -> Option<PathBuf> {
        self.cg.subsystems().iter().find_map(|s| {
            let c = s.to_controller();
            (s.controller_name() == name).then(|| c.path().to_path_buf())
        })
    }

    fn write(&self, controller: &str, file: &str, value: &str) -> Result<(), SandboxError> {
        let dir = self
            .dir(controller)
            .ok_or_else(|| err(&self.path, format!("no {controller} controller")))?;
        write_file(&dir.join(file), value).map_err(|e| err(&self.path, e))
    }

    /// The weight (and on v1 the period) of the CPU share, set at creation.
    fn set_cpu_weight(&self) -> Result<(), SandboxError> {
        if self.cg.v2() {
            self.write("cpu", "cpu.weight", &self.cpu.weight().to_string())
        } else {
            self.write("cpu", "cpu.shares", &self.cpu.shares().to_string())?;
            self.write("cpu", "cpu.cfs_period_us", &self.cpu.period_us.to_string())
        }
    }

    /// Applies the CPU quota in proportion to memory. Until then (sandbox start-up,
    /// flint-init, the runtime's init) the sandbox runs unthrottled, like Lambda's
    /// init phase.
    pub fn limit_cpu(&self) -> Result<(), SandboxError> {
        if self.cg.v2() {
            self.write("cpu", "cpu.max", &self.cpu.cpu_max())
        } else {
            self.write("cpu", "cpu.cfs_quota_us", &self.cpu.quota_us.to_string())
        }
    }

    /// Thaws the sandbox and removes its CPU quota, before it is killed: a frozen
    /// process dies only once thawed (v1), and a killed process in a throttled
    /// cgroup shares 0.07 vCPU with everything else there (a fork bomb's thousand
    /// processes) before it can exit.
    pub fn release(&self) {
        let _ = self.thaw();
        let _ = if self.cg.v2() {
            self.write("cpu", "cpu.max", "max")
        } else {
            self.write("cpu", "cpu.cfs_quota_us", "-1")
        };
    }

    /// Stops every process in the sandbox (they stay in memory, using no CPU) until
    /// [`thaw`](Self::thaw).
    pub fn freeze(&self) -> Result<(), SandboxError> {
        self.set_frozen(true)
    }

    /// Lets the processes of a frozen sandbox run again.
    pub fn thaw(&self) -> Result<(), SandboxError> {
        self.set_frozen(false)
    }

    fn set_frozen(&self, frozen: bool) -> Result<(), SandboxError> {
        if self.cg.v2() {
            // One directory for every controller on v2.
            self.write("memory", "cgroup.freeze", if frozen { "1" } else { "0" })
        } else {
            let v = if frozen { "FROZEN" } else { "THAWED" };
            self.write("freezer", "freezer.state", v)
        }
    }

    /// CPU time used by everything in the sandbox so far, in nanoseconds
    /// (cpuacct.usage on v1, usage_usec of cpu.stat on v2).
    pub fn cpu_usage_ns(&self) -> Option<u64> {
        if self.cg.v2() {
            let s = std::fs::read_to_string(self.dir("cpu")?.join("cpu.stat")).ok()?;
            parse_usage_usec(&s).map(|us| us * 1000)
        } else {
            std::fs::read_to_string(self.dir("cpuacct")?.join("cpuacct.usage"))
                .ok()?
                .trim()
                .parse()
                .ok()
        }
    }

    /// The relative cgroup path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The `cgroup.procs` files a process writes its pid to, to join.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs()
            .into_iter()
            .map(|d| d.join("cgroup.procs"))
            .collect()
    }

    fn memory_dir(&self) -> Option<PathBuf> {
        self.cg.subsystems().iter().find_map(|s| match s {
            Subsystem::Mem(m) => Some(cgroups_rs::fs::Controller::path(m).to_path_buf()),
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

    /// SIGKILLs every process in the cgroup, after [`release`](Self::release).
    pub fn kill_all(&self) {
        self.release();
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

/// Writes `value` to a cgroup file (which must exist: no create, no truncate).
fn write_file(path: &Path, value: &str) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// Reads the "usage_usec N" line of cpu.stat (v2).
fn parse_usage_usec(s: &str) -> Option<u64> {
    s.lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .and_then(|n| n.trim().parse().ok())
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

    #[test]
    fn parses_cpu_stat_usage() {
        assert_eq!(
            parse_usage_usec("usage_usec 1234\nuser_usec 1000\nsystem_usec 234\n"),
            Some(1234)
        );
        assert_eq!(parse_usage_usec("nr_periods 0\n"), None);
    }
}
