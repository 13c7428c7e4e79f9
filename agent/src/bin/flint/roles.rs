//! `flint roles ...` and `flint secrets ...`: execution roles and named secrets.

use crate::status_err;
use clap::Subcommand;
use flint_agent::client::Client;
use flint_proto::v1::*;

#[derive(Subcommand)]
pub enum RolesCmd {
    /// Create a role.
    Create {
        name: String,
        /// A function its credentials may invoke: a name or a pattern with `*`
        /// (repeatable).
        #[arg(long = "invoke")]
        invoke: Vec<String>,
        /// A secret its credentials may read: a name or a pattern with `*` (repeatable).
        #[arg(long = "read-secret")]
        read_secret: Vec<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Replace a role's policy and description.
    Update {
        name: String,
        #[arg(long = "invoke")]
        invoke: Vec<String>,
        #[arg(long = "read-secret")]
        read_secret: Vec<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Show one role.
    Get { name: String },
    /// List roles.
    Ls,
    /// Delete a role (refused while functions name it).
    #[command(alias = "delete")]
    Rm { name: String },
}

#[derive(Subcommand)]
pub enum SecretsCmd {
    /// Set a secret (sealed with flintd's operator key). The value is read from
    /// standard input when --value is not given, so it stays out of shell history.
    Put {
        name: String,
        #[arg(long)]
        value: Option<String>,
    },
    /// List secret names (never values).
    Ls,
    /// Delete a secret.
    #[command(alias = "delete")]
    Rm { name: String },
}

fn role_json(r: &Role) -> serde_json::Value {
    serde_json::json!({
        "name": r.name, "arn": r.arn, "invoke_functions": r.invoke_functions,
        "read_secrets": r.read_secrets, "description": r.description, "created": r.created,
    })
}

fn print_role(r: &Role, json: bool) {
    if json {
        println!("{}", role_json(r));
        return;
    }
    let list = |v: &[String]| {
        if v.is_empty() {
            "(nothing)".to_string()
        } else {
            v.join(", ")
        }
    };
    println!("name:         {}", r.name);
    println!("arn:          {}", r.arn);
    println!("may invoke:   {}", list(&r.invoke_functions));
    println!("may read:     {}", list(&r.read_secrets));
    if !r.description.is_empty() {
        println!("description:  {}", r.description);
    }
    println!("created:      {}", r.created);
}

fn role(name: String, invoke: Vec<String>, read: Vec<String>, description: String) -> Role {
    Role {
        name,
        invoke_functions: invoke,
        read_secrets: read,
        description,
        ..Default::default()
    }
}

/// Runs one `flint roles` command.
pub async fn run(c: &Client, action: RolesCmd, json: bool) -> anyhow::Result<i32> {
    let mut rc = c.roles();
    match action {
        RolesCmd::Create {
            name,
            invoke,
            read_secret,
            description,
        } => {
            let r = rc
                .create_role(CreateRoleRequest {
                    role: Some(role(name, invoke, read_secret, description)),
                })
                .await
                .map_err(status_err)?
                .into_inner();
            print_role(&r, json);
        }
        RolesCmd::Update {
            name,
            invoke,
            read_secret,
            description,
        } => {
            let r = rc
                .update_role(UpdateRoleRequest {
                    role: Some(role(name, invoke, read_secret, description)),
                })
                .await
                .map_err(status_err)?
                .into_inner();
            print_role(&r, json);
        }
        RolesCmd::Get { name } => {
            let r = rc
                .get_role(GetRoleRequest { name })
                .await
                .map_err(status_err)?
                .into_inner();
            print_role(&r, json);
        }
        RolesCmd::Ls => {
            let all = rc
                .list_roles(ListRolesRequest {})
                .await
                .map_err(status_err)?
                .into_inner()
                .roles;
            if json {
                println!(
                    "{}",
                    serde_json::Value::Array(all.iter().map(role_json).collect())
                );
            } else {
                println!("{:<32} {:<40} MAY READ", "NAME", "MAY INVOKE");
                for r in all {
                    println!(
                        "{:<32} {:<40} {}",
                        r.name,
                        r.invoke_functions.join(","),
                        r.read_secrets.join(",")
                    );
                }
            }
        }
        RolesCmd::Rm { name } => {
            rc.delete_role(DeleteRoleRequest { name: name.clone() })
                .await
                .map_err(status_err)?;
            if json {
                println!("{}", serde_json::json!({"deleted": name}));
            } else {
                println!("deleted role {name}");
            }
        }
    }
    Ok(0)
}

/// Runs one `flint secrets` command.
pub async fn run_secrets(c: &Client, action: SecretsCmd, json: bool) -> anyhow::Result<i32> {
    let mut rc = c.roles();
    match action {
        SecretsCmd::Put { name, value } => {
            let value = match value {
                Some(v) => v,
                None => {
                    let mut v = String::new();
                    std::io::Read::read_to_string(&mut std::io::stdin(), &mut v)?;
                    v.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            let s = rc
                .put_secret(PutSecretRequest { name, value })
                .await
                .map_err(status_err)?
                .into_inner();
            if json {
                println!(
                    "{}",
                    serde_json::json!({"name": s.name, "updated": s.updated})
                );
            } else {
                println!("secret {} set at {}", s.name, s.updated);
            }
        }
        SecretsCmd::Ls => {
            let all = rc
                .list_secrets(ListSecretsRequest {})
                .await
                .map_err(status_err)?
                .into_inner()
                .secrets;
            for s in all {
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"name": s.name, "updated": s.updated})
                    );
                } else {
                    println!("{:<40} {}", s.name, s.updated);
                }
            }
        }
        SecretsCmd::Rm { name } => {
            rc.delete_secret(DeleteSecretRequest { name: name.clone() })
                .await
                .map_err(status_err)?;
            if !json {
                println!("deleted secret {name}");
            }
        }
    }
    Ok(0)
}
