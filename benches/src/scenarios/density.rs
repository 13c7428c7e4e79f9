//! Density: keep adding idle warm instances of a 128 MB hello function (a new function
//! each, invoked once) until host memory use, the drop of MemAvailable since the start,
//! reaches the budget. Baseline: idle bubblewrap peers running the same handler.

use super::{Ctx, ScenarioError};
use crate::agent::{self, Agent};
use crate::baseline::PeerCgroup;
use crate::machine::meminfo_kib;
use crate::progress::Progress;
use crate::report::Scenario;
use std::time::{Duration, Instant};

/// Memory the extrapolation assumes (the machine size of these hosts).
const EXTRAPOLATE_MIB: f64 = 24.0 * 1024.0;
const MIB: f64 = 1024.0 * 1024.0;

fn available_mib() -> Result<f64, ScenarioError> {
    meminfo_kib("MemAvailable")
        .map(|k| k as f64 / 1024.0)
        .ok_or_else(|| {
            ScenarioError::Unexpected("cannot read MemAvailable from /proc/meminfo".into())
        })
}

/// Adds instances until the budget, the time cap, or the agent says no.
pub async fn run(ctx: &mut Ctx, agent: &Agent) -> Result<Scenario, ScenarioError> {
    let mut s = Scenario::new("density", "Density of idle warm instances (128 MB hello)");
    let budget = ctx.cfg.density_budget_mb as f64;
    let cap = ctx.cfg.density_time_cap;

    // Peer baseline first: idle bubblewrap sandboxes holding the same handler.
    let k = ctx.cfg.density_peers;
    let mut p = Progress::new("density", k as u64 + 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cgroup = PeerCgroup::create()?;
    let before = available_mib()?;
    let cg_before = cgroup.bytes()?;
    let mut peers = Vec::with_capacity(k);
    for _ in 0..k {
        peers.push(ctx.baselines()?.idle_peer(&cgroup.dir)?);
        p.inc("bwrap peers");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let peer_mib = (before - available_mib()?) / k as f64;
    let peer_cg_mib = cgroup.bytes()?.saturating_sub(cg_before) as f64 / MIB / k as f64;
    drop(peers);
    drop(cgroup);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut c = agent.client().await?;
    let start = available_mib()?;
    let cg_start = agent.cgroup_memory_bytes();
    let t0 = Instant::now();
    let mut n = 0usize;
    let mut used = 0.0;
    let stop = loop {
        if used >= budget {
            break format!("memory budget of {budget} MB reached");
        }
        if t0.elapsed() > cap {
            break format!("time cap of {} s reached before the budget", cap.as_secs());
        }
        let name = ctx.name("dens", n);
        if let Err(e) = agent::deploy(&mut c, &name, &ctx.code).await {
            break format!("agent refused instance {}: {e}", n + 1);
        }
        if let Err(e) = agent::invoke(&mut c, &name, b"").await {
            break format!("agent could not start instance {}: {e}", n + 1);
        }
        n += 1;
        used = start - available_mib()?;
        p.set_total(k as u64 + 1 + n as u64 + 1);
        p.inc(&format!("{n} instances, {used:.0} MB"));
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    used = start - available_mib()?;
    p.finish(&stop);
    if n == 0 {
        return Err(ScenarioError::Unexpected(format!(
            "no instance was added: {stop}"
        )));
    }
    let per = used / n as f64;
    s.add(
        "flint host MB per idle instance (MemAvailable drop)",
        "MB",
        false,
        &[per],
    );
    // No parent cgroup yet means no sandbox yet: nothing charged.
    let cg = match (cg_start.or(Some(0)), agent.cgroup_memory_bytes()) {
        (Some(a), Some(b)) => s.add(
            "flint cgroup-charged MB per instance",
            "MB",
            false,
            &[b.saturating_sub(a) as f64 / MIB / n as f64],
        ),
        _ => None,
    };
    let peer_cg = s.add(
        "bwrap peer cgroup-charged MB per sandbox",
        "MB",
        true,
        &[peer_cg_mib],
    );
    s.value("instances", n as f64);
    s.value("host MB used", used);
    s.value("budget MB", budget);
    s.value("bwrap peers measured", k as f64);
    s.value("bwrap peer MemAvailable drop per sandbox (noisy)", peer_mib);
    if per > 0.0 {
        s.value(
            "extrapolated instances in 24 GiB",
            (EXTRAPOLATE_MIB / per).floor(),
        );
    }
    s.ratio(
        "flint / bwrap peer cgroup-charged MB per instance",
        ("flint", cg),
        ("bwrap peer", peer_cg),
    );
    s.note(format!("stopped: {stop}"));
    s.note(
        "'extrapolated instances in 24 GiB' is an extrapolation (24 GiB / MB per instance), \
         not a measurement; MemAvailable is host-wide, so other activity on the machine adds noise \
         (the peers' figure, from few sandboxes, most of all): the cgroup-charged figures are the steadier comparison",
    );
    Ok(s)
}
