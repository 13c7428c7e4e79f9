//! Cold-start breakdown from the agent's own phase timings (InvokeResponse.timings) of
//! the empty-pool cold starts, beside the process floors measured in the same run.

use super::{ns_ms, Ctx, ScenarioError};
use crate::report::Scenario;

/// Splits each empty-pool cold start into its phases.
pub fn run(ctx: &Ctx) -> Result<Scenario, ScenarioError> {
    let d = ctx
        .cold
        .as_ref()
        .ok_or(ScenarioError::Needs("cold_empty"))?;
    let mut s = Scenario::new("breakdown", "Cold-start breakdown (agent phase timings)");
    let col = |f: &dyn Fn(&(f64, flint_proto::v1::InvokeTimings)) -> f64| -> Vec<f64> {
        d.samples.iter().map(f).collect()
    };
    let sandbox = col(&|(_, t)| ns_ms(t.sandbox_ns.saturating_sub(t.init_boot_ns)));
    let init = col(&|(_, t)| ns_ms(t.init_boot_ns));
    let code = col(&|(_, t)| ns_ms(t.code_load_ns));
    let runtime = col(&|(_, t)| ns_ms(t.runtime_init_ns));
    let handler = col(&|(_, t)| ns_ms(t.duration_ns));
    let other = col(&|(total, t)| {
        let phases = ns_ms(t.sandbox_ns + t.code_load_ns + t.runtime_init_ns + t.duration_ns);
        (total - phases).max(0.0)
    });
    let total = col(&|(total, _)| *total);
    if d.samples
        .iter()
        .all(|(_, t)| t.sandbox_ns == 0 && t.runtime_init_ns == 0)
    {
        return Err(ScenarioError::Unexpected(
            "flintd reported no phase timings (sandbox_ns and runtime_init_ns are zero)".into(),
        ));
    }
    let sb = s.add(
        "sandbox create (namespaces, cgroup, exec init)",
        "ms",
        false,
        &sandbox,
    );
    s.add("init start (flint-init until Hello)", "ms", false, &init);
    s.add("code load (unpack bundle)", "ms", false, &code);
    let rt = s.add(
        "runtime init (python, bootstrap, import handler)",
        "ms",
        false,
        &runtime,
    );
    s.add("handler (invoke to result)", "ms", false, &handler);
    s.add("rest (API, scheduling, gRPC)", "ms", false, &other);
    s.add("total (client-observed)", "ms", false, &total);
    let py = s.add("python3 -c pass (host)", "ms", true, &d.python_pass_ms);
    let bw = s.add("bwrap python3 -c pass", "ms", true, &d.bwrap_pass_ms);
    s.ratio(
        "runtime init / python3 -c pass (p50)",
        ("runtime init", rt),
        ("python3 -c pass", py),
    );
    let bwrap_overhead = match (bw, py) {
        (Some(b), Some(p)) if b > p => Some(b - p),
        _ => None,
    };
    s.ratio(
        "sandbox create / bwrap overhead (p50)",
        (
            "sandbox create + init start",
            sb.zip(s.stats("init start (flint-init until Hello)"))
                .map(|(a, b)| a + b.p50),
        ),
        ("bwrap python -c pass - python -c pass", bwrap_overhead),
    );
    s.note("phases are medians of the agent's own timings of the empty-pool cold starts; the medians do not add up to the median total");
    Ok(s)
}
