//! The jail's file system: a tmpfs root holding, at their own absolute paths, only the
//! files and directories the VM uses, and its own device nodes; then `pivot_root`.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::plan::Plan;
use super::{sys, JailConfig, JailError};

fn cstr(p: &Path) -> Result<CString, JailError> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| JailError::Sys {
        what: "path with a NUL byte",
        path: p.display().to_string(),
        source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
    })
}

fn mount(
    src: Option<&Path>,
    dst: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<(), JailError> {
    let src_c = src.map(cstr).transpose()?;
    let dst_c = cstr(dst)?;
    let fs_c = fstype.map(|f| CString::new(f).expect("static fs type"));
    let data_c = data.map(|d| CString::new(d).expect("static mount data"));
    let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is null or a NUL-terminated string that outlives the call.
    let rc = unsafe {
        libc::mount(
            ptr(&src_c),
            dst_c.as_ptr(),
            ptr(&fs_c),
            flags,
            ptr(&data_c).cast(),
        )
    };
    if rc != 0 {
        return Err(sys("mount", dst.display().to_string())(
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// `root` + absolute `path`.
fn inside(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

fn chown(path: &Path, uid: u32, gid: u32) -> Result<(), JailError> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .map_err(sys("chown", path.display().to_string()))
}

/// Bind-mounts host `src` onto `dst` (made first: a file or a directory), read-only
/// unless `writable`; never suid or device files.
fn bind(src: &Path, dst: &Path, is_dir: bool, writable: bool) -> Result<(), JailError> {
    let parent = dst.parent().unwrap_or(dst);
    std::fs::create_dir_all(parent).map_err(sys("mkdir", parent.display().to_string()))?;
    if is_dir {
        std::fs::create_dir_all(dst).map_err(sys("mkdir", dst.display().to_string()))?;
    } else if !dst.exists() {
        std::fs::File::create(dst).map_err(sys("create mount point", dst.display().to_string()))?;
    }
    mount(Some(src), dst, None, libc::MS_BIND, None)?;
    let mut flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_NOSUID | libc::MS_NODEV;
    if !writable {
        flags |= libc::MS_RDONLY;
    }
    mount(None, dst, None, flags, None)
}

/// A character device node at `dst` with the numbers of host `src`, owned by the jail's
/// user with mode 0600.
fn device_node(src: &Path, dst: &Path, uid: u32, gid: u32) -> Result<(), JailError> {
    use std::os::unix::fs::MetadataExt;
    let rdev = std::fs::metadata(src)
        .map_err(sys("stat", src.display().to_string()))?
        .rdev();
    let parent = dst.parent().unwrap_or(dst);
    std::fs::create_dir_all(parent).map_err(sys("mkdir", parent.display().to_string()))?;
    let c = cstr(dst)?;
    // SAFETY: `c` is a NUL-terminated path; mknod reads nothing else.
    if unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o600, rdev) } != 0 {
        return Err(sys("mknod", dst.display().to_string())(
            std::io::Error::last_os_error(),
        ));
    }
    chown(dst, uid, gid)
}

/// Builds the root in `config.root` (already in the new mount namespace).
pub fn build_root(config: &JailConfig, plan: &Plan) -> Result<(), JailError> {
    plan.check()?;
    let (uid, gid) = (config.uid, config.gid);
    // Nothing done here may reach the host's mount table.
    mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )?;
    let root = &config.root;
    mount(
        Some(Path::new("tmpfs")),
        root,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some("mode=0755,size=1m"),
    )?;
    for f in &plan.output_files {
        if !f.exists() {
            std::fs::File::create(f).map_err(sys("create", f.display().to_string()))?;
        }
        chown(f, uid, gid)?;
        bind(f, &inside(root, f), false, true)?;
    }
    for d in &plan.write_dirs {
        if !d.exists() {
            std::fs::create_dir_all(d).map_err(sys("mkdir", d.display().to_string()))?;
            chown(d, uid, gid)?;
        }
        bind(d, &inside(root, d), true, true)?;
    }
    for f in &plan.read_files {
        bind(f, &inside(root, f), false, false)?;
    }
    for f in &plan.write_files {
        bind(f, &inside(root, f), false, true)?;
    }
    for d in &plan.read_dirs {
        bind(d, &inside(root, d), true, false)?;
    }
    device_node(Path::new("/dev/kvm"), &root.join("dev/kvm"), uid, gid)?;
    if plan.network {
        device_node(
            Path::new("/dev/net/tun"),
            &root.join("dev/net/tun"),
            uid,
            gid,
        )?;
    }
    Ok(())
}

/// Makes `root` the process's root and drops the old one; the root tmpfs becomes
/// read-only (the bind mounts in it keep their own modes).
pub fn pivot_into(root: &Path) -> Result<(), JailError> {
    std::env::set_current_dir(root).map_err(sys("chdir", root.display().to_string()))?;
    let dot = CString::new(".").expect("static");
    // SAFETY: pivot_root(".", ".") stacks the old root under the new one, which the
    // umount below detaches; both arguments are NUL-terminated strings.
    if unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) } != 0 {
        return Err(sys("pivot_root", root.display().to_string())(
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: "." is a NUL-terminated string; MNT_DETACH lazily drops the old root.
    if unsafe { libc::umount2(dot.as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(sys("umount old root", "/")(std::io::Error::last_os_error()));
    }
    std::env::set_current_dir("/").map_err(sys("chdir", "/"))?;
    mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NOEXEC,
        None,
    )
}
