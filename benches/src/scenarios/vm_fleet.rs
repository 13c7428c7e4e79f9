//! Many flint-vmm processes at once, for the snapshot scenario's sharing measurement:
//! start them, wait until each guest has made two passes over its data (two serial
//! bytes), read every VM's `/proc/PID/smaps_rollup`, then kill and reap them all.

use super::ScenarioError;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn err(what: impl Into<String>) -> ScenarioError {
    ScenarioError::Unexpected(what.into())
}

/// VMs that are killed and reaped on drop.
struct Fleet(Vec<Child>);

impl Drop for Fleet {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
        }
        for c in &mut self.0 {
            let _ = c.wait();
        }
    }
}

/// One VM's smaps_rollup figures (KiB).
#[derive(Default, Clone, Copy)]
pub struct Rollup {
    pub rss: u64,
    pub pss: u64,
    pub private_dirty: u64,
}

fn rollup(pid: u32) -> Result<Rollup, ScenarioError> {
    let path = format!("/proc/{pid}/smaps_rollup");
    let text = std::fs::read_to_string(&path).map_err(|e| err(format!("{path}: {e}")))?;
    let mut r = Rollup::default();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(k), Some(v)) = (it.next(), it.next()) else {
            continue;
        };
        let v: u64 = v.parse().unwrap_or(0);
        match k {
            "Rss:" => r.rss = v,
            "Pss:" => r.pss = v,
            "Private_Dirty:" => r.private_dirty = v,
            _ => {}
        }
    }
    Ok(r)
}

/// Starts one VM per argument list, waits until each serial log has two bytes (two passes
/// over its data), and reads every VM's smaps_rollup while all still run.
pub fn run_together(
    vmm: &Path,
    runs: &[(Vec<OsString>, PathBuf)],
) -> Result<Vec<Rollup>, ScenarioError> {
    let mut fleet = Fleet(Vec::new());
    for (args, _) in runs {
        let c = Command::new(vmm)
            .args(args)
            .env("FLINT_VMM_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| err(format!("start {}: {e}", vmm.display())))?;
        fleet.0.push(c);
    }
    let t0 = Instant::now();
    let deadline = Duration::from_secs(120);
    loop {
        let done = runs
            .iter()
            .filter(|(_, log)| std::fs::metadata(log).is_ok_and(|m| m.len() >= 2))
            .count();
        if done == runs.len() {
            break;
        }
        if let Some(i) = fleet
            .0
            .iter_mut()
            .position(|c| c.try_wait().ok().flatten().is_some())
        {
            return Err(err(format!(
                "VM {i} of {} ended before two passes",
                runs.len()
            )));
        }
        if t0.elapsed() > deadline {
            return Err(err(format!(
                "only {done} of {} VMs made two passes over their data within {deadline:?}",
                runs.len()
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    fleet.0.iter().map(|c| rollup(c.id())).collect()
}

pub fn mem_available_mib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib / 1024)
}
