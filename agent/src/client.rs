//! Connecting to flintd as a gRPC client, over its Unix socket or TCP. Used by the
//! `flint` CLI, the integration tests and the benchmark harness.

use crate::limits::GRPC_MESSAGE_MAX;
use flint_proto::v1::functions_client::FunctionsClient;
use flint_proto::v1::invocations_client::InvocationsClient;
use flint_proto::v1::node_client::NodeClient;
use flint_proto::v1::triggers_client::TriggersClient;
use flint_proto::v1::usage_client::UsageClient;
use hyper_util::rt::TokioIo;
use std::path::PathBuf;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint, Uri};

/// Connection failures.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Bad endpoint string
    #[error("invalid endpoint {0:?}: give a Unix socket path or http://HOST:PORT")]
    Endpoint(String),
    /// The token cannot be sent as gRPC metadata
    #[error(
        "invalid token: give KEYID:SECRET as printed by `flint keys create` (printable ASCII only)"
    )]
    Token,
    /// Could not connect
    #[error("cannot connect to flintd at {endpoint}: {source} (is flintd running?)")]
    Connect {
        endpoint: String,
        source: tonic::transport::Error,
    },
}

/// Adds `authorization: Bearer <token>` to every call when a token is set (flintd's
/// TCP listener refuses calls without one; its Unix socket needs none).
#[derive(Clone, Default)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Bearer {
    /// The bearer for `token` (`KEYID:SECRET`); None sends no header.
    pub fn new(token: Option<&str>) -> Result<Self, ClientError> {
        token
            .map(|t| {
                MetadataValue::try_from(format!("Bearer {}", t.trim()))
                    .map_err(|_| ClientError::Token)
            })
            .transpose()
            .map(Bearer)
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A channel that sends the token, if any.
pub type Authed = InterceptedService<Channel, Bearer>;

/// The API clients on one channel.
#[derive(Clone)]
pub struct Client {
    pub functions: FunctionsClient<Authed>,
    pub invocations: InvocationsClient<Authed>,
    pub node: NodeClient<Authed>,
    /// The bare channel (no token): enough over the Unix socket.
    pub channel: Channel,
    pub bearer: Bearer,
}

impl Client {
    /// An events client sending the same token.
    pub fn events(&self) -> flint_proto::v1::events_client::EventsClient<Authed> {
        flint_proto::v1::events_client::EventsClient::with_interceptor(
            self.channel.clone(),
            self.bearer.clone(),
        )
    }

    /// A usage client sending the same token.
    pub fn usage(&self) -> UsageClient<Authed> {
        UsageClient::with_interceptor(self.channel.clone(), self.bearer.clone())
            .max_decoding_message_size(GRPC_MESSAGE_MAX)
            .max_encoding_message_size(GRPC_MESSAGE_MAX)
    }

    /// A logs and invocation history client sending the same token.
    pub fn logs(&self) -> flint_proto::v1::logs_client::LogsClient<Authed> {
        flint_proto::v1::logs_client::LogsClient::with_interceptor(
            self.channel.clone(),
            self.bearer.clone(),
        )
        .max_decoding_message_size(GRPC_MESSAGE_MAX)
    }

    /// A trigger management client sending the same token.
    pub fn triggers(&self) -> TriggersClient<Authed> {
        TriggersClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    /// A layer management client sending the same token.
    pub fn layers(&self) -> flint_proto::v1::layers_client::LayersClient<Authed> {
        flint_proto::v1::layers_client::LayersClient::with_interceptor(
            self.channel.clone(),
            self.bearer.clone(),
        )
        .max_decoding_message_size(GRPC_MESSAGE_MAX)
        .max_encoding_message_size(GRPC_MESSAGE_MAX)
    }

    /// A role and secret management client sending the same token.
    pub fn roles(&self) -> flint_proto::v1::roles_client::RolesClient<Authed> {
        flint_proto::v1::roles_client::RolesClient::with_interceptor(
            self.channel.clone(),
            self.bearer.clone(),
        )
    }
}

/// Connects to `endpoint`: a Unix socket path, or an http:// URL; no token.
pub async fn connect(endpoint: &str) -> Result<Client, ClientError> {
    connect_with_token(endpoint, None).await
}

/// Connects to `endpoint`, sending `token` (`KEYID:SECRET`) with every call.
pub async fn connect_with_token(
    endpoint: &str,
    token: Option<&str>,
) -> Result<Client, ClientError> {
    let bearer = Bearer::new(token)?;
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
        functions: FunctionsClient::with_interceptor(channel.clone(), bearer.clone())
            .max_decoding_message_size(GRPC_MESSAGE_MAX)
            .max_encoding_message_size(GRPC_MESSAGE_MAX),
        invocations: InvocationsClient::with_interceptor(channel.clone(), bearer.clone())
            .max_decoding_message_size(GRPC_MESSAGE_MAX)
            .max_encoding_message_size(GRPC_MESSAGE_MAX),
        node: NodeClient::with_interceptor(channel.clone(), bearer.clone()),
        channel,
        bearer,
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
