//! Creating flintd's Unix socket with mode 0660: the owner (root, who runs flintd) and,
//! with `--socket-group`, one group may connect; nobody else. The socket is bound
//! under a temporary name, given its mode and group, then renamed into place, so no
//! client ever sees it with looser permissions.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Socket set-up failures.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// Binding, chmod or rename failed
    #[error("Unix socket {path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        source: std::io::Error,
    },
    /// `--socket-group` names no group
    #[error("--socket-group {0}: no such group (see /etc/group)")]
    NoGroup(String),
    /// Changing the group failed
    #[error("--socket-group {group}: cannot give {path} to it: {source}")]
    Chown {
        group: String,
        path: PathBuf,
        source: nix::Error,
    },
}

/// The mode of the socket.
pub const MODE: u32 = 0o660;

/// Binds `path` with mode 0660 and, when given, group `group`.
pub fn bind(path: &Path, group: Option<&str>) -> Result<tokio::net::UnixListener, SocketError> {
    let io = |what: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |source| SocketError::Io {
            path: p,
            what,
            source,
        }
    };
    let gid = group
        .map(|g| match nix::unistd::Group::from_name(g) {
            Ok(Some(grp)) => Ok(grp.gid),
            _ => Err(SocketError::NoGroup(g.to_string())),
        })
        .transpose()?;
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let std_listener = std::os::unix::net::UnixListener::bind(&tmp).map_err(io("bind", &tmp))?;
    let placed = (|| {
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(MODE))
            .map_err(io("chmod 0660", &tmp))?;
        if let (Some(gid), Some(g)) = (gid, group) {
            nix::unistd::chown(&tmp, None, Some(gid)).map_err(|source| SocketError::Chown {
                group: g.to_string(),
                path: tmp.clone(),
                source,
            })?;
        }
        std::fs::rename(&tmp, path).map_err(io("rename into place", path))
    })();
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std_listener
        .set_nonblocking(true)
        .map_err(io("set non-blocking", path))?;
    tokio::net::UnixListener::from_std(std_listener).map_err(io("register", path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[tokio::test]
    async fn the_socket_is_0660_in_the_named_group_and_replaces_a_stale_one() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.sock");
        std::fs::write(&p, b"stale").unwrap();
        let own = nix::unistd::getgid();
        let name = nix::unistd::Group::from_gid(own).unwrap().unwrap().name;
        let l = bind(&p, Some(&name)).unwrap();
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!(m.mode() & 0o777, 0o660);
        assert_eq!(m.gid(), own.as_raw());
        let c = tokio::net::UnixStream::connect(&p).await;
        assert!(c.is_ok());
        assert!(l.accept().await.is_ok());
        let left: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary socket left");
    }

    #[test]
    fn an_unknown_group_is_refused_by_name() {
        let d = tempfile::tempdir().unwrap();
        let e = bind(&d.path().join("s.sock"), Some("no-such-group-flint")).unwrap_err();
        assert!(e.to_string().contains("no-such-group-flint"), "{e}");
    }
}
