//! flintd's configuration: raw flags (clap) validated into [`Config`]. Every default
//! is documented here, once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Errors in the configuration; each says which flag to change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The flint-init binary was not found
    #[error(
        "flint-init not found at {0}: build it (cargo build -p flint-init) or pass --init-path"
    )]
    InitMissing(PathBuf),
    /// The images directory holds no runtime
    #[error("no runtime images in {0}: run images/build-rootfs.sh or pass --images-dir")]
    NoImages(PathBuf),
    /// The sandbox backend name is unknown
    #[error("unknown sandbox backend {0:?}: use namespace")]
    UnknownBackend(String),
    /// keep-alive of zero
    #[error("--keep-alive must be at least 1 second")]
    KeepAlive,
    /// A limit of zero
    #[error("{0} must be at least 1")]
    ZeroLimit(&'static str),
}

/// flintd's command-line flags, as typed.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "flintd",
    version,
    about = "Flint's host agent: serves the flint.v1 gRPC API"
)]
pub struct RawConfig {
    /// Directory for the SQLite database, code bundles and function logs.
    #[arg(long, env = "FLINT_DATA_DIR", default_value = "/var/lib/flint/data")]
    pub data_dir: PathBuf,
    /// Unix socket the API listens on.
    #[arg(long, env = "FLINT_SOCKET", default_value = "/run/flint/flintd.sock")]
    pub socket: PathBuf,
    /// Also listen on this TCP address (for example 127.0.0.1:50051).
    #[arg(long, env = "FLINT_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Runtime images built by images/build-rootfs.sh.
    #[arg(
        long,
        env = "FLINT_IMAGES_DIR",
        default_value = "/var/lib/flint/images"
    )]
    pub images_dir: PathBuf,
    /// The flint-init binary; default: next to the flintd executable.
    #[arg(long, env = "FLINT_INIT_PATH")]
    pub init_path: Option<PathBuf>,
    /// Sandbox backend: namespace.
    #[arg(long, env = "FLINT_SANDBOX", default_value = "namespace")]
    pub sandbox: String,
    /// Seconds an idle instance is kept warm before it is destroyed.
    #[arg(long, env = "FLINT_KEEP_ALIVE", default_value_t = 300)]
    pub keep_alive: u64,
    /// cgroup (relative to each hierarchy's root) under which sandboxes are created.
    #[arg(long, env = "FLINT_CGROUP_PARENT", default_value = "flint")]
    pub cgroup_parent: String,
    /// Invocations the agent runs at once, over all functions.
    #[arg(long, env = "FLINT_CONCURRENCY_LIMIT", default_value_t = 1000)]
    pub concurrency_limit: u32,
    /// Invocations per second each function may receive.
    #[arg(long, env = "FLINT_FUNCTION_RATE_LIMIT", default_value_t = 1000)]
    pub function_rate_limit: u32,
}

/// Which sandbox implementation runs instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Linux namespaces + cgroups, flint-init over a Unix socket.
    Namespace,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub socket: PathBuf,
    pub listen: Option<SocketAddr>,
    pub images_dir: PathBuf,
    pub init_path: PathBuf,
    pub backend: Backend,
    pub keep_alive: Duration,
    pub cgroup_parent: String,
    pub concurrency_limit: u32,
    pub function_rate_limit: u32,
}

impl TryFrom<RawConfig> for Config {
    type Error = ConfigError;

    fn try_from(raw: RawConfig) -> Result<Self, ConfigError> {
        let init_path = match raw.init_path {
            Some(p) => p,
            None => std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(|d| d.join("flint-init")))
                .unwrap_or_else(|| PathBuf::from("flint-init")),
        };
        if !init_path.is_file() {
            return Err(ConfigError::InitMissing(init_path));
        }
        let backend = match raw.sandbox.as_str() {
            "namespace" => Backend::Namespace,
            other => return Err(ConfigError::UnknownBackend(other.to_string())),
        };
        if raw.keep_alive == 0 {
            return Err(ConfigError::KeepAlive);
        }
        if raw.concurrency_limit == 0 {
            return Err(ConfigError::ZeroLimit("--concurrency-limit"));
        }
        if raw.function_rate_limit == 0 {
            return Err(ConfigError::ZeroLimit("--function-rate-limit"));
        }
        Ok(Config {
            data_dir: raw.data_dir,
            socket: raw.socket,
            listen: raw.listen,
            images_dir: raw.images_dir,
            init_path,
            backend,
            keep_alive: Duration::from_secs(raw.keep_alive),
            cgroup_parent: raw.cgroup_parent,
            concurrency_limit: raw.concurrency_limit,
            function_rate_limit: raw.function_rate_limit,
        })
    }
}
