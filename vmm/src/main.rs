//! `flint-vmm`: boots one microVM from flags or a JSON config (or restores one from a
//! snapshot) and exits when the guest does, with the reason in the exit status and a
//! one-line JSON summary on stdout.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;

#[cfg(target_arch = "x86_64")]
use flint_vmm::config::RestoreConfig;
use flint_vmm::config::{self, RawVmConfig, VmConfig};
use flint_vmm::exit::ExitSummary;
use flint_vmm::exit::EXIT_VMM_ERROR;
use flint_vmm::hostfix;
use flint_vmm::jail::{self, JailConfig, Plan};
use flint_vmm::timing::BootTimes;
use flint_vmm::vmm::Vmm;

/// Flint's microVM monitor. Exit status: 0 power-off, 1 flint-vmm error, 2 guest reset,
/// 3 guest crash, 4 KVM failure, 5 snapshot written, n = byte n written to the exit port
/// 0xf4.
#[derive(Parser, Debug)]
#[command(name = "flint-vmm", version)]
struct Cli {
    /// JSON configuration file (same field names as the flags, in snake_case).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// On SIGUSR1, write a snapshot of the running VM to DIR (created if missing) and stop
    /// it (exit status 5).
    #[arg(long, value_name = "DIR")]
    snapshot_to: Option<PathBuf>,
    /// Restore the VM snapshotted in DIR instead of booting a kernel. Only --serial-log,
    /// --vsock-uds, --timings and --snapshot-to may accompany it.
    #[arg(long, value_name = "DIR", conflicts_with = "config")]
    restore_from: Option<PathBuf>,
    /// Confine this VMM (vmm/README.md, "Jail"): new namespaces, DIR (an empty directory)
    /// as its root holding only the VM's files, then --jail-uid/--jail-gid and seccomp
    /// filters once the VM is built. Needs root; every path must be absolute.
    #[arg(long, value_name = "DIR")]
    jail: Option<PathBuf>,
    /// User the jailed VMM runs as (not 0).
    #[arg(long, value_name = "UID", requires = "jail", default_value_t = 65534)]
    jail_uid: u32,
    /// Group the jailed VMM runs as.
    #[arg(long, value_name = "GID", requires = "jail", default_value_t = 65534)]
    jail_gid: u32,
    #[command(flatten)]
    vm: RawVmConfig,
}

/// Why an aarch64 flint-vmm refuses the snapshot flags.
const UNSUPPORTED_SNAPSHOTS: &str = "is not supported on this architecture: flint-vmm takes \
     and restores snapshots on x86_64 hosts only (vmm/README.md, \"aarch64\")";

fn run(start: Instant) -> anyhow::Result<i32> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version print and succeed; usage errors must not exit with 2,
        // which means "guest reset".
        Err(e) if !e.use_stderr() => {
            e.print().context("cannot print help")?;
            return Ok(0);
        }
        Err(e) => {
            return Err(anyhow::anyhow!(e
                .render()
                .to_string()
                .trim_end()
                .to_string()))
        }
    };
    if cfg!(not(target_arch = "x86_64")) && cli.snapshot_to.is_some() {
        anyhow::bail!("--snapshot-to {UNSUPPORTED_SNAPSHOTS}");
    }
    let snapshot_to = cli
        .snapshot_to
        .map(config::snapshot_dir)
        .transpose()
        .context("invalid configuration")?;
    if snapshot_to.is_some() {
        // From the start, so a SIGUSR1 that comes while the VM is built waits for it.
        flint_vmm::pause::block_snapshot_signal().context("cannot block SIGUSR1")?;
    }
    let jail = cli.jail.map(|root| JailConfig {
        root,
        uid: cli.jail_uid,
        gid: cli.jail_gid,
    });
    let times = Arc::new(BootTimes::new(start));
    let (mut vmm, serial_log, timings) = match cli.restore_from {
        #[cfg(target_arch = "x86_64")]
        Some(dir) => {
            let restore = RestoreConfig::new(dir, cli.vm).context("invalid configuration")?;
            if let Some(jail) = &jail {
                let devices = flint_vmm::vmm::restored_devices(&restore).with_context(|| {
                    format!("cannot read the snapshot in {}", restore.dir.display())
                })?;
                let plan = Plan::for_restore(&restore, &devices, snapshot_to.as_deref());
                jail::enter(jail, &plan).context("cannot enter the jail")?;
            }
            let vmm = Vmm::restore(&restore, times.clone())
                .with_context(|| format!("cannot restore the VM from {}", restore.dir.display()))?;
            tracing::info!(dir = %restore.dir.display(), "restored");
            (vmm, restore.serial_log, restore.timings)
        }
        #[cfg(not(target_arch = "x86_64"))]
        Some(_) => anyhow::bail!("--restore-from {UNSUPPORTED_SNAPSHOTS}"),
        None => {
            let raw = cli.vm.resolve(cli.config.as_deref())?;
            let config = VmConfig::try_from(raw).context("invalid configuration")?;
            // Read before a jail hides /sys.
            let pvm = hostfix::pvm_detected_at(std::path::Path::new(hostfix::PVM_MODULE_PATH));
            if let Some(jail) = &jail {
                let plan = Plan::for_boot(&config, snapshot_to.as_deref());
                jail::enter(jail, &plan).context("cannot enter the jail")?;
            }
            let vmm = boot(&config, times.clone(), pvm)?;
            (vmm, config.serial_log, config.timings)
        }
    };
    if let Some(jail) = &jail {
        jail::drop_privileges(jail).context("cannot drop the jail's privileges")?;
        tracing::info!(root = %jail.root.display(), uid = jail.uid, gid = jail.gid, "jailed");
    }
    if let Some(dir) = snapshot_to {
        vmm.snapshot_on_signal(dir);
    }

    let exit = vmm.run().context("cannot run the VM")?;
    let summary = ExitSummary::new(&exit, times.report());
    let line = serde_json::to_string(&summary).context("cannot serialise the summary")?;
    if let Some(path) = &timings {
        let timings = serde_json::to_string_pretty(&summary.timings)
            .context("cannot serialise the timings")?;
        std::fs::write(path, timings + "\n")
            .with_context(|| format!("cannot write timings to {}", path.display()))?;
    }
    if serial_log.is_none() {
        // Serial output went to stdout too: start the summary on its own line.
        println!();
    }
    println!("{line}");
    Ok(summary.exit_code)
}

/// Builds a VM that boots `config`'s kernel.
fn boot(config: &VmConfig, times: Arc<BootTimes>, pvm: bool) -> anyhow::Result<Vmm> {
    let vmm = Vmm::build(config, times, pvm).context("cannot build the VM")?;
    if vmm.workaround_applied() {
        tracing::info!(
            "host KVM is the nested kvm_pvm hypervisor ({} exists): added `{}` to the \
             kernel command line, because guests there cannot use those CPU features, and \
             hid the KVM features that need a hypercall (a vmcall never returns there)",
            hostfix::PVM_MODULE_PATH,
            hostfix::PVM_CMDLINE
        );
    }
    tracing::info!(cmdline = vmm.cmdline(), entry = ?vmm.entry(), "booting");
    Ok(vmm)
}

fn main() {
    let start = Instant::now();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FLINT_VMM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let code = match run(start) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("flint-vmm: {e:#}");
            EXIT_VMM_ERROR
        }
    };
    // vCPU threads may still be inside KVM_RUN: end the process, not just main.
    std::process::exit(code);
}
