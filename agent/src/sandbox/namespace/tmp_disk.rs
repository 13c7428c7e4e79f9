//! The namespace sandbox's /tmp as Lambda's ephemeral storage: disk, not memory. Per
//! sandbox, a sparse file copied from a per-size ext4 template (made once with
//! mkfs.ext4, in `<data>/ephemeral/`) is attached to a loop device (auto-clear,
//! direct I/O) and unlinked at once, then mounted as a detached mount (nosuid,
//! nodev) whose descriptor flint-init attaches at /tmp. The function gets ENOSPC at
//! its size; its files are charged to the host disk, not to its memory cgroup.
//!
//! Nothing is left behind: the mount lives only inside the sandbox's mount
//! namespace (or, for the few disks kept ready ahead ([`STOCK`] per size, so a cold
//! start takes one instead of paying for it), in flintd's descriptors, which close
//! when flintd exits), the loop device detaches itself when that goes (auto-clear), and its
//! backing file has no name. A crash between two steps leaves at most a named image
//! file, removed by [`TmpDisks::new`] at start-up, which also asks the kernel to
//! detach any loop device still backed by a file of this directory.

use super::mount_api::{self, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID};
use super::own_cwd;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LO_FLAGS_DIRECT_IO: u32 = 16;
/// Bytes per inode of the file system: few, large files are the common case.
const BYTES_PER_INODE: &str = "65536";
const MIB: u64 = 1024 * 1024;
/// Disks kept ready per size.
pub const STOCK: usize = 2;

/// Errors making a sandbox's /tmp.
#[derive(Debug, thiserror::Error)]
pub enum TmpDiskError {
    /// mkfs.ext4 failed or could not run
    #[error(
        "making the ext4 template for a {mb} MB /tmp with mkfs.ext4 (install e2fsprogs): {detail}"
    )]
    Mkfs { mb: u32, detail: String },
    /// A file, loop-device or mount step failed
    #[error("{what} for the sandbox's /tmp: {source}")]
    Io {
        what: &'static str,
        source: io::Error,
    },
}

fn io(what: &'static str) -> impl FnOnce(io::Error) -> TmpDiskError {
    move |source| TmpDiskError::Io { what, source }
}

/// Makes disk-backed /tmp file systems for sandboxes.
#[derive(Debug)]
pub struct TmpDisks {
    dir: PathBuf,
    /// Template image per size in MB.
    templates: Mutex<HashMap<u32, PathBuf>>,
    /// Disks made ahead, per size, and whether a refill runs for that size.
    stock: Mutex<HashMap<u32, (Vec<OwnedFd>, bool)>>,
}

#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

impl TmpDisks {
    /// Uses (creating) `dir`; removes image files and templates an earlier run left
    /// and detaches loop devices still backed by them.
    pub fn new(dir: &Path) -> Self {
        let swept = sweep(dir);
        if swept > 0 {
            tracing::info!(swept, dir = %dir.display(), "removed /tmp images left by an earlier run");
        }
        if let Err(e) = std::fs::create_dir_all(dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot create the /tmp image directory");
        }
        Self {
            dir: dir.to_path_buf(),
            templates: Mutex::default(),
            stock: Mutex::default(),
        }
    }

    /// A /tmp of `mb` MB for sandbox `id`: one made ahead when there is one, else
    /// made now; either way the stock of that size is refilled in the background.
    /// Blocking.
    pub fn take(self: &Arc<Self>, id: &str, mb: u32) -> Result<OwnedFd, TmpDiskError> {
        let ready = {
            let mut stock = self.stock.lock().unwrap_or_else(|p| p.into_inner());
            let (disks, refilling) = stock.entry(mb).or_default();
            let ready = disks.pop();
            let start = !*refilling;
            *refilling = true;
            (ready, start)
        };
        if ready.1 {
            let me = self.clone();
            let spawned = std::thread::Builder::new()
                .name("flint-tmp-disks".into())
                .spawn(move || me.refill(mb));
            if spawned.is_err() {
                self.set_refilling(mb, false);
            }
        }
        match ready.0 {
            Some(disk) => Ok(disk),
            None => self.make(id, mb),
        }
    }

