//! flintd's configuration: raw flags (clap) validated into [`Config`]. Every default
//! is documented here, once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Errors in the configuration; each says which flag to change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A networking flag is invalid
    #[error("{0}")]
    Network(String),
    /// `--socket-group` names no group
    #[error("--socket-group {0}: no such group (see /etc/group)")]
    SocketGroup(String),
    /// The flint-init binary was not found
    #[error(
        "flint-init not found at {0}: build it (cargo build -p flint-init) or pass --init-path"
    )]
    InitMissing(PathBuf),
    /// The sandbox backend name is unknown
    #[error("unknown sandbox backend {0:?}: use namespace, microvm or auto")]
    UnknownBackend(String),
    /// keep-alive of zero
    #[error("--keep-alive must be at least 1 second")]
    KeepAlive,
    /// A limit of zero
    #[error("{0} must be at least 1")]
    ZeroLimit(&'static str),
    /// A price that is negative, infinite or not a number
    #[error("{0} must be a finite number >= 0, got {1}")]
    Price(&'static str, f64),
    /// flint-vmm missing
    #[error("flint-vmm not found at {0}: build it (cargo build -p flint-vmm) or pass --vmm-path")]
    VmmMissing(PathBuf),
    /// Kernel missing
    #[error(
        "guest kernel not found at {0}: build it with images/kernel/build.sh or pass --kernel"
    )]
    KernelMissing(PathBuf),
    /// Bad --region value
    #[error("invalid --region {0:?}: use lower-case letters, digits and dashes, e.g. us-east-1")]
    Region(String),
    /// Bad --account-id value
    #[error("invalid --account-id {0:?}: use 12 digits, e.g. 000000000000")]
    Account(String),
    /// Bad --pool-warm value
    #[error("invalid --pool-warm {0:?}: use RUNTIME:MEMORY_MB=COUNT, e.g. python3.11:128=2")]
    PoolWarm(String),
    /// Credentials lifetime out of range
    #[error("--credentials-ttl {0} is out of range: choose 1-3600 seconds")]
    CredentialsTtl(u64),
    /// Function log cap too small
    #[error(
        "--function-log-max-bytes {0} is too small: use at least {FUNCTION_LOG_MIN_BYTES} (64 KiB)"
    )]
    FunctionLogMax(u64),
}

/// Smallest accepted `--function-log-max-bytes`: a few invocations' REPORT lines.
pub const FUNCTION_LOG_MIN_BYTES: u64 = 64 * 1024;

