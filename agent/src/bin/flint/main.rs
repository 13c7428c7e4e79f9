//! flint: the command-line client of flintd.

mod events;
mod layers;
mod logs;
mod queue_args;
mod roles;
mod since;
mod table;
mod triggers;
mod triggers_files;
mod versions;

use clap::{Parser, Subcommand};
use flint_agent::client::{bundle, connect_with_token, Client};
use flint_proto::v1::*;
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "flint",
    version,
    about = "Deploy and invoke functions on a flintd agent"
)]
struct Cli {
    /// flintd's Unix socket path, or http://HOST:PORT.
    #[arg(
        long,
        global = true,
        env = "FLINT_ENDPOINT",
        default_value = "/run/flint/flintd.sock"
    )]
    endpoint: String,
    /// Token for flintd's TCP listener (`flintd --listen`): KEYID:SECRET of a key
    /// from `flint keys create`. Not needed on the Unix socket.
    #[arg(long, global = true, env = "FLINT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a function.
    Create {
        name: String,
        #[arg(long)]
        runtime: String,
        #[arg(long)]
        handler: String,
        /// A directory (zipped for you) or a .zip file.
        #[arg(long)]
        code: PathBuf,
        /// Memory in MB (128-10240); unset: flintd's default.
        #[arg(long)]
        memory: Option<u32>,
        /// Timeout in seconds (1-900); unset: flintd's default.
        #[arg(long)]
        timeout: Option<u32>,
        /// Size of /tmp in MB (512-10240, on disk, not memory); unset: 512.
        #[arg(long)]
        ephemeral_storage_mb: Option<u32>,
        /// Environment variable KEY=VALUE (repeatable).
        #[arg(long = "env", value_parser = parse_kv)]
        env: Vec<(String, String)>,
        #[arg(long, default_value = "")]
        description: String,
        /// Network: none (loopback only) or outbound; unset: flintd's --network-default.
        #[arg(long)]
        network: Option<String>,
        /// Execution role (flint roles create): its temporary credentials reach the
        /// function as AWS_ACCESS_KEY_ID etc.
        #[arg(long)]
        role: Option<String>,
        /// Secret environment variable KEY=VALUE (repeatable): stored encrypted with
        /// flintd's operator key, shown masked.
        #[arg(long = "secret-env", value_parser = parse_kv)]
        secret_env: Vec<(String, String)>,
        /// A layer version ARN (or NAME:VERSION) to unpack under /opt (repeatable, at
        /// most 5, in order: later layers win).
        #[arg(long = "layer")]
        layer: Vec<String>,
    },
    /// Replace a function's code.
    UpdateCode {
        name: String,
        #[arg(long)]
        code: PathBuf,
    },
    /// Change a function's configuration.
    #[command(alias = "update")]
    UpdateConfig {
        name: String,
        #[arg(long)]
        runtime: Option<String>,
        #[arg(long)]
        handler: Option<String>,
        #[arg(long)]
        memory: Option<u32>,
        #[arg(long)]
        timeout: Option<u32>,
        /// Size of /tmp in MB (512-10240); retires the function's idle instances.
        #[arg(long)]
        ephemeral_storage_mb: Option<u32>,
        /// Replaces all environment variables (repeatable KEY=VALUE).
        #[arg(long = "env", value_parser = parse_kv)]
        env: Vec<(String, String)>,
        /// Remove all environment variables.
        #[arg(long, conflicts_with = "env")]
        clear_env: bool,
        #[arg(long)]
        description: Option<String>,
        /// Network: none (loopback only) or outbound.
        #[arg(long)]
        network: Option<String>,
        /// Execution role; "" removes it.
        #[arg(long)]
        role: Option<String>,
        /// Replaces all secret environment variables (repeatable KEY=VALUE).
        #[arg(long = "secret-env", value_parser = parse_kv)]
        secret_env: Vec<(String, String)>,
        /// Remove all secret environment variables.
        #[arg(long, conflicts_with = "secret_env")]
        clear_secret_env: bool,
        /// Replaces the layer list (repeatable ARN or NAME:VERSION, in order).
        #[arg(long = "layer")]
        layer: Vec<String>,
        /// Remove all layers.
        #[arg(long, conflicts_with = "layer")]
        clear_layers: bool,
    },
    /// Show one function.
    Get { name: String },
    /// List functions.
    Ls,
    /// Delete a function (refused while triggers invoke it, unless --force).
    #[command(alias = "delete")]
    Rm {
        name: String,
        /// Also delete the function's triggers.
        #[arg(long)]
        force: bool,
    },
    /// Reserve concurrency for a function (it also caps it).
    PutConcurrency { name: String, reserved: u32 },
    /// Remove a function's reserved concurrency.
    DeleteConcurrency { name: String },
    /// Publish a function's current configuration and code as a new version.
    Publish {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        /// Publish only if the code's sha256 (hex) is this one.
        #[arg(long, default_value = "")]
        code_sha256: String,
    },
    /// List a function's versions ($LATEST first) with their usage.
    Versions { name: String },
    /// Delete one published version (refused while an alias routes to it).
    DeleteVersion { name: String, version: u64 },
    /// Aliases: names for a version, with optional weighted routing to a second one.
    Aliases {
        #[command(subcommand)]
        action: versions::AliasesCmd,
    },
    /// Invoke a function (NAME, or NAME:VERSION / NAME:ALIAS) and print its result.
    Invoke {
        name: String,
        /// JSON payload (default {}).
        #[arg(long, default_value = "{}")]
        payload: String,
        /// Queue the event and return at once (invocation type Event).
        #[arg(long = "async")]
        is_async: bool,
        /// Validate only (invocation type DryRun).
        #[arg(long, conflicts_with = "is_async")]
        dry_run: bool,
        /// Print the last 4 KB of the invocation's log to stderr.
        #[arg(long)]
        log: bool,
    },
    /// Access keys of the REST API (`flintd --api-listen`) and of the gRPC TCP
    /// listener (`flintd --listen`, token KEYID:SECRET). Works on the data
    /// directory itself, so only who can read it (root) manages keys.
    Keys {
        /// flintd's data directory.
        #[arg(
            long,
            global = true,
            env = "FLINT_DATA_DIR",
            default_value = "/var/lib/flint/data"
        )]
        data_dir: PathBuf,
        #[command(subcommand)]
        action: KeysCmd,
    },
    /// Asynchronous invocations: the event queue, the dead-letter queue, redrive and
    /// each function's retries, maximum age and destinations.
    Events {
        #[command(subcommand)]
        action: events::EventsCmd,
    },
    /// Layers: zip bundles unpacked under a function's read-only /opt.
    Layers {
        #[command(subcommand)]
        action: layers::LayersCmd,
    },
    /// Execution roles: what a function's temporary credentials may do.
    Roles {
        #[command(subcommand)]
        action: roles::RolesCmd,
    },
    /// Named secrets, sealed with flintd's operator key; a role's policy says who may
    /// read them.
    Secrets {
        #[command(subcommand)]
        action: roles::SecretsCmd,
    },
    /// Triggers: schedules that invoke a function (EventBridge's rate and cron).
    Triggers {
        #[command(subcommand)]
        action: triggers::TriggersCmd,
    },
    /// A function's log lines (its log files): all kept, one invocation's, or those of
    /// invocations since a time; --follow keeps printing new ones.
    Logs {
        name: String,
        /// Keep printing new lines until Ctrl-C (with --request-id: until its REPORT).
        #[arg(long, short)]
        follow: bool,
        /// Only invocations started since a duration back (10m, 1h) or an RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Only this invocation's lines, START through REPORT.
        #[arg(long)]
        request_id: Option<String>,
        /// Only the invocations of this version (`$LATEST`, `1`, ...), as their
        /// START lines name it.
        #[arg(long)]
        version: Option<String>,
    },
    /// A function's finished invocations, newest first (request id, start, duration,
    /// outcome, error type, cold start), from the metering database.
    History {
        name: String,
        /// Only invocations started since a duration back (10m, 1h) or an RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// At most this many (default 100, at most 10,000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Metered usage and its cost per function (all functions without NAME).
    Usage {
        name: Option<String>,
        /// Only invocations since a duration back from now (30m, 1h, 7d) or an RFC 3339
        /// time (2026-11-27T00:00:00Z) or a date (2026-11-01).
        #[arg(long)]
        since: Option<String>,
    },
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Create a key; prints its id and secret (the secret is shown only here).
    Create {
        #[arg(long, default_value = "")]
        description: String,
        /// Limit the key to a grant (repeatable) ACTION[:PATTERN], e.g.
        /// lambda:InvokeFunction:orders-* or lambda:Get* or lambda:*; without --allow
        /// the key may do everything.
        #[arg(long = "allow", value_name = "ACTION[:PATTERN]")]
        allow: Vec<String>,
    },
    /// List key ids and policies (never secrets).
    List,
    /// Revoke a key: requests signed with it are refused from then on.
    Revoke { id: String },
}