    fn set_refilling(&self, mb: u32, on: bool) {
        let mut stock = self.stock.lock().unwrap_or_else(|p| p.into_inner());
        stock.entry(mb).or_default().1 = on;
    }

    /// Makes disks of `mb` MB until [`STOCK`] are ready.
    fn refill(&self, mb: u32) {
        loop {
            let have = {
                let stock = self.stock.lock().unwrap_or_else(|p| p.into_inner());
                stock.get(&mb).map_or(0, |(d, _)| d.len())
            };
            if have >= STOCK {
                break;
            }
            let id = format!("stock-{}", uuid::Uuid::new_v4().simple());
            match self.make(&id, mb) {
                Ok(disk) => {
                    let mut stock = self.stock.lock().unwrap_or_else(|p| p.into_inner());
                    stock.entry(mb).or_default().0.push(disk);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "no /tmp disk made ahead");
                    break;
                }
            }
        }
        self.set_refilling(mb, false);
    }

    /// Closes the disks made ahead (their loop devices detach).
    pub fn drain(&self) {
        self.stock.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// The image size for a /tmp of `mb` MB usable: the file system's own metadata
    /// on top (about 1% with one inode per 64 KiB, plus a fixed part).
    fn image_bytes(mb: u32) -> u64 {
        let usable = u64::from(mb) * MIB;
        usable + usable / 64 + 8 * MIB
    }

    fn template(&self, mb: u32) -> Result<PathBuf, TmpDiskError> {
        let mut templates = self.templates.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = templates.get(&mb) {
            return Ok(p.clone());
        }
        let path = self.dir.join(format!("template-{mb}.ext4"));
        let tmp = self.dir.join(format!(".template-{mb}.ext4"));
        let file = File::create(&tmp).map_err(io("creating the template"))?;
        file.set_len(Self::image_bytes(mb))
            .map_err(io("sizing the template"))?;
        drop(file);
        let out = std::process::Command::new("mkfs.ext4")
            .args([
                "-q",
                "-F",
                "-m",
                "0",
                "-i",
                BYTES_PER_INODE,
                "-O",
                "^has_journal",
            ])
            .args(["-E", "lazy_itable_init=1,nodiscard", "-L", "tmp"])
            .arg(&tmp)
            .output()
            .map_err(|e| TmpDiskError::Mkfs {
                mb,
                detail: e.to_string(),
            })?;
        if !out.status.success() {
            let _ = std::fs::remove_file(&tmp);
            return Err(TmpDiskError::Mkfs {
                mb,
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        std::fs::rename(&tmp, &path).map_err(io("naming the template"))?;
        templates.insert(mb, path.clone());
        Ok(path)
    }

    /// A new, empty /tmp of `mb` MB for sandbox `id`, as a detached mount (mode 1777,
    /// nosuid, nodev). Blocking (the first use of a size runs mkfs.ext4).
    pub fn make(&self, id: &str, mb: u32) -> Result<OwnedFd, TmpDiskError> {
        let template = self.template(mb)?;
        let image = self.dir.join(format!("{id}.img"));
        let made = copy_sparse(&template, &image).map_err(io("copying the template"));
        let attached = made.and_then(|()| attach_loop(&image));
        // The loop device holds the file open: its name is no longer needed.
        let _ = std::fs::remove_file(&image);
        let (loop_fd, dev) = attached?;
        let tree = mount_named(&self.dir, id, &dev).map_err(io("mounting the ext4 file system"));
        // The mount (if any) holds the device now; closing ours arms auto-clear.
        drop(loop_fd);
        let tree = tree?;
        let root = open_root(&tree).map_err(io("opening the /tmp root"))?;
        use std::os::unix::fs::PermissionsExt;
        root.set_permissions(std::fs::Permissions::from_mode(0o1777))
            .map_err(io("setting /tmp's mode"))?;
        Ok(tree)
    }
}

/// Prefix of the directory holding the neutral name of a device being mounted.
const NAME_PREFIX: &str = ".name-";
/// The source a sandbox sees for its /tmp in mountinfo.
const SOURCE: &std::ffi::CStr = c"tmp";

/// Mounts the ext4 file system on the loop device `dev` with the source `tmp`
/// rather than `/dev/loopN` (which mountinfo inside the sandbox would show): the
/// kernel looks the device up by the name it is given, here a symbolic link `tmp`
/// in a directory of its own under `dir`, made the working directory of the thread
/// that mounts ([`own_cwd`]). The link and its directory go once it is mounted.
fn mount_named(dir: &Path, id: &str, dev: &Path) -> io::Result<OwnedFd> {
    let names = dir.join(format!("{NAME_PREFIX}{id}"));
    std::fs::create_dir(&names)?;
    let link = names.join(SOURCE.to_str().unwrap_or("tmp"));
    // noinit_itable: no background thread zeroing the inode tables (about 2 MB per
    // disk written to the data directory's file system after every start); the
    // disk lives as long as its sandbox and is never checked, so they stay
    // uninitialised as mkfs's lazy_itable_init left them.
    let tree = std::os::unix::fs::symlink(dev, &link).and_then(|()| {
        own_cwd::in_dir(&names, || {
            mount_api::mount_fs(
                c"ext4",
                SOURCE,
                &[(c"noinit_itable", None)],
                MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
            )
        })
    });
    let _ = std::fs::remove_file(&link);
    let _ = std::fs::remove_dir(&names);
    tree
}

/// The root directory of a detached mount.
fn open_root(tree: &OwnedFd) -> io::Result<File> {
    File::open(format!("/proc/self/fd/{}", tree.as_raw_fd()))
}

/// Copies `from` to a new file `to` of the same length, writing only its data
/// extents (the rest stays a hole).
fn copy_sparse(from: &Path, to: &Path) -> io::Result<()> {
    let mut src = File::open(from)?;
    let len = src.metadata()?.len();
    let mut dst = OpenOptions::new().write(true).create_new(true).open(to)?;
    dst.set_len(len)?;
    let fd = src.as_raw_fd();
    let mut pos: i64 = 0;
    let mut buf = vec![0u8; 1 << 20];
    while (pos as u64) < len {
        // SAFETY: plain lseek on an open descriptor.
        let data = unsafe { libc::lseek(fd, pos, libc::SEEK_DATA) };
        if data < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENXIO) {
                break; // no data after pos
            }
            return Err(e);
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        if hole < 0 {
            return Err(io::Error::last_os_error());
        }
        src.seek(SeekFrom::Start(data as u64))?;
        dst.seek(SeekFrom::Start(data as u64))?;
        let mut left = (hole - data) as u64;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            src.read_exact(&mut buf[..n])?;
            dst.write_all(&buf[..n])?;
            left -= n as u64;
        }
        pos = hole;
    }
    Ok(())
}

/// Attaches `image` to a free loop device (auto-clear; direct I/O when the file
/// system allows it); returns the device's descriptor and path.
fn attach_loop(image: &Path) -> Result<(OwnedFd, PathBuf), TmpDiskError> {
    let backing = OpenOptions::new()
        .read(true)
        .write(true)
        .open(image)
        .map_err(io("opening the image"))?;
    let control = File::open("/dev/loop-control").map_err(io("opening /dev/loop-control"))?;
    for _ in 0..16 {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number.
        let n = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE) };
        if n < 0 {
            return Err(io("finding a free loop device")(io::Error::last_os_error()));
        }
        let dev = PathBuf::from(format!("/dev/loop{n}"));
        let fd: OwnedFd = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&dev)
            .map_err(io("opening the loop device"))?
            .into();
        for flags in [LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO, LO_FLAGS_AUTOCLEAR] {
            let mut cfg = LoopConfig {
                fd: backing.as_raw_fd() as u32,
                block_size: 0,
                // SAFETY: an all-zero loop_info64 is valid (plain integers and arrays).
                info: unsafe { std::mem::zeroed() },
                reserved: [0; 8],
            };
            cfg.info.lo_flags = flags;
            let name = image.as_os_str().as_encoded_bytes();
            let k = name.len().min(63);
            cfg.info.lo_file_name[..k].copy_from_slice(&name[..k]);
            // SAFETY: `cfg` is a valid loop_config for the duration of the call.
            let rc =
                unsafe { libc::ioctl(fd.as_raw_fd(), LOOP_CONFIGURE, &cfg as *const LoopConfig) };
            if rc == 0 {
                return Ok((fd, dev));
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                // Direct I/O not possible on this file system: try without.
                Some(libc::EINVAL) if flags & LO_FLAGS_DIRECT_IO != 0 => continue,
                // Taken by someone else between GET_FREE and CONFIGURE: next one.
                Some(libc::EBUSY) => break,
                _ => return Err(io("configuring the loop device")(e)),
            }
        }
    }
    Err(io("finding a free loop device")(io::Error::from(
        io::ErrorKind::ResourceBusy,
    )))
}

