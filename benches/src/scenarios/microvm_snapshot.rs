//! microVM snapshots: flint-vmm restoring a snapshot of a tiny guest versus a fresh boot
//! of the same guest, in one run.
//!
//! Timing: the counting guest ([`elf::COUNTER`], built to count to 10,000) is snapshotted
//! (`--snapshot-to`, SIGUSR1) after at least 2,000 counts (the serial log says exactly
//! when). Fresh boots of the same code counting only the rest and restores of the snapshot
//! (which count the rest) alternate in a seeded order, so both runs do the same guest work
//! after their first instruction. Per run: flint-vmm's
//! own `main` -> first KVM_RUN ("first guest instruction"; for a restore that includes
//! reading the state, mapping the memory file and loading every vCPU, VM and device state)
//! and -> first serial byte, the whole run's wall and CPU (wait4) and peak RSS (GNU time).
//!
//! Sharing: [`elf::FILL_THEN_READ`] writes 32 MiB and then keeps reading it. K fresh boots
//! run at once until each has read it twice, then K restores of one snapshot taken after
//! its first pass; `/proc/PID/smaps_rollup` gives each one's RSS and PSS (shared pages
//! divided among their users).

use super::vm_fleet::{mem_available_mib, run_together, Rollup};
use super::{ms, Ctx, ScenarioError};
use crate::elf;
use crate::procs;
use crate::progress::Progress;
use crate::report::Scenario;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const ID: &str = "microvm_snapshot";
const TITLE: &str = "microVM: snapshot restore vs fresh boot, memory shared between restored VMs";
const DEADLINE: Duration = Duration::from_secs(60);
/// The timing guest's count limit, and the counts done before its snapshot is asked for
/// (the rest leaves a wide margin for the signal's way on a fast host).
const TIMING_LIMIT: u32 = 10_000;
const SNAPSHOT_AFTER: u32 = 2_000;
const MEM_MIB: u32 = 128;
/// What a VM of the sharing test is given on top of its guest data, for the memory check.
const VM_OVERHEAD_MIB: u64 = 8;

fn err(what: impl Into<String>) -> ScenarioError {
    ScenarioError::Unexpected(what.into())
}

fn vmm_cmd(vmm: &Path, args: &[OsString]) -> Command {
    let mut c = Command::new(vmm);
    c.args(args).env("FLINT_VMM_LOG", "warn");
    c
}

/// Boots `kernel`, sends SIGUSR1 once the serial log has `after` bytes, and waits for the
/// snapshot (exit status 5) in `dir`. Returns the serial bytes written before the snapshot.
fn take_snapshot(vmm: &Path, kernel: &Path, dir: &Path, after: u64) -> Result<u64, ScenarioError> {
    let serial = dir.with_extension("serial");
    let mut child = vmm_cmd(vmm, &[])
        .arg("--kernel")
        .arg(kernel)
        .args(["--mem-mib", &MEM_MIB.to_string()])
        .arg("--serial-log")
        .arg(&serial)
        .arg("--snapshot-to")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(format!("start {}: {e}", vmm.display())))?;
    let t0 = Instant::now();
    let len = || std::fs::metadata(&serial).map_or(0, |m| m.len());
    while len() < after {
        let ended = child.try_wait().ok().flatten();
        if ended.is_some() || t0.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            return Err(err(format!(
                "the guest ended ({ended:?}) or stalled before its snapshot point ({} of {after} serial bytes in {:?})",
                len(),
                t0.elapsed()
            )));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let pid = child.id() as libc::pid_t;
    // SAFETY: kill(2) on our own child, not yet reaped (it has not been waited for).
    unsafe { libc::kill(pid, libc::SIGUSR1) };
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| err(format!("wait: {e}")))? {
            break st;
        }
        if t0.elapsed() > 2 * DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            return Err(err("flint-vmm did not finish its snapshot in time"));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    if status.code() != Some(5) {
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut stderr);
        }
        return Err(err(format!(
            "snapshot failed: flint-vmm exited with {status} (5 expected): {}",
            stderr.trim()
        )));
    }
    Ok(len())
}