/// flintd's command-line flags, as typed.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "flintd",
    version,
    about = "Flint's host agent: serves the flint.v1 gRPC API",
    args_override_self = true
)]
pub struct RawConfig {
    /// JSON file of settings named like these flags, e.g. {"sandbox": "microvm",
    /// "keep_alive": 60}; flags on the command line win.
    #[arg(long, env = "FLINT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory for the SQLite database, code bundles and function logs.
    #[arg(long, env = "FLINT_DATA_DIR", default_value = "/var/lib/flint/data")]
    pub data_dir: PathBuf,
    /// Unix socket the API listens on.
    #[arg(long, env = "FLINT_SOCKET", default_value = "/run/flint/flintd.sock")]
    pub socket: PathBuf,
    /// Group given access to the Unix socket (mode 0660, owner the user running
    /// flintd); default: the owner's group only.
    #[arg(long, env = "FLINT_SOCKET_GROUP")]
    pub socket_group: Option<String>,
    /// Also listen on this TCP address (for example 127.0.0.1:50051). Every call but
    /// health checks needs `authorization: Bearer KEYID:SECRET` (`flint keys create`).
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
    /// Sandbox backend: namespace, microvm, or auto (microvm where hardware KVM can
    /// run the guest, namespace otherwise).
    #[arg(long, env = "FLINT_SANDBOX", default_value = "auto")]
    pub sandbox: String,
    /// The flint-vmm binary (microvm backend); default: next to the flintd executable.
    #[arg(long, env = "FLINT_VMM_PATH")]
    pub vmm_path: Option<PathBuf>,
    /// The guest kernel (microvm backend), built by images/kernel/build.sh.
    #[arg(
        long,
        env = "FLINT_KERNEL",
        default_value = "/var/cache/flint/kernel/vmlinux"
    )]
    pub kernel: PathBuf,
    /// Directory for microVMs' vsock sockets and serial logs.
    #[arg(long, env = "FLINT_VM_RUN_DIR", default_value = "/run/flint/vm")]
    pub vm_run_dir: PathBuf,
    /// Seconds a microVM may take to boot until flint-init connects.
    #[arg(long, env = "FLINT_VM_BOOT_TIMEOUT", default_value_t = 30)]
    pub vm_boot_timeout: u64,
    /// Run each flint-vmm in its jail (vmm/README.md, "Jail": own namespaces and root,
    /// an unprivileged uid of its own, seccomp); `false` only to debug a VMM.
    #[arg(long, env = "FLINT_VM_JAIL", default_value_t = true, action = clap::ArgAction::Set)]
    pub vm_jail: bool,
    /// Start microVMs by restoring a snapshot of one booted to flint-init's Hello, kept
    /// per runtime and memory size under <data dir>/vm-snapshots (rebuilt when the
    /// kernel, root disk or flint-vmm change); `false` boots every microVM.
    #[arg(long, env = "FLINT_VM_SNAPSHOTS", default_value_t = true, action = clap::ArgAction::Set)]
    pub vm_snapshots: bool,
    /// Seconds an idle instance is kept warm before it is destroyed.
    #[arg(long, env = "FLINT_KEEP_ALIVE", default_value_t = 300)]
    pub keep_alive: u64,
    /// Milliseconds an instance may stay idle before it is frozen (cgroup freezer); 0
    /// freezes it as its invocation ends. Back-to-back invocations within this time
    /// skip the freeze and the thaw (about 0.3 ms of warm latency, measured); what a
    /// handler left running gets at most this long (within its CPU share) after each
    /// invocation.
    #[arg(long, env = "FLINT_FREEZE_AFTER_MS", default_value_t = 50)]
    pub freeze_after_ms: u64,
    /// cgroup (relative to each hierarchy's root) under which sandboxes are created.
    #[arg(long, env = "FLINT_CGROUP_PARENT", default_value = "flint")]
    pub cgroup_parent: String,
    /// Namespace sandbox launchers kept waiting, each in a fresh sandbox cgroup, so a
    /// cold start does not wait for the kernel to move a process into a cgroup (an RCU
    /// grace period, about 10 ms, on hosts whose cgroup2 mount lacks favordynmods);
    /// 0 turns this off. cgroup v1 hierarchies only (off on pure cgroup v2).
    #[arg(long, env = "FLINT_PARKED_LAUNCHERS", default_value_t = 2)]
    pub parked_launchers: usize,
    /// Invocations the agent runs at once, over all functions.
    #[arg(long, env = "FLINT_CONCURRENCY_LIMIT", default_value_t = 1000)]
    pub concurrency_limit: u32,
    /// Invocations per second each function may receive.
    #[arg(long, env = "FLINT_FUNCTION_RATE_LIMIT", default_value_t = 1000)]
    pub function_rate_limit: u32,
    /// Price of one GB-second of billed compute, US dollars (usage reports).
    #[arg(long, env = "FLINT_PRICE_PER_GB_SECOND", allow_negative_numbers = true, default_value_t = crate::metering::pricing::DEFAULT_PER_GB_SECOND_USD)]
    pub price_per_gb_second: f64,
    /// Price of one million requests, US dollars (usage reports).
    #[arg(long, env = "FLINT_PRICE_PER_MILLION_REQUESTS", allow_negative_numbers = true, default_value_t = crate::metering::pricing::DEFAULT_PER_MILLION_REQUESTS_USD)]
    pub price_per_million_requests: f64,
    /// Requests per usage report that cost nothing (deducted from the total).
    #[arg(long, env = "FLINT_FREE_REQUESTS", default_value_t = crate::metering::pricing::DEFAULT_FREE_REQUESTS)]
    pub free_requests: u64,
    /// Serve Prometheus metrics at http://ADDR/metrics (for example 127.0.0.1:9464); off by default.
    #[arg(long, env = "FLINT_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Serve Lambda's REST API (2015-03-31, SigV4-signed requests only) at
    /// http://ADDR, for boto3, the AWS CLI and the SDKs (for example 127.0.0.1:9000);
    /// off by default. Access keys: `flint keys create`.
    #[arg(long, env = "FLINT_API_LISTEN")]
    pub api_listen: Option<SocketAddr>,
    /// PEM certificate chain: serve the REST API over TLS (with --api-tls-key).
    #[arg(long, env = "FLINT_API_TLS_CERT", requires = "api_tls_key")]
    pub api_tls_cert: Option<PathBuf>,
    /// PEM private key of --api-tls-cert.
    #[arg(long, env = "FLINT_API_TLS_KEY", requires = "api_tls_cert")]
    pub api_tls_key: Option<PathBuf>,
    /// Serve HTTP function URLs (the HTTP triggers: `flint triggers create NAME
    /// --function F --http`) at http://ADDR/TRIGGER/, HTTP/1.1 and HTTP/2 (for
    /// example 127.0.0.1:8080); off by default.
    #[arg(long, env = "FLINT_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,
    /// PEM certificate chain: serve function URLs over TLS (with --http-tls-key).
    #[arg(long, env = "FLINT_HTTP_TLS_CERT", requires = "http_tls_key")]
    pub http_tls_cert: Option<PathBuf>,
    /// PEM private key of --http-tls-cert.
    #[arg(long, env = "FLINT_HTTP_TLS_KEY", requires = "http_tls_cert")]
    pub http_tls_key: Option<PathBuf>,
    /// Region of the REST API: the region requests must be signed for and that its
    /// ARNs name.
    #[arg(long, env = "FLINT_REGION", default_value = "us-east-1")]
    pub region: String,
    /// Account id (12 digits) that the REST API's ARNs name.
    #[arg(long, env = "FLINT_ACCOUNT_ID", default_value = "000000000000")]
    pub account_id: String,
    /// Log line format on stderr: text, or json (one object per line with the span fields).
    #[arg(long, env = "FLINT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Most pre-started sandboxes one warm pool (runtime, memory size) keeps; 0 turns
    /// the warm pool off. Pools size themselves from demand below this.
    #[arg(long, env = "FLINT_POOL_MAX", default_value_t = 8)]
    pub pool_max: u32,
    /// Keep at least N sandboxes of RUNTIME:MEMORY_MB ready whatever the demand
    /// (repeatable), e.g. python3.11:128=2.
    #[arg(long = "pool-warm", value_name = "RUNTIME:MB=N")]
    pub pool_warm: Vec<String>,
    /// Warm-pool sandboxes started at once.
    #[arg(long, env = "FLINT_POOL_PARALLEL_STARTS", default_value_t = 2)]
    pub pool_parallel_starts: u32,
    /// Bytes a function's log file (<data-dir>/logs/<function>.log) may reach before
    /// it is rotated to <function>.log.1 (replacing the previous one).
    #[arg(long, env = "FLINT_FUNCTION_LOG_MAX_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub function_log_max_bytes: u64,
    /// Days a function's log file is kept after its last write (checked at start and
    /// hourly); 0: kept until rotation replaces it.
    #[arg(long, env = "FLINT_FUNCTION_LOG_RETENTION_DAYS", default_value_t = 14)]
    pub function_log_retention_days: u32,
    /// Cold starts run at once; 0: twice the CPUs.
    #[arg(long, env = "FLINT_PARALLEL_STARTS", default_value_t = 0)]
    pub parallel_starts: u32,
    /// Milliseconds a cold start may wait for its turn before the invocation is
    /// refused with TooManyRequestsException.
    #[arg(long, env = "FLINT_START_QUEUE_MS", default_value_t = 3000)]
    pub start_queue_ms: u64,
    /// A cold start that makes a sandbox (not a pool hit) waits (within
    /// --start-queue-ms) while the host has less memory
    /// available (MemAvailable) than this many MB.
    #[arg(long, env = "FLINT_START_MIN_FREE_MB", default_value_t = 256)]
    pub start_min_free_mb: u64,
    /// CreateFunction, UpdateFunctionCode and Event invocations are refused
    /// (RESOURCE_EXHAUSTED) while the data directory's file system has less free space
    /// than this many MB; 0: never refused.
    #[arg(long, env = "FLINT_MIN_FREE_DISK_MB", default_value_t = crate::disk::MIN_FREE_DEFAULT_MB)]
    pub min_free_disk_mb: u64,
    /// Invocation records older than this many days are deleted from the metering
    /// database (hourly); 0 keeps them for ever.
    #[arg(long, env = "FLINT_METERING_RETENTION_DAYS", default_value_t = 90)]
    pub metering_retention_days: u32,
    /// Backoff base of asynchronous (Event) retries, milliseconds: retry k after a
    /// function error waits base*k; throttled events back off from base/60 to base*5.
    /// Lambda's is about a minute; tests set a few hundred ms.
    #[arg(long, env = "FLINT_EVENT_RETRY_BASE_MS", default_value_t = 60_000)]
    pub event_retry_base_ms: u64,
    /// Queued events run at once, at most (each also takes concurrency as usual).
    #[arg(long, env = "FLINT_EVENT_WORKERS", default_value_t = 64)]
    pub event_workers: u32,
    /// Milliseconds in one second of MaximumEventAgeInSeconds: 1000. For tests only,
    /// to expire events (at least 60 "seconds" old) quickly.
    #[arg(
        long,
        env = "FLINT_EVENT_AGE_UNIT_MS",
        default_value_t = 1000,
        hide = true
    )]
    pub event_age_unit_ms: u64,
    /// Tests only: schedule triggers also accept rate(N second|seconds), which
    /// EventBridge does not.
    #[arg(long, hide = true)]
    pub schedule_seconds: bool,
    /// Network of functions created without a setting: none (loopback only) or
    /// outbound (docs/NETWORK.md).
    #[arg(long, env = "FLINT_NETWORK_DEFAULT", default_value = "none")]
    pub network_default: String,
    /// Subnet the sandboxes' interfaces are addressed from (a /31 each).
    #[arg(long, env = "FLINT_NETWORK_CIDR", default_value = "100.96.0.0/16")]
    pub network_cidr: String,
    /// Destinations outbound functions may reach, CIDR[:PORT[-PORT],...] (repeatable);
    /// none given: everything not denied.
    #[arg(long = "egress-allow", value_name = "CIDR[:PORTS]")]
    pub egress_allow: Vec<String>,
    /// Destinations outbound functions may not reach, CIDR[:PORT[-PORT],...]
    /// (repeatable); always denied besides: this host, 169.254.0.0/16, other sandboxes.
    #[arg(long = "egress-deny", value_name = "CIDR[:PORTS]")]
    pub egress_deny: Vec<String>,
    /// Name server written into outbound sandboxes' /etc/resolv.conf (repeatable);
    /// default: the host's /etc/resolv.conf name servers that are not loopback.
    #[arg(long = "network-dns", value_name = "IP")]
    pub network_dns: Vec<std::net::Ipv4Addr>,
    /// Turn on IPv4 forwarding (net.ipv4.ip_forward=1) in flintd's network namespace at
    /// start-up, which outbound functions need; without it flintd only warns when it is off.
    #[arg(long, env = "FLINT_NETWORK_ENABLE_FORWARDING")]
    pub network_enable_forwarding: bool,
    /// Lifetime in seconds of the temporary credentials each instance of a function
    /// with an execution role receives (1-3600; docs/ROLES.md).
    #[arg(long, env = "FLINT_CREDENTIALS_TTL", default_value_t = 3600)]
    pub credentials_ttl: u64,
    /// The operator key that seals secrets in the registry: a file of mode 0600 holding
    /// 32 random bytes in base64. Without it, FLINT_SECRETS_KEY (the same base64) is
    /// used; without either, secrets are refused.
    #[arg(long, env = "FLINT_SECRETS_KEY_FILE")]
    pub secrets_key_file: Option<PathBuf>,
    /// PEM file of the CA certificates that https:// webhook destinations are verified
    /// against; without it, the system bundle (/etc/ssl/certs/ca-certificates.crt).
    #[arg(long, env = "FLINT_DESTINATION_CA_FILE")]
    pub destination_ca_file: Option<PathBuf>,
}