/// Removes image files (and device names) in `dir` and detaches (or marks for auto-clear, when still
/// mounted) loop devices backed by files there; returns how many things it removed.
pub fn sweep(dir: &Path) -> usize {
    let mut n = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name();
            let removed = if name.as_encoded_bytes().starts_with(NAME_PREFIX.as_bytes()) {
                std::fs::remove_dir_all(e.path())
            } else {
                std::fs::remove_file(e.path())
            };
            if removed.is_ok() {
                n += 1;
            }
        }
    }
    for dev in loop_devices_backed_under(dir) {
        if let Ok(f) = OpenOptions::new().read(true).open(&dev) {
            // SAFETY: LOOP_CLR_FD takes no argument; on a device still in use it only
            // sets auto-clear, so the device goes when its last user does.
            if unsafe { libc::ioctl(f.as_raw_fd(), LOOP_CLR_FD, 0) } == 0 {
                n += 1;
            }
        }
    }
    n
}

/// Loop devices whose backing file is in `dir`.
pub fn loop_devices_backed_under(dir: &Path) -> Vec<PathBuf> {
    let mut prefix = dir.as_os_str().as_encoded_bytes().to_vec();
    prefix.push(b'/');
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/sys/block") else {
        return found;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        if !name.as_encoded_bytes().starts_with(b"loop") {
            continue;
        }
        if let Ok(backing) = std::fs::read(e.path().join("loop/backing_file")) {
            if backing.starts_with(&prefix) {
                found.push(Path::new("/dev").join(&name));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disks_are_kept_ready_and_closed_on_drain() {
        let dir = tempfile::tempdir().unwrap();
        let disks = Arc::new(TmpDisks::new(dir.path()));
        let first = disks.take("sbx-a", 8).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while loop_devices_backed_under(dir.path()).len() < 1 + STOCK {
            assert!(std::time::Instant::now() < deadline, "stock not refilled");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        drop(first);
        disks.drain();
        while !loop_devices_backed_under(dir.path()).is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "loop devices still attached"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    #[test]
    fn a_tmp_disk_fills_at_its_size_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let disks = TmpDisks::new(dir.path());
        let tree = disks.make("sbx-test", 16).unwrap();
        let root = format!("/proc/self/fd/{}", tree.as_raw_fd());
        let mut f = File::create(format!("{root}/fill")).unwrap();
        let chunk = vec![7u8; 1 << 20];
        let mut written = 0u64;
        let err = loop {
            match f.write_all(&chunk).and_then(|()| f.sync_data()) {
                Ok(()) => written += chunk.len() as u64,
                Err(e) => break e,
            }
            assert!(written < 64 * MIB, "no ENOSPC after {written} bytes");
        };
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
        assert!(written >= 16 * MIB, "only {written} bytes fit");
        assert_eq!(loop_devices_backed_under(dir.path()).len(), 1);
        drop(f);
        // As the sandbox sees it once attached: source `tmp`, not `/dev/loopN`.
        let line = mount_api::attached_line(&tree);
        let (mine, fs) = line.split_once(" - ").unwrap();
        assert_eq!(mine.split(' ').nth(3), Some("/"), "{line}");
        assert_eq!(
            fs.split(' ').take(2).collect::<Vec<_>>(),
            ["ext4", "tmp"],
            "{line}"
        );
        drop(tree);
        // The loop device clears itself once the mount is gone (asynchronously).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !loop_devices_backed_under(dir.path()).is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "loop device still attached"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("template-16.ext4")]);
    }
}
