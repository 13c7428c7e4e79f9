//! flint-vmm's configuration: raw (command-line flags or a JSON file, both deserialised
//! into [`RawVmConfig`]) and validated ([`VmConfig`], built with `TryFrom`).
//!
//! Defaults: 128 MiB, 1 vCPU, vsock guest CID 3, serial to stdout, the command line
//! [`DEFAULT_CMDLINE`], host workaround `auto`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::devices::virtio::net::{tap, MacAddr};
use crate::hostfix::WorkaroundMode;

/// The kernel command line used when none is given.
pub const DEFAULT_CMDLINE: &str = "console=ttyS0 reboot=k panic=-1 pci=off nomodule \
     i8042.noaux i8042.nomux i8042.dumbkbd init=/sbin/init";
/// Default guest memory in MiB.
pub const DEFAULT_MEM_MIB: u64 = 128;
/// Smallest guest memory in MiB.
pub const MIN_MEM_MIB: u64 = 4;
/// Largest guest memory in MiB (everything below the MMIO gap at 3.25 GiB). flintd's
/// microVM backend reads this constant to refuse larger functions when they are created.
pub const MAX_MEM_MIB: u64 = 3328;
/// Largest vCPU count (what the MP table has room for).
pub const MAX_VCPUS: u8 = 32;
/// Default vsock guest CID.
pub const DEFAULT_VSOCK_CID: u64 = 3;

/// Flags and JSON fields as given, before validation. JSON uses the same names in
/// snake_case (`"kernel"`, `"mem_mib"`, `"vsock_uds"`, ...).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct RawVmConfig {
    /// Guest kernel: an ELF vmlinux (PVH entry used when present) or a bzImage.
    #[arg(long)]
    pub kernel: Option<PathBuf>,
    /// Kernel command line (replaces the default).
    #[arg(long)]
    pub cmdline: Option<String>,
    /// Guest memory in MiB.
    #[arg(long)]
    pub mem_mib: Option<u64>,
    /// Number of vCPUs.
    #[arg(long)]
    pub vcpus: Option<u8>,
    /// Root file system image, attached as virtio-blk /dev/vda (read-only unless --rootfs-rw).
    #[arg(long)]
    pub rootfs: Option<PathBuf>,
    /// Attach the root file system read-write.
    #[arg(long)]
    #[serde(default)]
    pub rootfs_rw: bool,
    /// Scratch disk image, attached read-write as the next virtio-blk device.
    #[arg(long)]
    pub scratch: Option<PathBuf>,
    /// Host Unix socket path of the virtio-vsock device (Firecracker's hybrid protocol).
    #[arg(long)]
    pub vsock_uds: Option<PathBuf>,
    /// Guest CID of the vsock device.
    #[arg(long)]
    pub vsock_cid: Option<u64>,
    /// Host TAP interface of a virtio-net device (attached to, or created with
    /// CAP_NET_ADMIN). With --restore-from it names the restored VM's own TAP.
    #[arg(long)]
    pub net_tap: Option<String>,
    /// Guest MAC address of the virtio-net device (default: derived from the TAP name).
    #[arg(long)]
    pub net_mac: Option<String>,
    /// File receiving the guest's serial console (default: stdout).
    #[arg(long)]
    pub serial_log: Option<PathBuf>,
    /// File receiving the boot timings as JSON when the VM ends.
    #[arg(long)]
    pub timings: Option<PathBuf>,
    /// Workaround for the nested kvm_pvm hypervisor: auto (detect), on, off.
    #[arg(long, value_enum)]
    pub pvm_workaround: Option<WorkaroundMode>,
}

/// A restore: the snapshot directory and the host-side paths a restore may change.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RestoreConfig {
    /// The snapshot directory.
    pub dir: PathBuf,
    /// Serial output file (default: stdout).
    pub serial_log: Option<PathBuf>,
    /// Host socket of the vsock device (default: the snapshotted VM's).
    pub vsock_uds: Option<PathBuf>,
    /// TAP interface of the network device (default: the snapshotted VM's).
    pub net_tap: Option<String>,
    /// Timings output file.
    pub timings: Option<PathBuf>,
}

