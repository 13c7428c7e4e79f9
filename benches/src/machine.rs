//! The machine a run measured: CPU, cores, memory, kernel, OS and the date, read from
//! /proc and /etc so that results.json says where its numbers come from.

use serde::Serialize;
use std::time::{SystemTime, UNIX_EPOCH};

/// Description of the host.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpu_model: String,
    pub cores: usize,
    pub memory_mib: u64,
    pub kernel: String,
    pub os: String,
    /// /dev/kvm's provider as far as it can be told (`kvm_pvm` means nested, no hardware KVM).
    pub kvm: String,
    /// UTC date and time of the run, RFC 3339.
    pub date: String,
}

impl Machine {
    /// Reads the description of this machine now.
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let os = std::fs::read_to_string("/etc/os-release")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_else(|| "unknown".into());
        let kvm = if !std::path::Path::new("/dev/kvm").exists() {
            "none".to_string()
        } else if std::path::Path::new("/sys/module/kvm_pvm").exists() {
            "kvm_pvm (nested paging hypervisor, no hardware KVM)".to_string()
        } else {
            "kvm".to_string()
        };
        Machine {
            cpu_model,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_mib: meminfo_kib("MemTotal").unwrap_or(0) / 1024,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".into()),
            os,
            kvm,
            date: rfc3339_now(),
        }
    }
}

/// A field of /proc/meminfo in KiB.
pub fn meminfo_kib(field: &str) -> Option<u64> {
    std::fs::read_to_string("/proc/meminfo")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':').map(str::to_owned))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Today's date (UTC) as YYYY-MM-DD.
pub fn today() -> String {
    rfc3339_now()[..10].to_string()
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format_utc(secs)
}

/// Formats seconds since the Unix epoch as an RFC 3339 UTC timestamp.
fn format_utc(secs: u64) -> String {
    flint_agent::timefmt::rfc3339_secs(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc(1_798_761_599), "2026-12-31T23:59:59Z");
    }

    #[test]
    fn this_machine_has_cores_and_memory() {
        let m = Machine::detect();
        assert!(m.cores >= 1);
        assert!(m.memory_mib > 0, "MemTotal not read from /proc/meminfo");
        assert!(meminfo_kib("MemAvailable").is_some());
    }
}
