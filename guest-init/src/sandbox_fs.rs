//! The namespace sandbox's file system, built inside a fresh mount namespace: the
//! image directory bind-mounted as the new root (never written to), /proc, read-only
//! /sys, a small /dev with the harmless device nodes, /dev/shm, then pivot_root and a
//! read-only remount of /. Nothing of this is visible on the host.

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

/// Device nodes bind-mounted from the host into the sandbox's /dev.
pub const DEVICES: [&str; 5] = ["null", "zero", "full", "random", "urandom"];

/// Errors building the sandbox file system.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
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
    /// Creating a file, directory or link in the sandbox's /dev failed
    #[error("creating {path}: {source}")]
    Create {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn sys(what: &'static str, path: &Path) -> impl FnOnce(nix::Error) -> FsError {
    let path = path.to_path_buf();
    move |source| FsError::Sys { what, path, source }
}

fn create(path: &Path) -> impl FnOnce(std::io::Error) -> FsError {
    let path = path.to_path_buf();
    move |source| FsError::Create { path, source }
}

fn do_mount(
    src: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
    what: &'static str,
) -> Result<(), FsError> {
    mount(src, target, fstype, flags, data).map_err(sys(what, target))
}

/// Turns `rootfs` into the root of the current (already unshared) mount namespace.
pub fn setup(rootfs: &Path, hostname: &str) -> Result<(), FsError> {
    let none = None::<&str>;
    do_mount(
        none,
        Path::new("/"),
        none,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        none,
        "making mounts private",
    )?;
    mount(
        Some(rootfs),
        rootfs,
        none,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        none,
    )
    .map_err(sys("bind-mounting the root", rootfs))?;
    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    do_mount(
        Some("proc"),
        &rootfs.join("proc"),
        Some("proc"),
        nosuid_nodev_noexec,
        none,
        "mounting proc on",
    )?;
    do_mount(
        Some("sysfs"),
        &rootfs.join("sys"),
        Some("sysfs"),
        nosuid_nodev_noexec | MsFlags::MS_RDONLY,
        none,
        "mounting sysfs on",
    )?;
    populate_dev(&rootfs.join("dev"))?;
    pivot(rootfs)?;
    nix::unistd::sethostname(hostname).map_err(sys("sethostname", Path::new(hostname)))?;
    Ok(())
}

fn populate_dev(dev: &Path) -> Result<(), FsError> {
    let none = None::<&str>;
    do_mount(
        Some("tmpfs"),
        dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("size=64k,mode=755"),
        "mounting tmpfs on",
    )?;
    for name in DEVICES {
        let target = dev.join(name);
        fs::File::create(&target).map_err(create(&target))?;
        let host = Path::new("/dev").join(name);
        mount(Some(&host), &target, none, MsFlags::MS_BIND, none)
            .map_err(sys("bind-mounting a device on", &target))?;
    }
    for (name, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let link = dev.join(name);
        symlink(to, &link).map_err(create(&link))?;
    }
    let shm = dev.join("shm");
    fs::create_dir(&shm).map_err(create(&shm))?;
    do_mount(
        Some("tmpfs"),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("size=64m,mode=1777"),
        "mounting tmpfs on",
    )?;
    // /dev itself stays as it is now: read-only from here on.
    do_mount(
        none,
        dev,
        none,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("size=64k,mode=755"),
        "remounting read-only",
    )
}

fn pivot(rootfs: &Path) -> Result<(), FsError> {
    nix::unistd::chdir(rootfs).map_err(sys("chdir", rootfs))?;
    let dot = Path::new(".");
    nix::unistd::pivot_root(dot, dot).map_err(sys("pivot_root", rootfs))?;
    umount2(dot, MntFlags::MNT_DETACH).map_err(sys("detaching the old root", dot))?;
    let root = Path::new("/");
    nix::unistd::chdir(root).map_err(sys("chdir", root))?;
    do_mount(
        None,
        root,
        None,
        MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY,
        None,
        "remounting read-only",
    )
}