/// One measured run.
struct Run {
    first_us: f64,
    serial_us: f64,
    wall_ms: f64,
    cpu_ms: f64,
    rss_mib: Option<f64>,
}

/// Runs flint-vmm under GNU time (peak RSS; wall and CPU from wait4, which counts GNU
/// time's own fraction of a millisecond too) and checks the guest's exit status.
fn measured(vmm: &Path, args: &[OsString]) -> Result<Run, ScenarioError> {
    let gnu_time = Path::new(procs::GNU_TIME).is_file();
    let mut cmd = if gnu_time {
        let mut c = Command::new(procs::GNU_TIME);
        c.args(["-f", "FLINT_BENCH_MAXRSS_KIB %M"])
            .arg(vmm)
            .args(args)
            .env("FLINT_VMM_LOG", "warn");
        c
    } else {
        vmm_cmd(vmm, args)
    };
    let r = procs::run(&mut cmd, DEADLINE)?;
    let stdout = String::from_utf8_lossy(&r.stdout);
    let stderr = String::from_utf8_lossy(&r.stderr);
    let summary: serde_json::Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| {
            err(format!(
                "flint-vmm (status {}) printed no JSON summary: {}",
                r.status,
                stderr.trim()
            ))
        })?;
    if r.status != elf::COUNTER_OK {
        return Err(err(format!(
            "the counting guest should end with status {} (counters agree), got {}: {summary}",
            elf::COUNTER_OK,
            r.status
        )));
    }
    let t = &summary["timings"];
    let us = |k: &str| {
        t[k].as_f64()
            .ok_or_else(|| err(format!("no {k} in flint-vmm's summary {summary}")))
    };
    Ok(Run {
        first_us: us("first_guest_instruction_us")?,
        serial_us: us("first_serial_byte_us")?,
        wall_ms: ms(r.wall),
        cpu_ms: ms(r.cpu),
        rss_mib: stderr
            .lines()
            .find_map(|l| l.strip_prefix("FLINT_BENCH_MAXRSS_KIB "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|kib| kib / 1024.0),
    })
}

/// Series of one kind of run.
#[derive(Default)]
struct Runs {
    first: Vec<f64>,
    serial: Vec<f64>,
    wall: Vec<f64>,
    cpu: Vec<f64>,
    rss: Vec<f64>,
}

impl Runs {
    fn push(&mut self, r: Run) {
        self.first.push(r.first_us / 1e3);
        self.serial.push(r.serial_us / 1e3);
        self.wall.push(r.wall_ms);
        self.cpu.push(r.cpu_ms);
        self.rss.extend(r.rss_mib);
    }
}

