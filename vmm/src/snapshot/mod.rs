//! Snapshots of a running microVM: the versioned on-disk format (a directory with the
//! guest memory file and `state.json`), writing it, and reading it back with the version
//! and host CPU model checks. vmm/README.md documents the format.

pub mod cpu_model;
pub mod memory;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::arch::current::vcpu_state::VcpuState;
use crate::arch::current::vm_state::VmState;
use crate::config::DeviceSpec;
use crate::devices::virtio::mmio::TransportState;
use crate::legacy::LegacyState;
use cpu_model::CpuModel;

/// The `format` field of every state file.
pub const FORMAT_NAME: &str = "flint-vmm-snapshot";
/// The format version this flint-vmm writes and the only one it restores.
pub const FORMAT_VERSION: u32 = crate::SNAPSHOT_FORMAT_VERSION;
/// The state file inside a snapshot directory.
pub const STATE_FILE: &str = "state.json";
/// The guest memory file inside a snapshot directory.
pub const MEMORY_FILE: &str = "memory";

/// Errors while writing or reading a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// cannot {what} {path}: {source}
    #[error("cannot {what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// {0} is not a flint-vmm snapshot state file: {1}
    #[error("{0} is not a flint-vmm snapshot state file: {1}")]
    NotASnapshot(PathBuf, String),
    /// snapshot format version {found} cannot be restored by this flint-vmm (it restores version {FORMAT_VERSION} only): take the snapshot again with this flint-vmm
    #[error(
        "snapshot format version {found} cannot be restored by this flint-vmm (it restores \
         version {FORMAT_VERSION} only): take the snapshot again with this flint-vmm"
    )]
    Version {
        /// The version in the file.
        found: u32,
    },
    /// snapshot was taken on a {snapshot} host, this flint-vmm runs on {host}: guests are only restored on the architecture they were taken on
    #[error(
        "snapshot was taken on a {snapshot} host, this flint-vmm runs on {host}: guests are \
         only restored on the architecture they were taken on"
    )]
    Arch {
        /// Architecture in the file.
        snapshot: String,
        /// This host's architecture.
        host: &'static str,
    },
    /// snapshot was taken on CPU model {snapshot}, this host is {host}: restore it on the CPU model it was taken on, or take a new snapshot here
    #[error(
        "snapshot was taken on CPU model {snapshot}, this host is {host}: restore it on the \
         CPU model it was taken on, or take a new snapshot here"
    )]
    CpuModel {
        /// The model in the file.
        snapshot: Box<CpuModel>,
        /// This host's model.
        host: Box<CpuModel>,
    },
    /// invalid snapshot state file {0}: {1}
    #[error("invalid snapshot state file {0}: {1}")]
    Parse(PathBuf, serde_json::Error),
    /// memory file {path} has {found} bytes, the snapshot's guest has {expected}
    #[error("memory file {path} has {found} bytes, the snapshot's guest has {expected}")]
    MemorySize {
        /// The memory file.
        path: PathBuf,
        /// Its size.
        found: u64,
        /// Guest memory size in the state file.
        expected: u64,
    },
    /// cannot map memory file {0}: {1}
    #[error("cannot map memory file {0}: {1}")]
    Map(PathBuf, String),
    /// cannot serialise the snapshot state: {0}
    #[error("cannot serialise the snapshot state: {0}")]
    Serialise(serde_json::Error),
}

/// The machine a snapshot restores: sizes and the devices in slot order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MachineConfig {
    /// Guest memory in MiB.
    pub mem_mib: u64,
    /// Number of vCPUs.
    pub vcpus: u8,
    /// Disks and vsock, in the order they occupy virtio-mmio slots.
    pub devices: DeviceSpec,
}

/// Everything but guest memory: the content of `state.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct SnapshotState {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// [`FORMAT_VERSION`] of the writer.
    pub version: u32,
    /// `std::env::consts::ARCH` of the host.
    pub arch: String,
    /// The host CPU model.
    pub host_cpu: CpuModel,
    /// Sizes and devices.
    pub machine: MachineConfig,
    /// In-kernel VM state: interrupt controllers, PIT, clock.
    pub vm: VmState,
    /// Per-vCPU state, index = vCPU id.
    pub vcpus: Vec<VcpuState>,
    /// Port I/O devices: COM1 and the i8042.
    pub legacy: LegacyState,
    /// virtio-mmio transports with their devices, in slot order.
    pub virtio: Vec<TransportState>,
}

/// The fields checked before anything else is parsed, so that a file of another version
/// is refused by its version and not by whatever field changed.
#[derive(Deserialize)]
struct Header {
    format: String,
    version: u32,
    arch: String,
    host_cpu: CpuModel,
}

impl SnapshotState {
    /// A state of the current format for this host.
    pub fn new(
        machine: MachineConfig,
        vm: VmState,
        vcpus: Vec<VcpuState>,
        legacy: LegacyState,
        virtio: Vec<TransportState>,
    ) -> Self {
        SnapshotState {
            format: FORMAT_NAME.to_string(),
            version: FORMAT_VERSION,
            arch: std::env::consts::ARCH.to_string(),
            host_cpu: cpu_model::host(),
            machine,
            vm,
            vcpus,
            legacy,
            virtio,
        }
    }

    /// Checks and parses a state file's text: format, version, architecture and CPU model
    /// against this host first.
    pub fn parse(path: &Path, text: &str, host: &CpuModel) -> Result<Self, SnapshotError> {
        let header: Header = serde_json::from_str(text)
            .map_err(|e| SnapshotError::NotASnapshot(path.to_owned(), e.to_string()))?;
        if header.format != FORMAT_NAME {
            return Err(SnapshotError::NotASnapshot(
                path.to_owned(),
                format!("format is {:?}, not {FORMAT_NAME:?}", header.format),
            ));
        }
        if header.version != FORMAT_VERSION {
            return Err(SnapshotError::Version {
                found: header.version,
            });
        }
        if header.arch != std::env::consts::ARCH {
            return Err(SnapshotError::Arch {
                snapshot: header.arch,
                host: std::env::consts::ARCH,
            });
        }
        if &header.host_cpu != host {
            return Err(SnapshotError::CpuModel {
                snapshot: Box::new(header.host_cpu),
                host: Box::new(host.clone()),
            });
        }
        serde_json::from_str(text).map_err(|e| SnapshotError::Parse(path.to_owned(), e))
    }

    /// Reads and checks `dir/state.json` against this host.
    pub fn load(dir: &Path) -> Result<Self, SnapshotError> {
        let path = dir.join(STATE_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| SnapshotError::Io {
            what: "read snapshot state",
            path: path.clone(),
            source,
        })?;
        Self::parse(&path, &text, &cpu_model::host())
    }

    /// Writes `dir/state.json` (through a temporary file and a rename, so a state file
    /// that exists is complete). Write the memory file first.
    pub fn store(&self, dir: &Path) -> Result<(), SnapshotError> {
        let json = serde_json::to_vec(self).map_err(SnapshotError::Serialise)?;
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        let path = dir.join(STATE_FILE);
        std::fs::write(&tmp, json).map_err(|source| SnapshotError::Io {
            what: "write snapshot state",
            path: tmp.clone(),
            source,
        })?;
        std::fs::rename(&tmp, &path).map_err(|source| SnapshotError::Io {
            what: "rename snapshot state to",
            path,
            source,
        })
    }
}

#[cfg(test)]
mod tests;
