//! microVM backend: flint-vmm from process start to the guest's first instruction, its
//! whole run and its peak resident memory (wait4 rusage), with the tiny guest; baseline
//! `true` measured the same way, interleaved. Firecracker is not installed here.

use super::{ms, Ctx, ScenarioError};
use crate::elf;
use crate::procs;
use crate::progress::Progress;
use crate::report::Scenario;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(30);

/// Runs the tiny guest `vmm_runs` times.
pub fn run(ctx: &mut Ctx) -> Result<Scenario, ScenarioError> {
    let (id, title) = (
        "microvm",
        "microVM: flint-vmm start to first guest instruction",
    );
    let vmm = ctx.cfg.bin_dir.join("flint-vmm");
    if !vmm.is_file() {
        return Err(ScenarioError::Unexpected(format!(
            "{} is missing: run `cargo build --workspace` (or pass --bin-dir)",
            vmm.display()
        )));
    }
    if !std::path::Path::new("/dev/kvm").exists() {
        return Ok(Scenario::unavailable(
            id,
            title,
            "/dev/kvm does not exist on this machine",
        ));
    }
    let dir =
        tempfile::tempdir().map_err(|e| ScenarioError::Unexpected(format!("tempdir: {e}")))?;
    let kernel = dir.path().join("guest.elf");
    let serial = dir.path().join("serial.log");
    std::fs::write(&kernel, elf::pvh_image(elf::OK_THEN_RESET))
        .map_err(|e| ScenarioError::Unexpected(format!("write guest: {e}")))?;
    let vmm_args: Vec<OsString> = vec![
        "--kernel".into(),
        kernel.clone().into(),
        "--mem-mib".into(),
        "128".into(),
        "--serial-log".into(),
        serial.clone().into(),
    ];
    let true_bin = PathBuf::from("/bin/true");
    let n = ctx.cfg.vmm_runs;
    let mut order: Vec<bool> = (0..2 * n).map(|i| i % 2 == 0).collect();
    ctx.rng.shuffle(&mut order);
    let (mut first, mut wall, mut cpu, mut rss) = (vec![], vec![], vec![], vec![]);
    let (mut twall, mut tcpu, mut trss) = (vec![], vec![], vec![]);
    let mut p = Progress::new(id, order.len() as u64);
    for is_vmm in order {
        if is_vmm {
            let r = procs::run(Command::new(&vmm).args(&vmm_args), DEADLINE)?;
            let out = String::from_utf8_lossy(&r.stdout);
            let summary: serde_json::Value = out
                .lines()
                .rev()
                .find_map(|l| serde_json::from_str(l).ok())
                .ok_or_else(|| {
                    ScenarioError::Unexpected(format!(
                        "flint-vmm (status {}) printed no JSON summary: {}",
                        r.status,
                        String::from_utf8_lossy(&r.stderr).trim()
                    ))
                })?;
            if summary["reason"] != "reset" || r.status != 2 {
                return Err(ScenarioError::Unexpected(format!(
                    "the tiny guest should end with an i8042 reset (status 2), got status {}: {summary}",
                    r.status
                )));
            }
            let us = summary["timings"]["first_guest_instruction_us"]
                .as_f64()
                .ok_or_else(|| {
                    ScenarioError::Unexpected(format!("no first_guest_instruction_us in {summary}"))
                })?;
            first.push(us / 1e3);
            wall.push(ms(r.wall));
            cpu.push(ms(r.cpu));
            if let Some(kib) = procs::peak_rss_kib(&vmm, &vmm_args, DEADLINE)? {
                rss.push(kib as f64 / 1024.0);
            }
        } else {
            let r = procs::run_ok(&mut Command::new(&true_bin), DEADLINE)?;
            twall.push(ms(r.wall));
            tcpu.push(ms(r.cpu));
            if let Some(kib) = procs::peak_rss_kib(&true_bin, &[], DEADLINE)? {
                trss.push(kib as f64 / 1024.0);
            }
        }
        p.inc("");
    }
    p.finish("done");
    let serial_out = std::fs::read_to_string(&serial).unwrap_or_default();
    let mut s = Scenario::new(id, title);
    s.add(
        "flint-vmm start to first guest instruction",
        "ms",
        false,
        &first,
    );
    let w = s.add("flint-vmm whole run (start to exit)", "ms", false, &wall);
    let c = s.add("flint-vmm CPU (user+sys)", "ms", false, &cpu);
    let tw = s.add("true whole run", "ms", true, &twall);
    let tc = s.add("true CPU (user+sys)", "ms", true, &tcpu);
    let r = s.add("flint-vmm peak RSS", "MiB", false, &rss);
    let tr = s.add("true peak RSS", "MiB", true, &trss);
    s.ratio(
        "flint-vmm / true peak RSS (p50)",
        ("flint-vmm", r),
        ("true", tr),
    );
    s.ratio(
        "flint-vmm / true wall (p50)",
        ("flint-vmm", w),
        ("true", tw),
    );
    s.ratio("flint-vmm / true CPU (p50)", ("flint-vmm", c), ("true", tc));
    if rss.is_empty() {
        s.note(format!(
            "peak RSS not reported: {} (Debian package time) is not installed; wait4 on our own \
             children would count the bench's own resident memory",
            procs::GNU_TIME
        ));
    } else {
        s.note("peak RSS measured by GNU time (a separate run of each), wall and CPU by wait4");
    }
    if !serial_out.contains("OK") {
        s.note(format!(
            "the guest's serial output was {serial_out:?}, expected OK"
        ));
    }
    let fc = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("firecracker").is_file()));
    s.note(if fc {
        "a firecracker binary is on PATH but this harness does not drive it; compare with benches/README.md's peer table"
    } else {
        "Firecracker is not available on this machine (not packaged); its numbers in benches/README.md come from HOST-FACTS.md, not from this run"
    });
    s.note("128 MiB guest, 1 vCPU; the guest writes OK to COM1 and resets through the i8042. Wall time is bimodal on kvm_pvm hosts (closing the VM takes 16-24 ms inside the host in most runs): read CPU beside wall");
    Ok(s)
}