fn keys(data_dir: &std::path::Path, action: &KeysCmd, json: bool) -> anyhow::Result<i32> {
    let store = flint_agent::lambda_api::keys::KeyStore::new(data_dir);
    match action {
        KeysCmd::Create { description, allow } => {
            let k = store
                .create_with_policy(description, (!allow.is_empty()).then(|| allow.clone()))?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"access_key_id": k.id, "secret_access_key": k.secret, "token": format!("{}:{}", k.id, k.secret), "policy": k.policy})
                );
            } else {
                println!("access key id:     {}", k.id);
                println!("secret access key: {}", k.secret);
                println!("gRPC token:        {}:{}", k.id, k.secret);
                println!("policy:            {}", policy_text(&k.policy));
            }
        }
        KeysCmd::List => {
            for k in store.list()? {
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"access_key_id": k.id, "created": k.created, "description": k.description, "policy": k.policy})
                    );
                } else {
                    println!(
                        "{}  {}  {}  [{}]",
                        k.id,
                        k.created,
                        k.description,
                        policy_text(&k.policy)
                    );
                }
            }
        }
        KeysCmd::Revoke { id } => {
            store.revoke(id)?;
            if !json {
                println!("revoked {id}");
            }
        }
    }
    Ok(0)
}

/// A key's grants for humans: "full access" when it has no policy.
fn policy_text(policy: &Option<Vec<String>>) -> String {
    match policy {
        None => "full access".to_string(),
        Some(g) if g.is_empty() => "nothing".to_string(),
        Some(g) => g.join(" "),
    }
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

fn main() {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("flint: {e}");
            std::process::exit(1);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("flint: {e:#}");
            std::process::exit(1);
        }
    }
}

