//! The function's layers when they come as zips (the microVM: its memory is the VM's
//! own, so flintd cannot mount a host directory into it). flintd sends one `Layer`
//! frame per layer before `Configure`, in the function's order; each is unpacked on
//! arrival over the ones before it into a tmpfs on /opt (a later layer's file wins, as
//! in Lambda), so the guest holds one zip at a time. At `Configure`, /opt is made
//! read-only once every announced layer has been unpacked. The namespace sandbox gets
//! /opt as a read-only host mount instead ([`crate::host_mount`]).

use crate::mounts::{self, MountError};
use crate::unpack::{self, UnpackError};
use flint_proto::init::Layer;
use nix::mount::MsFlags;
use std::path::PathBuf;
use std::time::Instant;

/// Size cap of /opt's tmpfs: Lambda's 250 MB unpacked limit for code plus layers
/// (checked by flintd at create), rounded up.
pub const OPT_MB: u32 = 256;

/// Why the layers could not be installed. Messages are shown to the function's owner.
#[derive(Debug, thiserror::Error)]
pub enum LayersError {
    /// A layer's zip could not be unpacked
    #[error("unpacking layer {index} ({arn}) into /opt: {source}")]
    Unpack {
        /// Its place in the function's list, from 0.
        index: u32,
        /// The layer version's ARN.
        arn: String,
        /// What went wrong.
        source: UnpackError,
    },
    /// A layer frame out of order (a host bug)
    #[error("layer frame {got} came where layer {want} was expected: the host must send layers in order")]
    OutOfOrder {
        /// The index the frame carried.
        got: u32,
        /// The index expected next.
        want: u32,
    },
    /// Fewer or more layer frames than Configure announced (a host bug)
    #[error("Configure announced {want} layers but {got} came before it")]
    Count {
        /// Configure's layer_count.
        want: u32,
        /// Layer frames received.
        got: u32,
    },
    /// Mounting /opt (or making it read-only) failed
    #[error(transparent)]
    Mount(#[from] MountError),
}

impl LayersError {
    /// True when the layer's bundle itself is bad (reported as an invalid zip).
    pub fn is_bad_zip(&self) -> bool {
        matches!(self, LayersError::Unpack { source, .. } if !matches!(source, UnpackError::Io { .. }))
    }
}

/// The layers received so far and where they go.
#[derive(Debug)]
pub struct Opt {
    dir: PathBuf,
    received: u32,
    mounted: bool,
    /// The first failure, reported at Configure (later frames are then ignored).
    failed: Option<LayersError>,
    /// Nanoseconds spent mounting and unpacking.
    unpack_ns: u64,
}

impl Opt {
    /// Layers for `dir` (/opt); nothing is mounted until the first layer arrives.
    pub fn new(dir: PathBuf) -> Self {
        Opt {
            dir,
            received: 0,
            mounted: false,
            failed: None,
            unpack_ns: 0,
        }
    }

    /// Unpacks one layer over the ones before it, mounting the writable tmpfs on
    /// /opt first if this is the first. A failure is kept for [`Opt::finish`].
    pub fn add(&mut self, layer: Layer) {
        let at = Instant::now();
        let index = self.received;
        self.received += 1;
        if self.failed.is_some() {
            return;
        }
        if let Err(e) = self.unpack(index, layer) {
            self.failed = Some(e);
        }
        self.unpack_ns += at.elapsed().as_nanos() as u64;
    }

    fn unpack(&mut self, index: u32, layer: Layer) -> Result<(), LayersError> {
        if layer.index != index {
            return Err(LayersError::OutOfOrder {
                got: layer.index,
                want: index,
            });
        }
        if !self.mounted {
            mounts::tmpfs(
                &self.dir,
                OPT_MB,
                0o755,
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            )?;
            self.mounted = true;
        }
        unpack::unpack_over(&layer.zip, &self.dir).map_err(|source| LayersError::Unpack {
            index,
            arn: layer.arn,
            source,
        })?;
        Ok(())
    }

    /// At Configure: every one of the `announced` layers arrived and was unpacked;
    /// /opt is then read-only (even after a failure, as /var/task is). Returns how
    /// many layers /opt holds and the time spent unpacking them before Configure.
    /// With no layers, /opt is left as the image has it.
    pub fn finish(&mut self, announced: u32) -> Result<(u32, u64), LayersError> {
        if self.mounted {
            mounts::remount_readonly(&self.dir)?;
        }
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        if self.received != announced {
            return Err(LayersError::Count {
                want: announced,
                got: self.received,
            });
        }
        Ok((self.received, self.unpack_ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Write};
    use zip::write::SimpleFileOptions;

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data) in entries {
            let opts = SimpleFileOptions::default().unix_permissions(0o644);
            if name.ends_with('/') {
                w.add_directory(*name, opts).unwrap();
            } else {
                w.start_file(*name, opts).unwrap();
                w.write_all(data).unwrap();
            }
        }
        w.finish().unwrap().into_inner()
    }