impl RestoreConfig {
    /// Validates `--restore-from DIR` with the other flags given: the machine comes from
    /// the snapshot, so only `--serial-log`, `--vsock-uds`, `--net-tap` and `--timings` may
    /// be set.
    pub fn new(dir: PathBuf, raw: RawVmConfig) -> Result<Self, ConfigError> {
        let host_side = RawVmConfig {
            serial_log: raw.serial_log.clone(),
            vsock_uds: raw.vsock_uds.clone(),
            net_tap: raw.net_tap.clone(),
            timings: raw.timings.clone(),
            ..Default::default()
        };
        if raw != host_side {
            return Err(ConfigError::RestoreWithMachineFlags);
        }
        if !dir.is_dir() {
            return Err(ConfigError::NoSnapshotDir(dir));
        }
        Ok(RestoreConfig {
            dir,
            serial_log: raw
                .serial_log
                .map(|p| output_path("serial log", p))
                .transpose()?,
            vsock_uds: raw
                .vsock_uds
                .map(|p| output_path("vsock socket", p))
                .transpose()?,
            net_tap: raw.net_tap.map(tap_name).transpose()?,
            timings: raw
                .timings
                .map(|p| output_path("timings file", p))
                .transpose()?,
        })
    }
}

/// Checks a `--snapshot-to DIR`: its parent directory must exist.
pub fn snapshot_dir(dir: PathBuf) -> Result<PathBuf, ConfigError> {
    output_path("snapshot directory", dir)
}

/// Errors in a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// cannot read config file {0}: {1}
    #[error("cannot read config file {0}: {1}")]
    ReadFile(PathBuf, std::io::Error),
    /// invalid config file {0}: {1}
    #[error("invalid config file {0}: {1}")]
    ParseFile(PathBuf, serde_json::Error),
    /// give either --config or VM flags (--kernel, --mem-mib, ...), not both
    #[error("give either --config or VM flags (--kernel, --mem-mib, ...), not both")]
    ConfigAndFlags,
    /// no kernel: pass --kernel PATH (or "kernel" in the config file)
    #[error("no kernel: pass --kernel PATH (or \"kernel\" in the config file)")]
    MissingKernel,
    /// {what} {path}: {source}
    #[error("{what} {path}: {source}")]
    File {
        /// Which input.
        what: &'static str,
        /// The path given.
        path: PathBuf,
        /// Why it cannot be used.
        source: std::io::Error,
    },
    /// {what} {0} is not a regular file
    #[error("{what} {0} is not a regular file", what = .1)]
    NotAFile(PathBuf, &'static str),
    /// {what}: directory of {path} does not exist
    #[error("{what}: directory of {path} does not exist")]
    NoParentDir {
        /// Which output.
        what: &'static str,
        /// The path given.
        path: PathBuf,
    },
    /// memory {0} MiB is out of range ({MIN_MEM_MIB}..={MAX_MEM_MIB} MiB)
    #[error("memory {0} MiB is out of range ({MIN_MEM_MIB}..={MAX_MEM_MIB} MiB)")]
    MemoryOutOfRange(u64),
    /// vcpus {0} is out of range (1..={MAX_VCPUS})
    #[error("vcpus {0} is out of range (1..={MAX_VCPUS})")]
    VcpusOutOfRange(u8),
    /// vsock CID {0} is reserved (guest CIDs start at 3)
    #[error("vsock CID {0} is reserved (guest CIDs start at 3)")]
    ReservedCid(u64),
    /// --vsock-cid needs --vsock-uds
    #[error("--vsock-cid needs --vsock-uds")]
    CidWithoutVsock,
    /// with --restore-from the machine comes from the snapshot: only --serial-log, --vsock-uds, --net-tap and --timings may be given
    #[error(
        "with --restore-from the machine comes from the snapshot: only --serial-log, \
         --vsock-uds, --net-tap and --timings may be given"
    )]
    RestoreWithMachineFlags,
    /// snapshot directory {0} does not exist
    #[error("snapshot directory {0} does not exist")]
    NoSnapshotDir(PathBuf),
    /// kernel command line contains a NUL byte
    #[error("kernel command line contains a NUL byte")]
    CmdlineNul,
    /// --net-tap {0:?}: an interface name is 1 to 15 bytes without '/', spaces or NUL
    #[error("--net-tap {0:?}: an interface name is 1 to 15 bytes without '/', spaces or NUL")]
    BadTapName(String),
    /// --net-mac: {0}
    #[error("--net-mac: {0}")]
    BadMac(#[from] crate::devices::virtio::net::mac::MacError),
    /// --net-mac needs --net-tap
    #[error("--net-mac needs --net-tap")]
    MacWithoutTap,
}