/// Which sandbox implementation runs instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Linux namespaces + cgroups, flint-init over a Unix socket.
    Namespace,
    /// A KVM microVM per instance (flint-vmm), flint-init over virtio-vsock.
    MicroVm,
    /// MicroVM where hardware KVM can run the guest, namespace otherwise.
    Auto,
}

/// How flintd writes its log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, with the fields of the enclosing spans.
    Json,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Prices of usage reports.
    pub prices: crate::metering::pricing::Prices,
    /// Where Lambda's REST API is served; None = not served.
    pub api_listen: Option<SocketAddr>,
    /// TLS certificate chain and key of the REST API (both or neither).
    pub api_tls_cert: Option<PathBuf>,
    pub api_tls_key: Option<PathBuf>,
    /// Where HTTP function URLs are served; None = not served.
    pub http_listen: Option<SocketAddr>,
    /// TLS certificate chain and key of the function URLs (both or neither).
    pub http_tls_cert: Option<PathBuf>,
    pub http_tls_key: Option<PathBuf>,
    /// Region and account id of the REST API (validated).
    pub region: String,
    pub account_id: String,
    /// Where `GET /metrics` is served; None = not served.
    pub metrics_listen: Option<SocketAddr>,
    pub log_format: LogFormat,
    pub data_dir: PathBuf,
    pub socket: PathBuf,
    /// Group of the Unix socket (validated at bind).
    pub socket_group: Option<String>,
    pub listen: Option<SocketAddr>,
    pub images_dir: PathBuf,
    pub init_path: PathBuf,
    pub backend: Backend,
    pub vmm_path: PathBuf,
    pub kernel: PathBuf,
    pub vm_run_dir: PathBuf,
    pub vm_boot_timeout: Duration,
    pub vm_jail: bool,
    pub vm_snapshots: bool,
    pub keep_alive: Duration,
    /// An idle instance is frozen after this long (zero: at once).
    pub freeze_after: Duration,
    pub cgroup_parent: String,
    /// Namespace launchers kept parked in their cgroups (0: none).
    pub parked_launchers: usize,
    pub concurrency_limit: u32,
    pub function_rate_limit: u32,
    pub sandbox_pool: crate::pools::key::PoolConfig,
    /// A function's log file is rotated before it passes this many bytes.
    pub function_log_max_bytes: u64,
    /// Log files not written for this long are removed; `None`: never by age.
    pub function_log_retention: Option<Duration>,
    /// Cold starts run at once.
    pub parallel_starts: u32,
    /// How long a cold start may wait for its turn.
    pub start_queue_wait: Duration,
    /// Cold starts wait while the host has less memory available (MB).
    pub start_min_free_mb: u64,
    /// New code and events are refused below this much free disk (MB; 0: never).
    pub min_free_disk_mb: u64,
    /// Metering records are kept this long; None: for ever.
    pub metering_retention: Option<Duration>,
    /// The event dispatcher's backoff base and workers.
    pub events: crate::events::dispatcher::Settings,
    /// Schedule triggers accept rate(N seconds) (the hidden --schedule-seconds).
    pub schedule_seconds: bool,
    /// Network of functions created without a setting.
    pub network_default: crate::sandbox::NetworkMode,
    /// Sandbox networking: subnet, egress policy, DNS, forwarding.
    pub network: crate::sandbox::net::NetConfig,
    /// Lifetime of role credentials (`--credentials-ttl`).
    pub credentials_ttl: Duration,
    /// The operator key file (`--secrets-key-file`).
    pub secrets_key_file: Option<PathBuf>,
    /// CA certificates for https:// webhook destinations (`--destination-ca-file`).
    pub destination_ca_file: Option<PathBuf>,
}

