//! `flint layers ...`: publish, list and delete layer versions.

use crate::status_err;
use clap::Subcommand;
use flint_agent::client::Client;
use flint_proto::v1::*;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum LayersCmd {
    /// Publish a new version of a layer (numbered from 1 per name, never reused).
    Publish {
        name: String,
        /// A .zip file or a directory (zipped for you); its top-level folders land
        /// under /opt (python/, nodejs/node_modules/, java/lib/, ruby/gems/, ruby/lib/).
        #[arg(long)]
        zip: PathBuf,
        #[arg(long, default_value = "")]
        description: String,
        /// A runtime the layer is meant for (repeatable; metadata only, as in Lambda).
        #[arg(long = "compatible-runtime")]
        compatible_runtime: Vec<String>,
    },
    /// List layers (the newest version of each).
    Ls,
    /// List a layer's versions, newest first.
    Versions { name: String },
    /// Show one layer version.
    Get { name: String, version: u64 },
    /// Delete a layer version (functions that name it keep it).
    #[command(alias = "delete")]
    Rm { name: String, version: u64 },
}

fn layer_json(l: &LayerVersion) -> serde_json::Value {
    serde_json::json!({
        "layer_name": l.layer_name, "version": l.version, "layer_arn": l.layer_arn,
        "layer_version_arn": l.layer_version_arn, "description": l.description,
        "compatible_runtimes": l.compatible_runtimes, "code_sha256": l.code_sha256,
        "code_size": l.code_size, "unpacked_size": l.unpacked_size, "created": l.created,
    })
}

fn print_table(all: &[LayerVersion], json: bool) {
    if json {
        let items: Vec<_> = all.iter().map(layer_json).collect();
        println!("{}", serde_json::Value::Array(items));
        return;
    }
    println!(
        "{:<32} {:>7} {:>12} {:<24}  ARN",
        "NAME", "VERSION", "SIZE", "CREATED"
    );
    for l in all {
        println!(
            "{:<32} {:>7} {:>12} {:<24}  {}",
            l.layer_name, l.version, l.code_size, l.created, l.layer_version_arn
        );
    }
}

fn print_layer(l: &LayerVersion, json: bool) {
    if json {
        println!("{}", layer_json(l));
        return;
    }
    println!("arn:          {}", l.layer_version_arn);
    println!("name:         {}", l.layer_name);
    println!("version:      {}", l.version);
    if !l.description.is_empty() {
        println!("description:  {}", l.description);
    }
    if !l.compatible_runtimes.is_empty() {
        println!("runtimes:     {}", l.compatible_runtimes.join(", "));
    }
    println!(
        "code:         {} bytes ({} unpacked), sha256 {}",
        l.code_size, l.unpacked_size, l.code_sha256
    );
    println!("created:      {}", l.created);
}

pub async fn run(c: &Client, action: LayersCmd, json: bool) -> anyhow::Result<i32> {
    let mut lc = c.layers();
    match action {
        LayersCmd::Publish {
            name,
            zip,
            description,
            compatible_runtime,
        } => {
            let bytes = flint_agent::client::bundle(&zip)
                .map_err(|e| anyhow::anyhow!("reading layer {}: {e}", zip.display()))?;
            let l = lc
                .publish_layer_version(PublishLayerVersionRequest {
                    layer_name: name,
                    zip: bytes,
                    description,
                    compatible_runtimes: compatible_runtime,
                })
                .await
                .map_err(status_err)?
                .into_inner();
            print_layer(&l, json);
        }
        LayersCmd::Ls => {
            let all = lc
                .list_layers(ListLayersRequest {})
                .await
                .map_err(status_err)?
                .into_inner()
                .layers;
            print_table(&all, json);
        }
        LayersCmd::Versions { name } => {
            let all = lc
                .list_layer_versions(ListLayerVersionsRequest { layer_name: name })
                .await
                .map_err(status_err)?
                .into_inner()
                .versions;
            print_table(&all, json);
        }
        LayersCmd::Get { name, version } => {
            let l = lc
                .get_layer_version(GetLayerVersionRequest {
                    layer_name: name,
                    version,
                })
                .await
                .map_err(status_err)?
                .into_inner();
            print_layer(&l, json);
        }
        LayersCmd::Rm { name, version } => {
            lc.delete_layer_version(DeleteLayerVersionRequest {
                layer_name: name,
                version,
            })
            .await
            .map_err(status_err)?;
        }
    }
    Ok(0)
}