/// A validated VM configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct VmConfig {
    /// Guest kernel image.
    pub kernel: PathBuf,
    /// Base kernel command line.
    pub cmdline: String,
    /// Guest memory in MiB.
    pub mem_mib: u64,
    /// Number of vCPUs.
    pub vcpus: u8,
    /// Root disk image and whether it is read-only.
    pub rootfs: Option<(PathBuf, bool)>,
    /// Scratch disk image (read-write).
    pub scratch: Option<PathBuf>,
    /// vsock host socket and guest CID.
    pub vsock: Option<(PathBuf, u64)>,
    /// virtio-net TAP interface and guest MAC address.
    pub net: Option<(String, MacAddr)>,
    /// Serial log file, or `None` for stdout.
    pub serial_log: Option<PathBuf>,
    /// Timings output file.
    pub timings: Option<PathBuf>,
    /// Host workaround mode.
    pub pvm_workaround: WorkaroundMode,
}

impl VmConfig {
    /// Guest memory in bytes.
    pub fn mem_bytes(&self) -> u64 {
        self.mem_mib << 20
    }

    /// The disks and vsock device of this VM.
    pub fn devices(&self) -> DeviceSpec {
        DeviceSpec {
            rootfs: self.rootfs.clone(),
            scratch: self.scratch.clone(),
            vsock: self.vsock.clone(),
            net: self.net.clone(),
        }
    }
}

/// The virtio devices of a VM, which fill virtio-mmio slots in this order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceSpec {
    /// Root disk image and whether it is read-only.
    pub rootfs: Option<(PathBuf, bool)>,
    /// Scratch disk image (read-write).
    pub scratch: Option<PathBuf>,
    /// vsock host socket and guest CID.
    pub vsock: Option<(PathBuf, u64)>,
    /// virtio-net TAP interface and guest MAC address (absent in snapshots made before
    /// the device existed).
    #[serde(default)]
    pub net: Option<(String, MacAddr)>,
}

impl RawVmConfig {
    /// Reads a JSON configuration file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError::ReadFile(path.into(), e))?;
        serde_json::from_str(&text).map_err(|e| ConfigError::ParseFile(path.into(), e))
    }

    /// The configuration to use given an optional `--config` file and these flags.
    pub fn resolve(self, config_file: Option<&Path>) -> Result<Self, ConfigError> {
        match config_file {
            None => Ok(self),
            Some(_) if self != RawVmConfig::default() => Err(ConfigError::ConfigAndFlags),
            Some(path) => Self::from_file(path),
        }
    }
}

