//! Connecting to flintd as a gRPC client, over its Unix socket or TCP. Used by the
//! `flint` CLI, the integration tests and the benchmark harness.

use crate::limits::GRPC_MESSAGE_MAX;
use flint_proto::v1::functions_client::FunctionsClient;
use flint_proto::v1::invocations_client::InvocationsClient;
use flint_proto::v1::node_client::NodeClient;
use hyper_util::rt::TokioIo;
use std::path::PathBuf;
use tonic::transport::{Channel, Endpoint, Uri};

/// Connection failures.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Bad endpoint string
    #[error("invalid endpoint {0:?}: give a Unix socket path or http://HOST:PORT")]
    Endpoint(String),
    /// Could not connect
    #[error("cannot connect to flintd at {endpoint}: {source} (is flintd running?)")]
    Connect {
        endpoint: String,
        source: tonic::transport::Error,
    },
}

/// Both API clients on one channel.
#[derive(Clone)]
pub struct Client {
    pub functions: FunctionsClient<Channel>,
    pub invocations: InvocationsClient<Channel>,
    pub node: NodeClient<Channel>,
    pub channel: Channel,
}

/// Connects to `endpoint`: a Unix socket path, or an http:// URL.
pub async fn connect(endpoint: &str) -> Result<Client, ClientError> {
    let channel = if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
        Endpoint::from_shared(endpoint.to_string())
            .map_err(|_| ClientError::Endpoint(endpoint.to_string()))?
            .connect()
            .await
    } else {
        let path = PathBuf::from(endpoint.strip_prefix("unix:").unwrap_or(endpoint));
        Endpoint::from_static("http://flintd.local")
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    let s = tokio::net::UnixStream::connect(path).await?;
                    Ok::<_, std::io::Error>(TokioIo::new(s))
                }
            }))
            .await
    }
    .map_err(|source| ClientError::Connect {
        endpoint: endpoint.to_string(),
        source,
    })?;
    Ok(Client {
        functions: FunctionsClient::new(channel.clone())
            .max_decoding_message_size(GRPC_MESSAGE_MAX)
            .max_encoding_message_size(GRPC_MESSAGE_MAX),
        invocations: InvocationsClient::new(channel.clone())
            .max_decoding_message_size(GRPC_MESSAGE_MAX)
            .max_encoding_message_size(GRPC_MESSAGE_MAX),
        node: NodeClient::new(channel.clone()),
        channel,
    })
}

/// Zips a directory (or reads a .zip file) into a code bundle. Symbolic links are
/// refused, like the server does, so the user learns it before uploading.
pub fn bundle(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    if path.is_file() {
        return std::fs::read(path);
    }
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let mut stack = vec![path.to_path_buf()];
    let mut files = Vec::new();
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            let ty = e.file_type()?;
            if ty.is_symlink() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "{} is a symbolic link: code bundles cannot hold links",
                        e.path().display()
                    ),
                ));
            } else if ty.is_dir() {
                stack.push(e.path());
            } else if ty.is_file() {
                files.push(e.path());
            }
        }
    }
    files.sort();
    for f in files {
        let rel = f
            .strip_prefix(path)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let mode = std::fs::metadata(&f)?.permissions().mode() & 0o777;
        let opts = zip::write::SimpleFileOptions::default().unix_permissions(mode);
        w.start_file(rel.to_string_lossy(), opts)
            .map_err(std::io::Error::other)?;
        w.write_all(&std::fs::read(&f)?)?;
    }
    Ok(w.finish().map_err(std::io::Error::other)?.into_inner())
}