pub(crate) fn status_err(s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{} ({:?})", s.message(), s.code())
}

fn function_json(f: &FunctionConfiguration) -> serde_json::Value {
    serde_json::json!({
        "name": f.name, "runtime": f.runtime, "handler": f.handler,
        "memory_mb": f.memory_mb, "timeout_s": f.timeout_s, "environment": f.environment,
        "description": f.description, "code_sha256": f.code_sha256, "code_size": f.code_size,
        "last_modified": f.last_modified, "revision": f.revision, "function_arn": f.function_arn,
        "reserved_concurrency": f.reserved_concurrency, "network": f.network,
        "role": f.role, "ephemeral_storage_mb": f.ephemeral_storage_mb,
        "secret_environment": masked(&f.secret_environment_keys),
        "layers": f.layers.iter().map(|l| serde_json::json!({
            "arn": l.arn, "code_size": l.code_size,
        })).collect::<Vec<_>>(),
    })
}

/// What is shown instead of a secret's value.
const MASK: &str = "****";

/// Secret variable names with masked values.
fn masked(keys: &[String]) -> std::collections::BTreeMap<&str, &str> {
    keys.iter().map(|k| (k.as_str(), MASK)).collect()
}

fn print_function(f: &FunctionConfiguration, json: bool) {
    if json {
        println!("{}", function_json(f));
        return;
    }
    println!("name:          {}", f.name);
    println!("arn:           {}", f.function_arn);
    println!("runtime:       {}", f.runtime);
    println!("handler:       {}", f.handler);
    println!("memory:        {} MB", f.memory_mb);
    println!("timeout:       {} s", f.timeout_s);
    println!("/tmp:          {} MB", f.ephemeral_storage_mb);
    println!("network:       {}", f.network);
    if !f.description.is_empty() {
        println!("description:   {}", f.description);
    }
    let mut env: Vec<_> = f.environment.iter().collect();
    env.sort();
    for (k, v) in env {
        println!("env:           {k}={v}");
    }
    for (k, v) in masked(&f.secret_environment_keys) {
        println!("secret env:    {k}={v}");
    }
    if !f.role.is_empty() {
        println!("role:          {}", f.role);
    }
    for l in &f.layers {
        println!("layer:         {} ({} bytes)", l.arn, l.code_size);
    }
    println!(
        "code:          {} bytes, sha256 {}",
        f.code_size, f.code_sha256
    );
    println!(
        "last modified: {} (revision {})",
        f.last_modified, f.revision
    );
}

