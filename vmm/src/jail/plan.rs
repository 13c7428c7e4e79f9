//! What a jailed VM needs to see of the host's file system, derived from its
//! configuration (a boot) or its snapshot's machine (a restore).

use std::path::{Path, PathBuf};

use super::JailError;
use crate::config::{DeviceSpec, RestoreConfig, VmConfig};

/// What the VM needs to see. Every path is absolute and names the host file the VM uses;
/// inside the jail it appears at the same path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Files the VM only reads (kernel, a read-only root disk).
    pub read_files: Vec<PathBuf>,
    /// Files the VM writes in place (writable disks).
    pub write_files: Vec<PathBuf>,
    /// Output files, created (if missing) and given to the jail's user before the jail is
    /// entered (serial log, timings).
    pub output_files: Vec<PathBuf>,
    /// Directories the VM only reads (a snapshot being restored).
    pub read_dirs: Vec<PathBuf>,
    /// Directories the VM creates entries in (the vsock socket's directory, a snapshot
    /// directory, created and given to the jail's user if missing).
    pub write_dirs: Vec<PathBuf>,
    /// Whether the VM has a network device (keeps the host network namespace and adds
    /// /dev/net/tun).
    pub network: bool,
}

impl Plan {
    /// Whether the VM needs the host's network namespace.
    pub fn needs_network(&self) -> bool {
        self.network
    }

    fn all_paths(&self) -> impl Iterator<Item = &PathBuf> {
        self.read_files
            .iter()
            .chain(&self.write_files)
            .chain(&self.output_files)
            .chain(&self.read_dirs)
            .chain(&self.write_dirs)
    }

    /// Refuses relative paths (the jail rebuilds paths from the root).
    pub fn check(&self) -> Result<(), JailError> {
        match self.all_paths().find(|p| !p.is_absolute()) {
            Some(p) => Err(JailError::RelativePath(p.clone())),
            None => Ok(()),
        }
    }
}

fn parent(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

impl Plan {
    fn devices(&mut self, devices: &DeviceSpec) {
        if let Some((path, read_only)) = &devices.rootfs {
            if *read_only {
                self.read_files.push(path.clone());
            } else {
                self.write_files.push(path.clone());
            }
        }
        if let Some(path) = &devices.scratch {
            self.write_files.push(path.clone());
        }
        if let Some((uds, _)) = &devices.vsock {
            self.write_dirs.push(parent(uds));
        }
        self.network = devices.net.is_some();
    }

    /// A VM booted from `config`, snapshotted to `snapshot_to` on request.
    pub fn for_boot(config: &VmConfig, snapshot_to: Option<&Path>) -> Plan {
        let mut plan = Plan::default();
        plan.read_files.push(config.kernel.clone());
        plan.devices(&config.devices());
        plan.output_files
            .extend(config.serial_log.iter().chain(&config.timings).cloned());
        plan.write_dirs.extend(snapshot_to.map(Path::to_path_buf));
        plan
    }

    /// A VM restored from `restore.dir`, whose snapshotted devices are `devices` (with
    /// the restore's own vsock socket and TAP already put in).
    pub fn for_restore(
        restore: &RestoreConfig,
        devices: &DeviceSpec,
        snapshot_to: Option<&Path>,
    ) -> Plan {
        let mut plan = Plan::default();
        plan.read_dirs.push(restore.dir.clone());
        plan.devices(devices);
        plan.output_files
            .extend(restore.serial_log.iter().chain(&restore.timings).cloned());
        plan.write_dirs.extend(snapshot_to.map(Path::to_path_buf));
        plan
    }
}
