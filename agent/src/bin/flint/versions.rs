//! `flint publish`, `flint versions` and `flint aliases ...`: published versions and
//! aliases (invoke one with `flint invoke NAME:VERSION` or `NAME:ALIAS`).

use crate::status_err;
use clap::Subcommand;
use flint_agent::client::Client;
use flint_proto::v1::versions_client::VersionsClient;
use flint_proto::v1::*;

#[derive(Subcommand)]
pub enum AliasesCmd {
    /// Create an alias of a version ($LATEST or a number).
    Create {
        function: String,
        name: String,
        /// The version it names.
        #[arg(long)]
        version: String,
        /// A second version and its share of invocations, e.g. `2=0.2`.
        #[arg(long, value_name = "VERSION=WEIGHT")]
        route: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Show one alias.
    Get { function: String, name: String },
    /// Change an alias; options not given keep their value.
    Update {
        function: String,
        name: String,
        #[arg(long)]
        version: Option<String>,
        /// A second version and its share, e.g. `2=0.2`; `none` removes it.
        #[arg(long, value_name = "VERSION=WEIGHT")]
        route: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete an alias.
    #[command(alias = "delete")]
    Rm { function: String, name: String },
    /// List a function's aliases.
    Ls { function: String },
}

/// `VERSION=WEIGHT` (or `none`): the additional version and its weight.
fn parse_route(s: &str) -> anyhow::Result<(String, f64)> {
    if s == "none" {
        return Ok((String::new(), 0.0));
    }
    let (v, w) = s
        .split_once('=')
        .ok_or_else(|| anyhow::anyhow!("--route {s:?}: write VERSION=WEIGHT, e.g. 2=0.2"))?;
    let w: f64 = w
        .parse()
        .map_err(|_| anyhow::anyhow!("--route {s:?}: the weight must be a number from 0 to 1"))?;
    Ok((v.to_string(), w))
}

fn client(c: &Client) -> VersionsClient<flint_agent::client::Authed> {
    VersionsClient::with_interceptor(c.channel.clone(), c.bearer.clone())
}

fn alias_json(a: &Alias) -> serde_json::Value {
    serde_json::json!({
        "function": a.function_name, "name": a.name, "version": a.function_version,
        "additional_version": a.additional_version, "additional_weight": a.additional_weight,
        "description": a.description, "revision": a.revision, "arn": a.alias_arn,
    })
}

fn print_alias(a: &Alias, json: bool) {
    if json {
        println!("{}", alias_json(a));
        return;
    }
    println!("alias:        {}", a.name);
    println!("arn:          {}", a.alias_arn);
    if a.additional_version.is_empty() {
        println!("version:      {}", a.function_version);
    } else {
        println!(
            "version:      {} ({:.0} %), {} ({:.0} %)",
            a.function_version,
            (1.0 - a.additional_weight) * 100.0,
            a.additional_version,
            a.additional_weight * 100.0
        );
    }
    if !a.description.is_empty() {
        println!("description:  {}", a.description);
    }
    println!("revision:     {}", a.revision);
}

fn version_json(v: &VersionInfo) -> serde_json::Value {
    let c = v.configuration.clone().unwrap_or_default();
    let u = v.usage.unwrap_or_default();
    serde_json::json!({
        "version": v.version, "arn": c.function_arn, "code_sha256": c.code_sha256,
        "memory_mb": c.memory_mb, "description": c.description,
        "last_modified": c.last_modified,
        "requests": u.requests, "errors": u.errors, "gb_seconds": u.gb_seconds,
    })
}

/// `flint publish NAME`.
pub async fn publish(
    c: &Client,
    function_name: String,
    description: String,
    code_sha256: String,
    json: bool,
) -> anyhow::Result<i32> {
    let v = client(c)
        .publish_version(PublishVersionRequest {
            function_name,
            description,
            code_sha256,
        })
        .await
        .map_err(status_err)?
        .into_inner();
    if json {
        println!("{}", version_json(&v));
    } else {
        let arn = v.configuration.map(|c| c.function_arn).unwrap_or_default();
        println!("version {} ({arn})", v.version);
    }
    Ok(0)
}

/// `flint versions NAME`.
pub async fn list(c: &Client, function_name: String, json: bool) -> anyhow::Result<i32> {
    let all = client(c)
        .list_versions(ListVersionsRequest { function_name })
        .await
        .map_err(status_err)?
        .into_inner()
        .versions;
    if json {
        let items: Vec<_> = all.iter().map(version_json).collect();
        println!("{}", serde_json::Value::Array(items));
        return Ok(0);
    }
    println!(
        "{:<9} {:<14} {:>7} {:>9} {:>7}  {:<24}  DESCRIPTION",
        "VERSION", "CODE", "MEMORY", "REQUESTS", "ERRORS", "PUBLISHED"
    );
    for v in &all {
        let c = v.configuration.clone().unwrap_or_default();
        let u = v.usage.unwrap_or_default();
        println!(
            "{:<9} {:<14} {:>7} {:>9} {:>7}  {:<24}  {}",
            v.version,
            &c.code_sha256[..c.code_sha256.len().min(12)],
            c.memory_mb,
            u.requests,
            u.errors,
            c.last_modified,
            c.description
        );
    }
    Ok(0)
}

/// `flint versions rm NAME VERSION` is `flint delete-version`.
pub async fn delete(c: &Client, function_name: String, version: u64) -> anyhow::Result<i32> {
    client(c)
        .delete_version(DeleteVersionRequest {
            function_name,
            version,
        })
        .await
        .map_err(status_err)?;
    println!("version {version} deleted");
    Ok(0)
}

/// Runs one `flint aliases` command.
pub async fn aliases(c: &Client, action: AliasesCmd, json: bool) -> anyhow::Result<i32> {
    let mut vc = client(c);
    match action {
        AliasesCmd::Create {
            function,
            name,
            version,
            route,
            description,
        } => {
            let (additional_version, additional_weight) = match route {
                Some(r) => parse_route(&r)?,
                None => (String::new(), 0.0),
            };
            let a = vc
                .create_alias(Alias {
                    function_name: function,
                    name,
                    function_version: version,
                    additional_version,
                    additional_weight,
                    description,
                    ..Default::default()
                })
                .await
                .map_err(status_err)?
                .into_inner();
            print_alias(&a, json);
        }
        AliasesCmd::Get { function, name } => {
            let a = vc
                .get_alias(GetAliasRequest {
                    function_name: function,
                    name,
                })
                .await
                .map_err(status_err)?
                .into_inner();
            print_alias(&a, json);
        }
        AliasesCmd::Update {
            function,
            name,
            version,
            route,
            description,
        } => {
            let route = route.as_deref().map(parse_route).transpose()?;
            let set_routing = route.is_some();
            let (additional_version, additional_weight) = route.unwrap_or_default();
            let a = vc
                .update_alias(UpdateAliasRequest {
                    function_name: function,
                    name,
                    function_version: version,
                    description,
                    set_routing,
                    additional_version,
                    additional_weight,
                })
                .await
                .map_err(status_err)?
                .into_inner();
            print_alias(&a, json);
        }
        AliasesCmd::Rm { function, name } => {
            vc.delete_alias(DeleteAliasRequest {
                function_name: function,
                name: name.clone(),
            })
            .await
            .map_err(status_err)?;
            println!("alias {name} deleted");
        }
        AliasesCmd::Ls { function } => {
            let all = vc
                .list_aliases(ListAliasesRequest {
                    function_name: function,
                })
                .await
                .map_err(status_err)?
                .into_inner()
                .aliases;
            if json {
                let items: Vec<_> = all.iter().map(alias_json).collect();
                println!("{}", serde_json::Value::Array(items));
            } else {
                println!(
                    "{:<20} {:<9} {:<16} DESCRIPTION",
                    "ALIAS", "VERSION", "ROUTING"
                );
                for a in &all {
                    let routing = if a.additional_version.is_empty() {
                        "-".to_string()
                    } else {
                        format!("{}={}", a.additional_version, a.additional_weight)
                    };
                    println!(
                        "{:<20} {:<9} {:<16} {}",
                        a.name, a.function_version, routing, a.description
                    );
                }
            }
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse() {
        assert_eq!(parse_route("2=0.2").unwrap(), ("2".to_string(), 0.2));
        assert_eq!(parse_route("none").unwrap(), (String::new(), 0.0));
        assert!(parse_route("2").is_err());
        assert!(parse_route("2=x").is_err());
    }
}