    fn layer(index: u32, entries: &[(&str, &[u8])]) -> Layer {
        Layer {
            index,
            arn: format!("arn:aws:lambda:local:000000000000:layer:l{index}:1"),
            zip: zip_of(entries),
        }
    }

    /// Runs `f` on a thread of its own in a private mount namespace (so the tmpfs
    /// and the remount are gone when it ends) and returns what it returned.
    fn in_private_mounts<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::spawn(move || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
                .expect("unshare(CLONE_NEWNS) (the tests run as root)");
            nix::mount::mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                None::<&str>,
            )
            .expect("making the private namespace's mounts private");
            f()
        })
        .join()
        .expect("the test thread panicked")
    }

    fn is_mount_point(dir: &std::path::Path) -> bool {
        let mounts = std::fs::read_to_string("/proc/thread-self/mountinfo").unwrap();
        let dir = dir.to_str().unwrap();
        mounts.lines().any(|l| l.split(' ').nth(4) == Some(dir))
    }

    #[test]
    fn layers_are_unpacked_in_order_later_files_win_and_opt_is_read_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let (files, ro, mounted) = in_private_mounts(move || {
            let mut opt = Opt::new(dir.clone());
            opt.add(layer(
                0,
                &[
                    ("python/m.py", b"v = 1\n"),
                    ("python/only_first.py", b"a\n"),
                    ("bin/tool", b"file in the first\n"),
                ],
            ));
            opt.add(layer(
                1,
                &[
                    ("python/m.py", b"v = 2\n"),
                    // A directory of the later layer replaces a file of the earlier.
                    ("bin/tool/", b""),
                    ("bin/tool/x", b"x\n"),
                ],
            ));
            let (n, _) = opt.finish(2).unwrap();
            assert_eq!(n, 2);
            let read = |p: &str| std::fs::read_to_string(dir.join(p)).unwrap();
            let files = (
                read("python/m.py"),
                read("python/only_first.py"),
                read("bin/tool/x"),
            );
            let ro = std::fs::write(dir.join("python/new.py"), b"x").unwrap_err();
            (files, ro.raw_os_error(), is_mount_point(&dir))
        });
        assert_eq!(files.0, "v = 2\n", "the later layer's file wins");
        assert_eq!(files.1, "a\n", "the earlier layer's other files stay");
        assert_eq!(files.2, "x\n");
        assert_eq!(ro, Some(libc::EROFS), "/opt is read-only");
        assert!(mounted, "/opt is a mount of its own");
        // Outside the private namespace nothing was mounted or written.
        assert!(!is_mount_point(tmp.path()));
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[test]
    fn no_layers_leave_opt_as_the_image_has_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mounted = in_private_mounts(move || {
            let mut opt = Opt::new(dir.clone());
            assert_eq!(opt.finish(0).unwrap().0, 0);
            is_mount_point(&dir)
        });
        assert!(!mounted);
    }

    #[test]
    fn a_bad_layer_a_gap_or_a_missing_layer_is_reported_and_opt_still_read_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let (bad, gap, missing) = in_private_mounts(move || {
            let mut opt = Opt::new(dir.clone());
            opt.add(layer(0, &[("python/m.py", b"1")]));
            opt.add(Layer {
                index: 1,
                arn: "arn:aws:lambda:local:000000000000:layer:bad:3".into(),
                zip: b"not a zip".to_vec(),
            });
            let bad = opt.finish(2).unwrap_err();
            let ro = std::fs::write(dir.join("x"), b"x")
                .unwrap_err()
                .raw_os_error();
            assert_eq!(ro, Some(libc::EROFS));
            let mut opt = Opt::new(dir.join("python"));
            opt.add(layer(1, &[]));
            let gap = opt.finish(1).unwrap_err();
            let mut opt = Opt::new(dir.clone());
            let missing = opt.finish(1).unwrap_err();
            (bad, gap, missing)
        });
        assert!(bad.is_bad_zip(), "{bad}");
        let msg = bad.to_string();
        assert!(
            msg.contains("layer 1 (arn:aws:lambda:local:000000000000:layer:bad:3)"),
            "{msg}"
        );
        assert!(
            matches!(gap, LayersError::OutOfOrder { got: 1, want: 0 }),
            "{gap}"
        );
        assert!(
            matches!(missing, LayersError::Count { want: 1, got: 0 }),
            "{missing}"
        );
    }
}
