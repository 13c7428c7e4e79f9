//! The namespace sandbox's file system, built inside a fresh mount namespace: the
//! image directory as the new root (a read-only overlay whose layers are named by
//! relative paths, so /proc/self/mountinfo shows no host path; never written to),
//! /proc (masked, [`crate::sandbox_mask`]), a /sys with only the CPU topology, a small
//! read-only /dev with the harmless device nodes and /dev/shm pointing into /tmp (so
//! shared memory counts against the /tmp budget), then pivot_root and a read-only
//! remount of /. Nothing of this is visible on the host. Host directories given to
//! the sandbox (file-event triggers) are bind-mounted read-only under a small
//! read-only tmpfs on /mnt.

use crate::sandbox_mask;
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
    /// Masking /proc or building /sys failed
    #[error(transparent)]
    Mask(#[from] sandbox_mask::MaskError),
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
/// `resolv`: a file bind-mounted read-only over the image's /etc/resolv.conf
/// (networked sandboxes).
pub fn setup(
    rootfs: &Path,
    hostname: &str,
    resolv: Option<&Path>,
    ro_binds: &[(PathBuf, PathBuf)],
) -> Result<(), FsError> {
    let none = None::<&str>;
    do_mount(
        none,
        Path::new("/"),
        none,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        none,
        "making mounts private",
    )?;
    overlay_root(rootfs)?;
    if let Some(file) = resolv {
        let target = rootfs.join("etc/resolv.conf");
        mount(Some(file), &target, none, MsFlags::MS_BIND, none)
            .map_err(sys("bind-mounting resolv.conf on", &target))?;
        do_mount(
            none,
            &target,
            none,
            MsFlags::MS_REMOUNT
                | MsFlags::MS_BIND
                | MsFlags::MS_RDONLY
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV
                | MsFlags::MS_NOEXEC,
            none,
            "remounting read-only",
        )?;
    }
    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    do_mount(
        Some("proc"),
        &rootfs.join("proc"),
        Some("proc"),
        nosuid_nodev_noexec,
        none,
        "mounting proc on",
    )?;
    sandbox_mask::sys_tree(&rootfs.join("sys"), resolv.is_none())?;
    if !ro_binds.is_empty() {
        bind_read_only(rootfs, ro_binds)?;
    }
    populate_dev(&rootfs.join("dev"))?;
    pivot(rootfs)?;
    sandbox_mask::mask_proc()?;
    nix::unistd::sethostname(hostname).map_err(sys("sethostname", Path::new(hostname)))?;
    Ok(())
}

/// Mounts the image read-only over itself as an overlay of two lower layers given
/// relative to the image directory: the image (".") and an empty tmpfs mounted on its
/// "dev" (an overlay without an upper layer needs two). Mountinfo then shows
/// "lowerdir=.:dev" and root "/", not the image's host path. The tmpfs stays behind
/// on the host side of the tree and goes with the old root after pivot_root.
fn overlay_root(rootfs: &Path) -> Result<(), FsError> {
    let empty = rootfs.join("dev");
    do_mount(
        Some("tmpfs"),
        &empty,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY,
        Some("size=4k,mode=755"),
        "mounting tmpfs on",
    )?;
    nix::unistd::chdir(rootfs).map_err(sys("chdir", rootfs))?;
    do_mount(
        Some("overlay"),
        rootfs,
        Some("overlay"),
        MsFlags::MS_RDONLY | MsFlags::MS_NODEV,
        Some("lowerdir=.:dev"),
        "mounting the image overlay on",
    )
}

/// Mounts a tmpfs on the image's /mnt, makes each bind's mount point in it, binds the
/// host directories read-only (nosuid, nodev, noexec) and makes the tmpfs read-only.
/// `binds` were checked to be absolute, under /mnt and without `..`.
fn bind_read_only(rootfs: &Path, binds: &[(PathBuf, PathBuf)]) -> Result<(), FsError> {
    let none = None::<&str>;
    let mnt = rootfs.join("mnt");
    let locked = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    do_mount(
        Some("tmpfs"),
        &mnt,
        Some("tmpfs"),
        locked,
        Some("size=64k,mode=755"),
        "mounting tmpfs on",
    )?;
    for (host, guest) in binds {
        let target = rootfs.join(guest.strip_prefix("/").unwrap_or(guest));
        fs::create_dir_all(&target).map_err(create(&target))?;
        mount(Some(host.as_path()), &target, none, MsFlags::MS_BIND, none)
            .map_err(sys("bind-mounting a watched directory on", &target))?;
        do_mount(
            none,
            &target,
            none,
            MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | locked,
            none,
            "remounting read-only",
        )?;
    }
    do_mount(
        none,
        &mnt,
        none,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | locked,
        Some("size=64k,mode=755"),
        "remounting read-only",
    )
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
    // POSIX shared memory and semaphores (Python's multiprocessing) live in /tmp and
    // count against its size, Lambda's only writable storage.
    let shm = dev.join("shm");
    symlink("/tmp", &shm).map_err(create(&shm))?;
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