/// Runs the timing and the sharing measurements.
pub fn run(ctx: &mut Ctx) -> Result<Scenario, ScenarioError> {
    let vmm = ctx.cfg.bin_dir.join("flint-vmm");
    if !vmm.is_file() {
        return Err(err(format!(
            "{} is missing: run `cargo build --workspace` (or pass --bin-dir)",
            vmm.display()
        )));
    }
    if !Path::new("/dev/kvm").exists() {
        return Ok(Scenario::unavailable(
            ID,
            TITLE,
            "/dev/kvm does not exist on this machine",
        ));
    }
    let dir = tempfile::Builder::new()
        .prefix("flint-bench-snap-")
        .tempdir()
        .map_err(|e| err(format!("tempdir: {e}")))?;
    let d = dir.path();
    let write = |name: &str, code: &[u8]| -> Result<PathBuf, ScenarioError> {
        let p = d.join(name);
        std::fs::write(&p, elf::pvh_image(code)).map_err(|e| err(format!("write {name}: {e}")))?;
        Ok(p)
    };
    let counter = write("counter.elf", &elf::counter_to(TIMING_LIMIT))?;
    let snap = d.join("counter-snap");
    let at = take_snapshot(&vmm, &counter, &snap, u64::from(SNAPSHOT_AFTER))?;
    let rest = u32::try_from(at)
        .ok()
        .and_then(|at| TIMING_LIMIT.checked_sub(at))
        .filter(|r| *r > 0)
        .ok_or_else(|| {
            err(format!(
                "the snapshot came after {at} of {TIMING_LIMIT} counts"
            ))
        })?;
    let fresh = write("counter-rest.elf", &elf::counter_to(rest))?;
    let serial: OsString = d.join("run.serial").into();
    let boot_args: Vec<OsString> = vec![
        "--kernel".into(),
        fresh.into(),
        "--mem-mib".into(),
        MEM_MIB.to_string().into(),
        "--serial-log".into(),
        serial.clone(),
    ];
    let restore_args: Vec<OsString> = vec![
        "--restore-from".into(),
        snap.clone().into(),
        "--serial-log".into(),
        serial,
    ];
    let n = ctx.cfg.snapshot_runs;
    let k = ctx.cfg.share_vms;
    let mut order: Vec<bool> = (0..2 * n).map(|i| i % 2 == 0).collect();
    ctx.rng.shuffle(&mut order);
    let mut p = Progress::new(ID, order.len() as u64 + 2);
    let (mut boots, mut restores) = (Runs::default(), Runs::default());
    for is_restore in order {
        if is_restore {
            restores.push(measured(&vmm, &restore_args)?);
        } else {
            boots.push(measured(&vmm, &boot_args)?);
        }
        p.inc("");
    }

    // Sharing: as many VMs as memory allows, up to k.
    let per_vm = elf::FILL_MIB + VM_OVERHEAD_MIB;
    let avail = mem_available_mib().unwrap_or(0);
    let k_run = k.min((avail / 2 / per_vm) as usize);
    let share_kernel = write("share.elf", elf::FILL_THEN_READ)?;
    let share_snap = d.join("share-snap");
    take_snapshot(&vmm, &share_kernel, &share_snap, 1)?;
    let logs = |what: &str| -> Vec<PathBuf> {
        (0..k_run)
            .map(|i| d.join(format!("{what}{i}.serial")))
            .collect()
    };
    let fresh_runs: Vec<(Vec<OsString>, PathBuf)> = logs("boot")
        .into_iter()
        .map(|l| {
            let args: Vec<OsString> = vec![
                "--kernel".into(),
                share_kernel.clone().into(),
                "--mem-mib".into(),
                MEM_MIB.to_string().into(),
                "--serial-log".into(),
                l.clone().into(),
            ];
            (args, l)
        })
        .collect();
    let booted = if k_run > 0 {
        run_together(&vmm, &fresh_runs)?
    } else {
        vec![]
    };
    p.inc("fresh fleet");
    let restored_runs: Vec<(Vec<OsString>, PathBuf)> = logs("restored")
        .into_iter()
        .map(|l| {
            let args: Vec<OsString> = vec![
                "--restore-from".into(),
                share_snap.clone().into(),
                "--serial-log".into(),
                l.clone().into(),
            ];
            (args, l)
        })
        .collect();
    let restored = if k_run > 0 {
        run_together(&vmm, &restored_runs)?
    } else {
        vec![]
    };
    p.finish("done");

    let mut s = Scenario::new(ID, TITLE);
    let rf = s.add(
        "restore: start to first guest instruction",
        "ms",
        false,
        &restores.first,
    );
    let bf = s.add(
        "fresh boot: start to first guest instruction",
        "ms",
        true,
        &boots.first,
    );
    s.add(
        "restore: start to first serial byte",
        "ms",
        false,
        &restores.serial,
    );
    s.add(
        "fresh boot: start to first serial byte",
        "ms",
        true,
        &boots.serial,
    );
    let rw = s.add(
        &format!("restore: whole run ({rest} counts)"),
        "ms",
        false,
        &restores.wall,
    );
    let bw = s.add(
        &format!("fresh boot: whole run ({rest} counts)"),
        "ms",
        true,
        &boots.wall,
    );
    let rc = s.add("restore: CPU (user+sys)", "ms", false, &restores.cpu);
    let bc = s.add("fresh boot: CPU (user+sys)", "ms", true, &boots.cpu);
    let rr = s.add("restore: peak RSS", "MiB", false, &restores.rss);
    let br = s.add("fresh boot: peak RSS", "MiB", true, &boots.rss);
    s.ratio(
        "restore / fresh boot, first guest instruction (p50)",
        ("restore", rf),
        ("fresh boot", bf),
    );
    s.ratio(
        "restore / fresh boot, whole run (p50)",
        ("restore", rw),
        ("fresh boot", bw),
    );
    s.ratio(
        "restore / fresh boot, CPU (p50)",
        ("restore", rc),
        ("fresh boot", bc),
    );
    s.ratio(
        "restore / fresh boot, peak RSS (p50)",
        ("restore", rr),
        ("fresh boot", br),
    );
    let mib = |v: &[Rollup], f: fn(&Rollup) -> u64| -> Vec<f64> {
        v.iter().map(|r| f(r) as f64 / 1024.0).collect()
    };
    let sum = |v: &[Rollup]| v.iter().map(|r| r.pss).sum::<u64>() as f64 / 1024.0;
    if k_run > 0 {
        s.add(
            "restored VMs: RSS per VM",
            "MiB",
            false,
            &mib(&restored, |r| r.rss),
        );
        s.add(
            "fresh VMs: RSS per VM",
            "MiB",
            true,
            &mib(&booted, |r| r.rss),
        );
        s.add(
            "restored VMs: PSS per VM",
            "MiB",
            false,
            &mib(&restored, |r| r.pss),
        );
        s.add(
            "fresh VMs: PSS per VM",
            "MiB",
            true,
            &mib(&booted, |r| r.pss),
        );
        s.add(
            "restored VMs: private dirty per VM",
            "MiB",
            false,
            &mib(&restored, |r| r.private_dirty),
        );
        s.add(
            "fresh VMs: private dirty per VM",
            "MiB",
            true,
            &mib(&booted, |r| r.private_dirty),
        );
        let (rs, bs) = (sum(&restored), sum(&booted));
        s.value(&format!("PSS of all {k_run} restored VMs (MiB)"), rs);
        s.value(&format!("PSS of all {k_run} fresh VMs (MiB)"), bs);
        s.value("VMs run at once", k_run as f64);
        s.ratio(
            &format!("PSS sum, {k_run} restored / {k_run} fresh VMs"),
            ("restored", Some(rs)),
            ("fresh", Some(bs)),
        );
    }
    if k_run < k {
        s.note(format!(
            "sharing: {k_run} VMs at once instead of {k}: MemAvailable was {avail} MiB and each fresh VM needs about {per_vm} MiB (half of MemAvailable is the cap)"
        ));
    }
    s.note(format!(
        "{MEM_MIB} MiB, 1 vCPU. Timing guest: counts to {TIMING_LIMIT} with one COM1 write per count; the snapshot is taken at {at}, and the fresh boots run the same code counting to {rest}, so both do the same guest work after their first instruction. Wall and CPU by wait4 on GNU time (which adds a fraction of a millisecond to both), peak RSS by GNU time"
    ));
    s.note(format!(
        "sharing guest: writes {} MiB, then keeps reading one dword per page; {k_run} fresh boots at once, then {k_run} restores of one snapshot taken after its first pass; RSS and PSS from /proc/PID/smaps_rollup once every VM has read its data twice",
        elf::FILL_MIB
    ));
    s.note("on kvm_pvm hosts KVM_CREATE_VM and mapping 128 MiB of guest memory dominate both a fresh boot and a restore of a tiny guest; what a restore saves is the guest's own boot, which a tiny guest does not have");
    Ok(s)
}
