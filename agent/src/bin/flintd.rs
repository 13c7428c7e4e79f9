//! flintd: Flint's host agent.

use clap::Parser;
use flint_agent::config::{Config, RawConfig};

fn main() {
    if let Err(e) = run() {
        eprintln!("flintd: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FLINT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = Config::try_from(RawConfig::parse())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let agent = flint_agent::core::Agent::open(config)?;
        flint_agent::server::serve(agent).await?;
        Ok(())
    })
}
