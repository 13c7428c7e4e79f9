//! flint-bench: starts (or connects to) a flintd, deploys its own functions, runs the
//! scenarios with their baselines, and writes results.json, one SVG chart per scenario
//! and summary.md. `flint-bench --quick` is the CI smoke run.

mod agent;
mod baseline;
mod cli;
mod echo;
mod elf;
mod http;
mod machine;
mod procs;
mod progress;
mod report;
mod rest;
mod rng;
mod run;
mod runtime_cases;
mod scenarios;
mod stats;
mod svg;

use clap::Parser;

fn main() {
    if let Err(e) = real_main() {
        eprintln!("flint-bench: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> anyhow::Result<()> {
    let args = cli::Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Some(sock) = &args.echo_server {
        return Ok(rt.block_on(echo::serve(sock))?);
    }
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let cfg = cli::Config::try_from(args)?;
    let out = cfg.out.clone();
    let results = rt.block_on(run::run(cfg, command))?;
    let failed: Vec<String> = results
        .scenarios
        .iter()
        .filter(|s| s.status == report::Status::Failed)
        .map(|s| format!("{}: {}", s.id, s.reason.clone().unwrap_or_default()))
        .collect();
    eprintln!("results: {}", out.join("results.json").display());
    if !failed.is_empty() {
        anyhow::bail!(
            "{} scenario(s) failed:\n  {}",
            failed.len(),
            failed.join("\n  ")
        );
    }
    Ok(())
}
