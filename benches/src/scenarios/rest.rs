//! REST API overhead: one warm function invoked through Lambda's REST API (TCP
//! loopback, SigV4-signed, JSON over HTTP/1.1 keep-alive) and through the gRPC API
//! (the Unix socket), alternating in the same run, 0 B and 1 KB payloads.

use super::{ms, Ctx, ScenarioError};
use crate::agent::{self, Agent};
use crate::progress::Progress;
use crate::report::Scenario;
use crate::rest::RestClient;
use std::time::Instant;

/// Measures warm invoke latency over both front ends.
pub async fn run(ctx: &mut Ctx, agent: &Agent) -> Result<Scenario, ScenarioError> {
    let ep = agent.rest.clone().ok_or_else(|| {
        ScenarioError::Unexpected(
            "this flintd serves no REST API (no --api-listen, or an --endpoint agent)".into(),
        )
    })?;
    let mut c = agent.client().await?;
    let name = ctx.name("rest", 0);
    agent::deploy(&mut c, &name, &ctx.code).await?;
    agent::invoke(&mut c, &name, b"").await?;
    let n = if ctx.cfg.quick { 100 } else { 1000 };
    let mut rest =
        RestClient::connect(&ep).map_err(|e| ScenarioError::Unexpected(e.to_string()))?;
    let mut p = Progress::new("rest", (4 * n) as u64);
    let mut s = Scenario::new("rest", "REST API warm invoke overhead");
    for (label, size) in [("0 B", 0usize), ("1 KB", 1024)] {
        let payload = ctx.rng.json_payload(size);
        let (mut via_rest, mut via_grpc) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for _ in 0..n {
            let t0 = Instant::now();
            let (_, body) = tokio::task::block_in_place(|| rest.invoke(&name, &payload))
                .map_err(|e| ScenarioError::Unexpected(e.to_string()))?;
            via_rest.push(ms(t0.elapsed()));
            if body.len() != payload.len().max(2) {
                return Err(ScenarioError::Unexpected(format!(
                    "REST invoke echoed {} bytes for {}",
                    body.len(),
                    payload.len()
                )));
            }
            p.inc(label);
            let (dt, _) = agent::invoke(&mut c, &name, &payload).await?;
            via_grpc.push(ms(dt));
            p.inc(label);
        }
        let r = s.add(&format!("REST invoke, {label}"), "ms", false, &via_rest);
        let g = s.add(&format!("gRPC invoke, {label}"), "ms", true, &via_grpc);
        s.ratio(
            &format!("REST / gRPC p50, {label}"),
            ("REST", r),
            ("gRPC", g),
        );
    }
    p.finish("done");
    s.note("REST: TCP loopback with SigV4 verification and the access-key file read per request; gRPC: the Unix socket. Requests alternate, one at a time.".to_string());
    Ok(s)
}
