//! What the namespace sandbox hides from the function, as container runtimes do:
//! a /sys that holds only the CPU topology (everything else of the host's sysfs,
//! /sys/kernel, /sys/firmware, /sys/module, devices and buses, is absent), /proc files
//! that leak kernel memory, keys, addresses or host hardware masked with /dev/null or
//! an empty read-only directory, /proc/sys read-only, and PID 1's command line (which
//! names host paths) replaced by "flint-init".

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::fs;
use std::path::{Path, PathBuf};

/// Errors masking /proc and /sys.
#[derive(Debug, thiserror::Error)]
pub enum MaskError {
    /// A mount-related system call failed
    #[error("{what} {path}: {source}")]
    Sys {
        /// The operation.
        what: &'static str,
        /// The path it was applied to.
        path: PathBuf,
        /// The error.
        source: nix::Error,
    },
    /// Creating, removing or reading a file or directory failed
    #[error("{path}: {source}")]
    File {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// /proc files masked with /dev/null: kernel memory and addresses, keys, timers and
/// scheduler internals, the kernel's configuration, and the magic SysRq trigger.
pub const PROC_FILES: [&str; 16] = [
    "kcore",
    "kallsyms",
    "kmsg",
    "kpagecount",
    "kpageflags",
    "kpagecgroup",
    "keys",
    "key-users",
    "latency_stats",
    "timer_list",
    "sched_debug",
    "sysrq-trigger",
    "config.gz",
    "modules",
    "vmallocinfo",
    "slabinfo",
];

/// /proc directories replaced by an empty read-only directory (host hardware and
/// drivers).
pub const PROC_DIRS: [&str; 7] = ["acpi", "asound", "scsi", "bus", "driver", "irq", "fs"];

/// The only part of the host's sysfs a sandbox sees (glibc, the JVM, Node and
/// Python count CPUs there).
pub const SYS_KEEP: &str = "devices/system/cpu";

fn sys(what: &'static str, path: &Path) -> impl FnOnce(nix::Error) -> MaskError {
    let path = path.to_path_buf();
    move |source| MaskError::Sys { what, path, source }
}

fn create(path: &Path) -> impl FnOnce(std::io::Error) -> MaskError {
    let path = path.to_path_buf();
    move |source| MaskError::File { path, source }
}

fn read_only_tmpfs(target: &Path) -> Result<(), MaskError> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(
        Some("tmpfs"),
        target,
        Some("tmpfs"),
        flags,
        Some("size=4k,mode=555"),
    )
    .map_err(sys("mounting tmpfs on", target))?;
    mount(
        None::<&str>,
        target,
        None::<&str>,
        flags | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        Some("size=4k,mode=555"),
    )
    .map_err(sys("remounting read-only", target))
}

/// Builds `sys` (the sandbox's /sys, before pivot_root) as a read-only tmpfs holding
/// only a read-only bind of the host's [`SYS_KEEP`] (and an empty /sys/fs/cgroup).
/// `own_netns`: the sandbox's user namespace owns its network namespace, so a fresh
/// sysfs may be mounted; otherwise (a namespace flintd made, which the kernel does
/// not let the sandbox mount sysfs for) [`SYS_KEEP`] is bound from the /sys the mount
/// namespace inherited (CPU topology only, the same files).
pub fn sys_tree(sys_dir: &Path, own_netns: bool) -> Result<(), MaskError> {
    let none = None::<&str>;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(
        Some("tmpfs"),
        sys_dir,
        Some("tmpfs"),
        flags,
        Some("size=64k,mode=755"),
    )
    .map_err(sys("mounting tmpfs on", sys_dir))?;
    let host = sys_dir.join(".host");
    let keep = sys_dir.join(SYS_KEEP);
    for d in [&host, &keep, &sys_dir.join("fs/cgroup")] {
        fs::create_dir_all(d).map_err(create(d))?;
    }
    // Where SYS_KEEP comes from: a fresh read-only sysfs on `.host` when the sandbox
    // may mount one, else the /sys this mount namespace inherited.
    let source = if own_netns {
        mount(
            Some("sysfs"),
            &host,
            Some("sysfs"),
            flags | MsFlags::MS_RDONLY,
            none,
        )
        .map_err(sys("mounting sysfs on", &host))?;
        host.clone()
    } else {
        Path::new("/sys").to_path_buf()
    };
    let from = source.join(SYS_KEEP);
    mount(
        Some(&from),
        &keep,
        none,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        none,
    )
    .map_err(sys("bind-mounting", &keep))?;
    mount(
        none,
        &keep,
        none,
        MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | flags,
        none,
    )
    .map_err(sys("remounting read-only", &keep))?;
    if own_netns {
        umount2(&host, MntFlags::MNT_DETACH).map_err(sys("detaching", &host))?;
    }
    fs::remove_dir(&host).map_err(create(&host))?;
    mount(
        none,
        sys_dir,
        none,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | flags,
        Some("size=64k,mode=755"),
    )
    .map_err(sys("remounting read-only", sys_dir))
}

/// Masks /proc (after pivot_root: `/dev/null` is the sandbox's own). Entries this
/// kernel does not have are skipped.
pub fn mask_proc() -> Result<(), MaskError> {
    let none = None::<&str>;
    let proc = Path::new("/proc");
    for name in PROC_FILES {
        let target = proc.join(name);
        if target.exists() {
            mount(Some("/dev/null"), &target, none, MsFlags::MS_BIND, none)
                .map_err(sys("masking", &target))?;
        }
    }
    for name in PROC_DIRS {
        let target = proc.join(name);
        if target.is_dir() {
            read_only_tmpfs(&target)?;
        }
    }
    let ps = proc.join("sys");
    mount(
        Some(&ps),
        &ps,
        none,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        none,
    )
    .map_err(sys("bind-mounting", &ps))?;
    mount(
        none,
        &ps,
        none,
        MsFlags::MS_REMOUNT
            | MsFlags::MS_BIND
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC,
        none,
    )
    .map_err(sys("remounting read-only", &ps))
}

/// What /proc/1/cmdline shows instead of the launcher's arguments.
const NAME: &[u8] = b"flint-init";

/// Overwrites this process's argument strings (what /proc/PID/cmdline reads: the
/// launcher's arguments name host paths) with "flint-init" and NUL bytes. The
/// environment area is left alone: only root and the process itself can read it.
pub fn hide_cmdline() -> Result<(), MaskError> {
    let stat =
        fs::read_to_string("/proc/self/stat").map_err(create(Path::new("/proc/self/stat")))?;
    let (start, end) = arg_area(&stat).ok_or(MaskError::Sys {
        what: "parsing arg_start/arg_end of",
        path: "/proc/self/stat".into(),
        source: nix::Error::EINVAL,
    })?;
    let len = end.saturating_sub(start);
    if len <= NAME.len() {
        return Ok(());
    }
    // SAFETY: [start, end) is this process's own argument area on its initial stack
    // (mapped read-write for the life of the process). Its strings were copied into
    // owned Strings at the start of main, and nothing reads them again.
    unsafe {
        let p = start as *mut u8;
        std::ptr::write_bytes(p, 0, len);
        std::ptr::copy_nonoverlapping(NAME.as_ptr(), p, NAME.len());
    }
    Ok(())
}

/// The arg_start and arg_end fields (48 and 49) of /proc/PID/stat.
fn arg_area(stat: &str) -> Option<(usize, usize)> {
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(48 - 3);
    let start = f.next()?.parse().ok()?;
    let end = f.next()?.parse().ok()?;
    Some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_argument_area_in_proc_stat() {
        let stat = fs::read_to_string("/proc/self/stat").unwrap();
        let (start, end) = arg_area(&stat).unwrap();
        let cmdline = fs::read("/proc/self/cmdline").unwrap();
        assert_eq!(end - start, cmdline.len());
    }

    /// The parsing alone (runs under qemu-user too, whose /proc/self is the emulator's).
    #[test]
    fn parses_the_argument_area_past_a_command_with_parentheses() {
        // Fields 4 to 47 are 1..=44; arg_start and arg_end follow.
        let fields: Vec<String> = (1..=44).map(|n| n.to_string()).collect();
        let odd = format!("1 (a b) c) S {} 100 200 300 400 0", fields.join(" "));
        assert_eq!(arg_area(&odd), Some((100, 200)));
    }
}