fn input_file(what: &'static str, path: PathBuf) -> Result<PathBuf, ConfigError> {
    let meta = std::fs::metadata(&path).map_err(|source| ConfigError::File {
        what,
        path: path.clone(),
        source,
    })?;
    if !meta.is_file() {
        return Err(ConfigError::NotAFile(path, what));
    }
    std::fs::File::open(&path).map_err(|source| ConfigError::File {
        what,
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

fn tap_name(name: String) -> Result<String, ConfigError> {
    if tap::valid_name(&name) {
        Ok(name)
    } else {
        Err(ConfigError::BadTapName(name))
    }
}

fn output_path(what: &'static str, path: PathBuf) -> Result<PathBuf, ConfigError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(ConfigError::NoParentDir { what, path });
    }
    Ok(path)
}

impl TryFrom<RawVmConfig> for VmConfig {
    type Error = ConfigError;

    fn try_from(raw: RawVmConfig) -> Result<Self, ConfigError> {
        let kernel = input_file("kernel", raw.kernel.ok_or(ConfigError::MissingKernel)?)?;
        let cmdline = raw.cmdline.unwrap_or_else(|| DEFAULT_CMDLINE.to_string());
        if cmdline.contains('\0') {
            return Err(ConfigError::CmdlineNul);
        }
        let mem_mib = raw.mem_mib.unwrap_or(DEFAULT_MEM_MIB);
        if !(MIN_MEM_MIB..=MAX_MEM_MIB).contains(&mem_mib) {
            return Err(ConfigError::MemoryOutOfRange(mem_mib));
        }
        let vcpus = raw.vcpus.unwrap_or(1);
        if !(1..=MAX_VCPUS).contains(&vcpus) {
            return Err(ConfigError::VcpusOutOfRange(vcpus));
        }
        let rootfs = raw
            .rootfs
            .map(|p| input_file("root file system", p))
            .transpose()?
            .map(|p| (p, !raw.rootfs_rw));
        let scratch = raw
            .scratch
            .map(|p| input_file("scratch disk", p))
            .transpose()?;
        let vsock = match (raw.vsock_uds, raw.vsock_cid) {
            (None, Some(_)) => return Err(ConfigError::CidWithoutVsock),
            (None, None) => None,
            (Some(uds), cid) => {
                let cid = cid.unwrap_or(DEFAULT_VSOCK_CID);
                if cid < 3 {
                    return Err(ConfigError::ReservedCid(cid));
                }
                Some((output_path("vsock socket", uds)?, cid))
            }
        };
        let net = match (raw.net_tap, raw.net_mac) {
            (None, Some(_)) => return Err(ConfigError::MacWithoutTap),
            (None, None) => None,
            (Some(name), mac) => {
                let name = tap_name(name)?;
                let mac = match mac {
                    Some(m) => m.parse::<MacAddr>()?,
                    None => MacAddr::derived(&name),
                };
                Some((name, mac))
            }
        };
        Ok(VmConfig {
            kernel,
            cmdline,
            mem_mib,
            vcpus,
            rootfs,
            scratch,
            vsock,
            net,
            serial_log: raw
                .serial_log
                .map(|p| output_path("serial log", p))
                .transpose()?,
            timings: raw
                .timings
                .map(|p| output_path("timings file", p))
                .transpose()?,
            pvm_workaround: raw.pvm_workaround.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_kernel() -> (tempfile::TempDir, RawVmConfig) {
        let dir = tempfile::tempdir().expect("tempdir");
        let kernel = dir.path().join("vmlinux");
        std::fs::write(&kernel, b"\x7fELF").expect("write");
        let raw = RawVmConfig {
            kernel: Some(kernel),
            ..Default::default()
        };
        (dir, raw)
    }

    #[test]
    fn defaults_apply() {
        let (_dir, raw) = with_kernel();
        let cfg = VmConfig::try_from(raw).expect("valid");
        assert_eq!((cfg.mem_mib, cfg.vcpus), (128, 1));
        assert_eq!(cfg.cmdline, DEFAULT_CMDLINE);
        assert_eq!(cfg.pvm_workaround, WorkaroundMode::Auto);
        assert!(cfg.rootfs.is_none() && cfg.vsock.is_none());
    }

    #[test]
    fn missing_kernel_names_the_flag_and_the_path() {
        let err = VmConfig::try_from(RawVmConfig::default()).expect_err("no kernel");
        assert!(err.to_string().contains("--kernel"));
        let raw = RawVmConfig {
            kernel: Some("/nonexistent/vmlinux".into()),
            ..Default::default()
        };
        let err = VmConfig::try_from(raw).expect_err("missing file");
        assert!(
            err.to_string().contains("kernel /nonexistent/vmlinux"),
            "{err}"
        );
    }

    #[test]
    fn memory_and_vcpus_are_range_checked() {
        for mem in [0, 3, 3329] {
            let (_dir, mut raw) = with_kernel();
            raw.mem_mib = Some(mem);
            assert!(matches!(
                VmConfig::try_from(raw),
                Err(ConfigError::MemoryOutOfRange(m)) if m == mem
            ));
        }
        for vcpus in [0, 33] {
            let (_dir, mut raw) = with_kernel();
            raw.vcpus = Some(vcpus);
            assert!(matches!(
                VmConfig::try_from(raw),
                Err(ConfigError::VcpusOutOfRange(_))
            ));
        }
    }

    #[test]
    fn net_rules() {
        let (_dir, mut raw) = with_kernel();
        raw.net_mac = Some("02:00:00:00:00:09".into());
        assert!(matches!(
            VmConfig::try_from(raw.clone()),
            Err(ConfigError::MacWithoutTap)
        ));
        raw.net_tap = Some("tap-with-a-long-name".into());
        assert!(matches!(
            VmConfig::try_from(raw.clone()),
            Err(ConfigError::BadTapName(_))
        ));
        raw.net_tap = Some("tap0".into());
        assert_eq!(
            VmConfig::try_from(raw.clone()).expect("ok").net,
            Some(("tap0".into(), MacAddr([2, 0, 0, 0, 0, 9])))
        );
        raw.net_mac = Some("03:00:00:00:00:09".into());
        assert!(matches!(
            VmConfig::try_from(raw.clone()),
            Err(ConfigError::BadMac(_))
        ));
        raw.net_mac = None;
        assert_eq!(
            VmConfig::try_from(raw).expect("ok").net,
            Some(("tap0".into(), MacAddr::derived("tap0")))
        );
    }

    #[test]
    fn rootfs_must_exist_and_is_read_only_by_default() {
        let (dir, mut raw) = with_kernel();
        raw.rootfs = Some(dir.path().join("missing.ext4"));
        assert!(matches!(
            VmConfig::try_from(raw.clone()),
            Err(ConfigError::File { .. })
        ));
        raw.rootfs = Some(dir.path().to_path_buf());
        assert!(matches!(
            VmConfig::try_from(raw.clone()),
            Err(ConfigError::NotAFile(..))
        ));
        let img = dir.path().join("root.ext4");
        std::fs::write(&img, b"").expect("write");
        raw.rootfs = Some(img.clone());
        assert_eq!(
            VmConfig::try_from(raw.clone()).expect("ok").rootfs,
            Some((img.clone(), true))
        );
        raw.rootfs_rw = true;
        assert_eq!(
            VmConfig::try_from(raw).expect("ok").rootfs,
            Some((img, false))
        );
    }

    #[test]
    fn vsock_cid_rules() {
        let (dir, mut raw) = with_kernel();
        raw.vsock_cid = Some(5);
        assert!(matches!(
            VmConfig::try_from(raw.clone()),
            Err(ConfigError::CidWithoutVsock)
        ));
        raw.vsock_uds = Some(dir.path().join("v.sock"));
        raw.vsock_cid = Some(2);
        assert!(matches!(
            VmConfig::try_from(raw.clone()),
            Err(ConfigError::ReservedCid(2))
        ));
        raw.vsock_cid = None;
        let cfg = VmConfig::try_from(raw.clone()).expect("ok");
        assert_eq!(cfg.vsock, Some((dir.path().join("v.sock"), 3)));
        raw.vsock_uds = Some("/nonexistent-dir/v.sock".into());
        assert!(matches!(
            VmConfig::try_from(raw),
            Err(ConfigError::NoParentDir { .. })
        ));
    }

    #[test]
    fn config_file_is_parsed_and_exclusive_with_flags() {
        let (dir, raw) = with_kernel();
        let path = dir.path().join("vm.json");
        let kernel = raw.kernel.clone().expect("kernel");
        let json = serde_json::json!({"kernel": kernel, "mem_mib": 256, "pvm_workaround": "off"});
        std::fs::write(&path, json.to_string()).expect("write");
        let resolved = RawVmConfig::default().resolve(Some(&path)).expect("parse");
        let cfg = VmConfig::try_from(resolved).expect("valid");
        assert_eq!(
            (cfg.mem_mib, cfg.pvm_workaround),
            (256, WorkaroundMode::Off)
        );
        assert!(matches!(
            raw.resolve(Some(&path)),
            Err(ConfigError::ConfigAndFlags)
        ));
        std::fs::write(&path, r#"{"kernel": "/x", "memory": 1}"#).expect("write");
        let err = RawVmConfig::default()
            .resolve(Some(&path))
            .expect_err("unknown field");
        assert!(err.to_string().contains("memory"), "{err}");
        let missing = dir.path().join("nope.json");
        assert!(matches!(
            RawVmConfig::default().resolve(Some(&missing)),
            Err(ConfigError::ReadFile(..))
        ));
    }
}