async fn run(cli: Cli) -> anyhow::Result<i32> {
    if let Cmd::Keys { data_dir, action } = &cli.cmd {
        // Key management needs the data directory, not a running flintd.
        return keys(data_dir, action, cli.json);
    }
    let remote = cli.endpoint.starts_with("http://") || cli.endpoint.starts_with("https://");
    let token = cli.token.as_deref().filter(|_| remote);
    let mut c: Client = connect_with_token(&cli.endpoint, token).await?;
    match cli.cmd {
        Cmd::Create {
            name,
            runtime,
            handler,
            code,
            memory,
            timeout,
            ephemeral_storage_mb,
            env,
            description,
            network,
            role,
            secret_env,
            layer,
        } => {
            let code_zip = bundle(&code)
                .map_err(|e| anyhow::anyhow!("reading code {}: {e}", code.display()))?;
            let f = c
                .functions
                .create_function(CreateFunctionRequest {
                    name,
                    runtime,
                    handler,
                    // 0: the agent's default (functions.proto), stated once, there.
                    memory_mb: memory.unwrap_or(0),
                    timeout_s: timeout.unwrap_or(0),
                    environment: env.into_iter().collect(),
                    description,
                    code_zip,
                    network: network.unwrap_or_default(),
                    role: role.unwrap_or_default(),
                    secret_environment: secret_env.into_iter().collect(),
                    ephemeral_storage_mb: ephemeral_storage_mb.unwrap_or(0),
                    layers: layer,
                })
                .await
                .map_err(status_err)?
                .into_inner();
            print_function(&f, cli.json);
        }
        Cmd::UpdateCode { name, code } => {
            let code_zip = bundle(&code)
                .map_err(|e| anyhow::anyhow!("reading code {}: {e}", code.display()))?;
            let f = c
                .functions
                .update_function_code(UpdateFunctionCodeRequest { name, code_zip })
                .await
                .map_err(status_err)?
                .into_inner();
            print_function(&f, cli.json);
        }
        Cmd::UpdateConfig {
            name,
            runtime,
            handler,
            memory,
            timeout,
            ephemeral_storage_mb,
            env,
            clear_env,
            description,
            network,
            role,
            secret_env,
            clear_secret_env,
            layer,
            clear_layers,
        } => {
            let layers = (clear_layers || !layer.is_empty()).then_some(LayerList { arns: layer });
            let secret_environment = if clear_secret_env || !secret_env.is_empty() {
                Some(Environment {
                    variables: secret_env.into_iter().collect::<HashMap<_, _>>(),
                })
            } else {
                None
            };
            let environment = if clear_env || !env.is_empty() {
                Some(Environment {
                    variables: env.into_iter().collect::<HashMap<_, _>>(),
                })
            } else {
                None
            };
            let f = c
                .functions
                .update_function_configuration(UpdateFunctionConfigurationRequest {
                    name,
                    runtime,
                    handler,
                    memory_mb: memory,
                    timeout_s: timeout,
                    environment,
                    description,
                    network,
                    role,
                    secret_environment,
                    ephemeral_storage_mb,
                    layers,
                })
                .await
                .map_err(status_err)?
                .into_inner();
            print_function(&f, cli.json);
        }
        Cmd::Get { name } => {
            let f = c
                .functions
                .get_function(GetFunctionRequest { name })
                .await
                .map_err(status_err)?
                .into_inner();
            print_function(&f, cli.json);
        }
        Cmd::Ls => {
            let all = c
                .functions
                .list_functions(ListFunctionsRequest {})
                .await
                .map_err(status_err)?
                .into_inner()
                .functions;
            if cli.json {
                println!(
                    "{}",
                    serde_json::Value::Array(all.iter().map(function_json).collect())
                );
            } else {
                println!(
                    "{:<32} {:<12} {:>7} {:>8}  LAST MODIFIED",
                    "NAME", "RUNTIME", "MEMORY", "TIMEOUT"
                );
                for f in all {
                    println!(
                        "{:<32} {:<12} {:>4} MB {:>6} s  {}",
                        f.name, f.runtime, f.memory_mb, f.timeout_s, f.last_modified
                    );
                }
            }
        }
        Cmd::Triggers { action } => return triggers::run(&c, action, cli.json).await,
        Cmd::Roles { action } => return roles::run(&c, action, cli.json).await,
        Cmd::Layers { action } => return layers::run(&c, action, cli.json).await,
        Cmd::Publish {
            name,
            description,
            code_sha256,
        } => return versions::publish(&c, name, description, code_sha256, cli.json).await,
        Cmd::Versions { name } => return versions::list(&c, name, cli.json).await,
        Cmd::DeleteVersion { name, version } => return versions::delete(&c, name, version).await,
        Cmd::Aliases { action } => return versions::aliases(&c, action, cli.json).await,
        Cmd::Secrets { action } => return roles::run_secrets(&c, action, cli.json).await,
        Cmd::Rm { name, force } => {
            c.functions
                .delete_function(DeleteFunctionRequest {
                    name: name.clone(),
                    force,
                })
                .await
                .map_err(status_err)?;
            if cli.json {
                println!("{}", serde_json::json!({"deleted": name}));
            } else {
                println!("deleted {name}");
            }
        }
        Cmd::PutConcurrency { name, reserved } => {
            let f = c
                .functions
                .put_function_concurrency(PutFunctionConcurrencyRequest {
                    name,
                    reserved_concurrency: reserved,
                })
                .await
                .map_err(status_err)?
                .into_inner();
            print_function(&f, cli.json);
        }
        Cmd::DeleteConcurrency { name } => {
            let f = c
                .functions
                .delete_function_concurrency(DeleteFunctionConcurrencyRequest { name })
                .await
                .map_err(status_err)?
                .into_inner();
            print_function(&f, cli.json);
        }
        Cmd::Invoke {
            name,
            payload,
            is_async,
            dry_run,
            log,
        } => {
            let invocation_type = if is_async {
                InvocationType::Event
            } else if dry_run {
                InvocationType::DryRun
            } else {
                InvocationType::RequestResponse
            };
            let r = c
                .invocations
                .invoke(InvokeRequest {
                    function_name: name,
                    invocation_type: invocation_type as i32,
                    log_type: if log { LogType::Tail } else { LogType::LogNone } as i32,
                    payload: payload.into_bytes(),
                    client_context: String::new(),
                })
                .await
                .map_err(status_err)?
                .into_inner();
            let body = String::from_utf8_lossy(&r.payload).into_owned();
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "status_code": r.status_code, "request_id": r.request_id,
                        "function_error": r.function_error, "payload": body,
                        "log_result": r.log_result, "executed_version": r.executed_version,
                    })
                );
            } else {
                if log && !r.log_result.is_empty() {
                    eprint!("{}", r.log_result);
                }
                match r.status_code {
                    202 => println!("queued (request id {})", r.request_id),
                    204 => println!("dry run ok (request id {})", r.request_id),
                    _ => println!("{body}"),
                }
            }
            if !r.function_error.is_empty() {
                eprintln!("flint: the function failed ({})", r.function_error);
                return Ok(2);
            }
        }
        Cmd::Keys { .. } => {}
        Cmd::Logs {
            name,
            follow,
            since,
            request_id,
            version,
        } => return logs::logs(&c, name, follow, since, request_id, version).await,
        Cmd::History { name, since, limit } => {
            return logs::history(&c, name, since, limit, cli.json).await
        }
        Cmd::Events { action } => events::run(&c, action, cli.json).await?,
        Cmd::Usage { name, since } => {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis() as u64;
            let since_unix_ms = match since {
                Some(s) => since::parse(&s, now_ms)?,
                None => 0,
            };
            let report = c
                .usage()
                .get_usage(GetUsageRequest {
                    function_name: name.unwrap_or_default(),
                    since_unix_ms,
                })
                .await
                .map_err(status_err)?
                .into_inner();
            if cli.json {
                println!("{}", table::json(&report, since_unix_ms));
            } else {
                print!("{}", table::text(&report, since_unix_ms));
            }
        }
    }
    Ok(0)
}