/// A `--region` value: lower-case letters, digits and dashes.
fn valid_region(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 32
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// An `--account-id` value: 12 digits.
fn valid_account(a: &str) -> bool {
    a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit())
}

fn parse_pool_warm(s: &str) -> Result<(crate::pools::key::PoolKey, u32), ConfigError> {
    let bad = || ConfigError::PoolWarm(s.to_string());
    let (key, n) = s.split_once('=').ok_or_else(bad)?;
    let (runtime, mb) = key.rsplit_once(':').ok_or_else(bad)?;
    let memory_mb: u32 = mb.parse().map_err(|_| bad())?;
    let n: u32 = n.parse().map_err(|_| bad())?;
    if runtime.is_empty() || crate::validate::memory(memory_mb).is_err() {
        return Err(bad());
    }
    Ok((
        crate::pools::key::PoolKey {
            runtime: runtime.to_string(),
            memory_mb,
            network: crate::sandbox::NetworkMode::None,
        },
        n,
    ))
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
            "microvm" => Backend::MicroVm,
            "auto" => Backend::Auto,
            other => return Err(ConfigError::UnknownBackend(other.to_string())),
        };
        let vmm_path = raw
            .vmm_path
            .unwrap_or_else(|| init_path.with_file_name("flint-vmm"));
        if backend == Backend::MicroVm {
            if !vmm_path.is_file() {
                return Err(ConfigError::VmmMissing(vmm_path));
            }
            if !raw.kernel.is_file() {
                return Err(ConfigError::KernelMissing(raw.kernel));
            }
        }
        if raw.keep_alive == 0 {
            return Err(ConfigError::KeepAlive);
        }
        if raw.concurrency_limit == 0 {
            return Err(ConfigError::ZeroLimit("--concurrency-limit"));
        }
        if raw.function_rate_limit == 0 {
            return Err(ConfigError::ZeroLimit("--function-rate-limit"));
        }
        if raw.function_log_max_bytes < FUNCTION_LOG_MIN_BYTES {
            return Err(ConfigError::FunctionLogMax(raw.function_log_max_bytes));
        }
        for (flag, v) in [
            ("--price-per-gb-second", raw.price_per_gb_second),
            (
                "--price-per-million-requests",
                raw.price_per_million_requests,
            ),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(ConfigError::Price(flag, v));
            }
        }
        if !valid_region(&raw.region) {
            return Err(ConfigError::Region(raw.region));
        }
        if !valid_account(&raw.account_id) {
            return Err(ConfigError::Account(raw.account_id));
        }
        if let Some(g) = &raw.socket_group {
            if !matches!(nix::unistd::Group::from_name(g), Ok(Some(_))) {
                return Err(ConfigError::SocketGroup(g.clone()));
            }
        }
        let network_default = crate::validate::network(&raw.network_default)
            .map_err(|e| ConfigError::Network(format!("--network-default: {e}")))?;
        let network = crate::sandbox::net::NetConfig::parse(
            &raw.network_cidr,
            &raw.egress_allow,
            &raw.egress_deny,
            &raw.network_dns,
            raw.network_enable_forwarding,
        )
        .map_err(|e| ConfigError::Network(e.to_string()))?;
        if !(1..=crate::roles::token::TTL_MAX_S).contains(&raw.credentials_ttl) {
            return Err(ConfigError::CredentialsTtl(raw.credentials_ttl));
        }
        Ok(Config {
            network_default,
            network,
            credentials_ttl: Duration::from_secs(raw.credentials_ttl),
            secrets_key_file: raw.secrets_key_file,
            destination_ca_file: raw.destination_ca_file,
            api_listen: raw.api_listen,
            api_tls_cert: raw.api_tls_cert,
            api_tls_key: raw.api_tls_key,
            http_listen: raw.http_listen,
            http_tls_cert: raw.http_tls_cert,
            http_tls_key: raw.http_tls_key,
            region: raw.region,
            account_id: raw.account_id,
            prices: crate::metering::pricing::Prices {
                per_gb_second_usd: raw.price_per_gb_second,
                per_million_requests_usd: raw.price_per_million_requests,
                free_requests: raw.free_requests,
            },
            metrics_listen: raw.metrics_listen,
            log_format: raw.log_format,
            data_dir: raw.data_dir,
            socket: raw.socket,
            socket_group: raw.socket_group,
            listen: raw.listen,
            images_dir: raw.images_dir,
            init_path,
            backend,
            vmm_path,
            kernel: raw.kernel,
            vm_run_dir: raw.vm_run_dir,
            vm_boot_timeout: Duration::from_secs(raw.vm_boot_timeout.max(1)),
            vm_jail: raw.vm_jail,
            vm_snapshots: raw.vm_snapshots,
            keep_alive: Duration::from_secs(raw.keep_alive),
            freeze_after: Duration::from_millis(raw.freeze_after_ms),
            cgroup_parent: raw.cgroup_parent,
            parked_launchers: raw.parked_launchers,
            concurrency_limit: raw.concurrency_limit,
            function_rate_limit: raw.function_rate_limit,
            sandbox_pool: crate::pools::key::PoolConfig {
                max: raw.pool_max,
                floors: raw
                    .pool_warm
                    .iter()
                    .map(|s| parse_pool_warm(s))
                    .collect::<Result<_, _>>()?,
                window: Duration::from_secs(raw.keep_alive),
                parallel_starts: raw.pool_parallel_starts.max(1),
                tmp_mb: crate::limits::TMP_MB,
            },
            function_log_max_bytes: raw.function_log_max_bytes,
            function_log_retention: (raw.function_log_retention_days > 0)
                .then(|| Duration::from_secs(u64::from(raw.function_log_retention_days) * 86_400)),
            parallel_starts: match raw.parallel_starts {
                0 => crate::start_gate::default_slots(),
                n => n,
            },
            start_queue_wait: Duration::from_millis(raw.start_queue_ms),
            start_min_free_mb: raw.start_min_free_mb,
            min_free_disk_mb: raw.min_free_disk_mb,
            metering_retention: match raw.metering_retention_days {
                0 => None,
                d => Some(Duration::from_secs(u64::from(d) * 86_400)),
            },
            events: crate::events::dispatcher::Settings {
                retry_base_ms: raw.event_retry_base_ms,
                workers: raw.event_workers.max(1) as usize,
                age_unit_ms: raw.event_age_unit_ms.max(1),
            },
            schedule_seconds: raw.schedule_seconds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(extra: &[&str]) -> Result<Config, ConfigError> {
        let init = tempfile::NamedTempFile::new().unwrap();
        let init_path = init.path().to_str().unwrap().to_string();
        let mut args = vec!["flintd", "--init-path", &init_path];
        args.extend_from_slice(extra);
        Config::try_from(RawConfig::try_parse_from(args).unwrap())
    }

    #[test]
    fn prices_default_to_lambda_list_prices() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.prices, crate::metering::pricing::Prices::default());
        assert_eq!(c.prices.free_requests, 1_000_000);
        assert_eq!(c.metrics_listen, None);
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.api_listen, None);
        assert_eq!(
            (c.region.as_str(), c.account_id.as_str()),
            ("us-east-1", "000000000000")
        );
    }

    #[test]
    fn region_and_account_id_are_checked() {
        let c = parse(&[
            "--api-listen",
            "127.0.0.1:9000",
            "--region",
            "eu-west-3",
            "--account-id",
            "123456789012",
        ])
        .unwrap();
        assert_eq!(c.api_listen, Some("127.0.0.1:9000".parse().unwrap()));
        assert_eq!(c.region, "eu-west-3");
        assert!(matches!(
            parse(&["--region", "EU West"]),
            Err(ConfigError::Region(_))
        ));
        assert!(matches!(
            parse(&["--account-id", "12"]),
            Err(ConfigError::Account(_))
        ));
        // A TLS certificate needs its key, and the other way round.
        assert!(RawConfig::try_parse_from(["flintd", "--api-tls-cert", "c.pem"]).is_err());
        assert!(RawConfig::try_parse_from(["flintd", "--api-tls-key", "k.pem"]).is_err());
    }

    #[test]
    fn prices_must_be_finite_and_not_negative() {
        for (flag, v) in [
            ("--price-per-gb-second", "-0.1"),
            ("--price-per-gb-second", "NaN"),
            ("--price-per-million-requests", "inf"),
        ] {
            let e = parse(&[flag, v]).unwrap_err();
            assert!(
                matches!(e, ConfigError::Price(f, _) if f == flag),
                "{flag} {v}: {e}"
            );
            assert!(e.to_string().contains("finite number >= 0"));
        }
        let c = parse(&[
            "--price-per-gb-second",
            "0",
            "--free-requests",
            "0",
            "--metrics-listen",
            "127.0.0.1:9464",
            "--log-format",
            "json",
        ])
        .unwrap();
        assert_eq!(c.prices.per_gb_second_usd, 0.0);
        assert_eq!(c.prices.free_requests, 0);
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(c.log_format, LogFormat::Json);
    }

    #[test]
    fn network_flags_are_checked() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.network_default, crate::sandbox::NetworkMode::None);
        assert_eq!(c.network.cidr.to_string(), "100.96.0.0/16");
        let c = parse(&[
            "--network-default",
            "outbound",
            "--egress-allow",
            "10.0.0.0/8:443",
            "--egress-deny",
            "10.9.0.0/16",
            "--network-dns",
            "10.0.0.2",
        ])
        .unwrap();
        assert_eq!(c.network_default, crate::sandbox::NetworkMode::Outbound);
        assert_eq!((c.network.allow.len(), c.network.deny.len()), (1, 1));
        assert_eq!(c.network.dns, vec![std::net::Ipv4Addr::new(10, 0, 0, 2)]);
        for bad in [
            &["--network-default", "open"][..],
            &["--network-cidr", "100.96.0.0/31"],
            &["--egress-allow", "10.0.0.0/8:https"],
        ] {
            let e = parse(bad).unwrap_err();
            assert!(matches!(e, ConfigError::Network(_)), "{bad:?}: {e}");
        }
    }

    #[test]
    fn function_log_cap_has_a_floor() {
        assert_eq!(parse(&[]).unwrap().function_log_max_bytes, 10 << 20);
        assert_eq!(
            parse(&[]).unwrap().function_log_retention,
            Some(Duration::from_secs(14 * 86_400))
        );
        assert_eq!(
            parse(&["--function-log-retention-days", "0"])
                .unwrap()
                .function_log_retention,
            None
        );
        let c = parse(&[]).unwrap();
        assert_eq!(c.parallel_starts, crate::start_gate::default_slots());
        assert_eq!(c.start_queue_wait, Duration::from_secs(3));
        assert_eq!(
            parse(&["--parallel-starts", "7"]).unwrap().parallel_starts,
            7
        );
        let e = parse(&["--function-log-max-bytes", "100"]).unwrap_err();
        assert!(e.to_string().contains("at least 65536"), "{e}");
        let c = parse(&["--function-log-max-bytes", "65536"]).unwrap();
        assert_eq!(c.function_log_max_bytes, 65536);
    }

    #[test]
    fn event_settings_default_to_lambdas_backoff() {
        use crate::events::dispatcher::Settings;
        assert_eq!(
            parse(&[]).unwrap().events,
            Settings {
                retry_base_ms: 60_000,
                workers: 64,
                age_unit_ms: 1000
            }
        );
        let c = parse(&[
            "--event-retry-base-ms",
            "250",
            "--event-workers",
            "0",
            "--event-age-unit-ms",
            "50",
        ])
        .unwrap();
        assert_eq!(
            c.events,
            Settings {
                retry_base_ms: 250,
                workers: 1,
                age_unit_ms: 50
            }
        );
    }
}
