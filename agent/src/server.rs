//! Serving the API: the Unix socket (always) and TCP (when asked), with gRPC health
//! and server reflection, until SIGINT or SIGTERM; then every instance is destroyed.

use crate::api::auth::TokenGate;
use crate::api::functions::FunctionsApi;
use crate::api::invocations::InvocationsApi;
use crate::api::node::NodeApi;
use crate::api::triggers::TriggersApi;
use crate::api::usage::UsageApi;
use crate::core::Agent;
use crate::limits::GRPC_MESSAGE_MAX;
use flint_proto::v1::functions_server::FunctionsServer;
use flint_proto::v1::invocations_server::InvocationsServer;
use flint_proto::v1::node_server::NodeServer;
use flint_proto::v1::triggers_server::TriggersServer;
use flint_proto::v1::usage_server::UsageServer;
use std::sync::Arc;
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::service::interceptor::InterceptedService;

/// Serving failures.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Could not bind a listener
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    /// The Unix socket's mode or group could not be set
    #[error(transparent)]
    Socket(#[from] crate::socket_perms::SocketError),
    /// Reflection set-up failed
    #[error("server reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The REST API's TLS certificate or key is unusable
    #[error(transparent)]
    Tls(#[from] crate::lambda_api::tls::TlsError),
    /// The transport failed
    #[error("gRPC transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// The services; every one but health goes through `gate` (health stays open so
/// load balancers and probes need no key).
fn router(
    agent: &Arc<Agent>,
    health: tonic_health::pb::health_server::HealthServer<
        impl tonic_health::pb::health_server::Health,
    >,
    gate: TokenGate,
) -> Result<tonic::transport::server::Router, ServeError> {
    // Reflection in both versions: grpcurl speaks v1, many GUI clients and
    // grpc-requests still speak only v1alpha.
    let reflect = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(flint_proto::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection = reflect().build_v1()?;
    let reflection_v1alpha = reflect().build_v1alpha()?;
    let functions = FunctionsServer::new(FunctionsApi {
        agent: agent.clone(),
    })
    .max_decoding_message_size(GRPC_MESSAGE_MAX)
    .max_encoding_message_size(GRPC_MESSAGE_MAX);
    let node = NodeServer::new(NodeApi {
        agent: agent.clone(),
    });
    let invocations = InvocationsServer::new(InvocationsApi {
        agent: agent.clone(),
    })
    .max_decoding_message_size(GRPC_MESSAGE_MAX)
    .max_encoding_message_size(GRPC_MESSAGE_MAX);
    let usage = UsageServer::new(UsageApi {
        agent: agent.clone(),
    })
    .max_decoding_message_size(GRPC_MESSAGE_MAX)
    .max_encoding_message_size(GRPC_MESSAGE_MAX);
    let events = flint_proto::v1::events_server::EventsServer::new(crate::api::events::EventsApi {
        agent: agent.clone(),
    });
    let triggers = TriggersServer::new(TriggersApi {
        agent: agent.clone(),
    });
    let roles = flint_proto::v1::roles_server::RolesServer::new(crate::api::roles::RolesApi {
        agent: agent.clone(),
    });
    let versions =
        flint_proto::v1::versions_server::VersionsServer::new(crate::api::versions::VersionsApi {
            agent: agent.clone(),
        });
    let logs = flint_proto::v1::logs_server::LogsServer::new(crate::api::logs::LogsApi {
        agent: agent.clone(),
    });
    let layers = flint_proto::v1::layers_server::LayersServer::new(crate::api::layers::LayersApi {
        agent: agent.clone(),
    })
    .max_decoding_message_size(crate::limits::GRPC_MESSAGE_MAX);
    Ok(tonic::transport::Server::builder()
        .add_service(health)
        .add_service(InterceptedService::new(versions, gate.clone()))
        .add_service(InterceptedService::new(layers, gate.clone()))
        .add_service(InterceptedService::new(
            roles,
            gate.for_service("flint:Roles"),
        ))
        .add_service(InterceptedService::new(reflection, gate.clone()))
        .add_service(InterceptedService::new(reflection_v1alpha, gate.clone()))
        .add_service(InterceptedService::new(functions, gate.clone()))
        .add_service(InterceptedService::new(invocations, gate.clone()))
        .add_service(InterceptedService::new(logs, gate.clone()))
        .add_service(InterceptedService::new(
            usage,
            gate.for_service("flint:Usage"),
        ))
        .add_service(InterceptedService::new(
            events,
            gate.for_service("flint:Events"),
        ))
        .add_service(InterceptedService::new(
            triggers,
            gate.for_service("flint:Triggers"),
        ))
        .add_service(InterceptedService::new(
            node,
            gate.for_service("flint:Node"),
        )))
}

async fn bind_tcp(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, ServeError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: addr.to_string(),
            source,
        })
}

/// SIGTERM and SIGINT handlers. Installed before the socket exists: a client that
/// can connect can also stop the agent cleanly (before, a SIGTERM right after
/// start-up killed flintd with the default action and left its sandboxes).
fn stop_signals() -> Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)> {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(int)) => Some((term, int)),
        _ => None,
    }
}

async fn shutdown_signal(
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
) {
    let Some((mut term, mut int)) = signals else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}

/// Serves until a shutdown signal; then destroys all instances.
pub async fn serve(agent: Arc<Agent>) -> Result<(), ServeError> {
    let signals = stop_signals();
    crate::log_retention::spawn(&agent);
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<FunctionsServer<FunctionsApi>>()
        .await;
    reporter
        .set_serving::<InvocationsServer<InvocationsApi>>()
        .await;
    reporter.set_serving::<UsageServer<UsageApi>>().await;
    reporter
        .set_serving::<flint_proto::v1::events_server::EventsServer<crate::api::events::EventsApi>>(
        )
        .await;
    reporter.set_serving::<NodeServer<NodeApi>>().await;
    reporter.set_serving::<TriggersServer<TriggersApi>>().await;
    reporter
        .set_serving::<flint_proto::v1::roles_server::RolesServer<crate::api::roles::RolesApi>>()
        .await;
    reporter
        .set_serving::<flint_proto::v1::logs_server::LogsServer<crate::api::logs::LogsApi>>()
        .await;
    reporter
        .set_serving::<flint_proto::v1::layers_server::LayersServer<crate::api::layers::LayersApi>>(
        )
        .await;

    let sock = agent.config().socket.clone();
    if let Some(dir) = sock.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let uds = crate::socket_perms::bind(&sock, agent.config().socket_group.as_deref())?;
    tracing::info!(socket = %sock.display(), group = ?agent.config().socket_group, "listening (mode 0660)");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let wait_stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let mut servers = tokio::task::JoinSet::new();
    let r = router(&agent, health.clone(), TokenGate::open())?;
    let rx = stop_rx.clone();
    servers.spawn(async move {
        r.serve_with_incoming_shutdown(UnixListenerStream::new(uds), wait_stop(rx))
            .await
    });
    if let Some(addr) = agent.config().listen {
        let tcp = bind_tcp(addr).await?;
        let keys = crate::lambda_api::keys::KeyStore::new(&agent.config().data_dir);
        match keys.list() {
            Ok(k) if k.is_empty() => tracing::warn!(
                keys = %keys.path().display(),
                "gRPC on TCP: no access keys yet, every call but health checks will be refused: create one with `flint keys create --data-dir ...`"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "gRPC on TCP: access keys unreadable"),
        }
        tracing::info!(%addr, "listening (bearer token required)");
        let r = router(
            &agent,
            health.clone(),
            TokenGate::required(keys, &agent.config().account_id),
        )?;
        let rx = stop_rx.clone();
        servers.spawn(async move {
            r.serve_with_incoming_shutdown(TcpListenerStream::new(tcp), wait_stop(rx))
                .await
        });
    }
    if let Some(addr) = agent.config().api_listen {
        let tls = match (&agent.config().api_tls_cert, &agent.config().api_tls_key) {
            (Some(cert), Some(key)) => Some(crate::lambda_api::tls::acceptor(cert, key)?),
            _ => None,
        };
        let tcp = bind_tcp(addr).await?;
        let api = crate::lambda_api::LambdaApi::new(agent.clone());
        match api.keys.list() {
            Ok(k) if k.is_empty() => tracing::warn!(
                keys = %api.keys.path().display(),
                "REST API: no access keys yet, every request will be refused: create one with `flint keys create --data-dir ...`"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "REST API: access keys unreadable"),
        }
        tracing::info!(%addr, region = %api.place.region, tls = tls.is_some(), "serving Lambda's REST API");
        tokio::spawn(crate::lambda_api::serve(tcp, api, tls, stop_rx.clone()));
    }
    if let Some(addr) = agent.config().http_listen {
        let tls = match (&agent.config().http_tls_cert, &agent.config().http_tls_key) {
            (Some(cert), Some(key)) => Some(crate::lambda_api::tls::acceptor_for(
                cert,
                key,
                ("--http-tls-cert", "--http-tls-key"),
                &[b"h2", b"http/1.1"],
            )?),
            _ => None,
        };
        let tcp = bind_tcp(addr).await?;
        tracing::info!(%addr, tls = tls.is_some(), "serving HTTP function URLs");
        let urls = crate::triggers::http::server::FunctionUrls::new(
            agent.clone(),
            tls.is_some(),
            addr.port(),
        );
        tokio::spawn(crate::triggers::http::server::serve(
            tcp,
            urls,
            tls,
            stop_rx.clone(),
        ));
    }
    if let Some(addr) = agent.config().metrics_listen {
        let tcp = bind_tcp(addr).await?;
        tracing::info!(%addr, "serving metrics at /metrics");
        tokio::spawn(crate::metrics::http::serve(
            tcp,
            agent.metrics().clone(),
            stop_rx.clone(),
        ));
    }
    println!("flintd ready on {}", sock.display());

    let result = tokio::select! {
        _ = shutdown_signal(signals) => Ok(()),
        Some(r) = servers.join_next() => match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ServeError::from(e)),
            Err(e) => { tracing::error!(error = %e, "server task failed"); Ok(()) }
        },
    };
    tracing::info!("shutting down: destroying instances");
    // Queued events stay in events.db; running ones are queued again at the next start.
    agent.events().stop();
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while servers.join_next().await.is_some() {}
    })
    .await;
    agent.shutdown_pools().await;
    // Function logs handed to the log writer reach their files before flintd exits.
    agent.blocking(|a| a.logs().flush()).await;
    // Anything a destroy could not remove, or a killed earlier run left.
    let parent = agent.config().cgroup_parent.clone();
    if let Ok(left) = tokio::task::spawn_blocking(move || {
        // The sandbox links' host ends and the nftables table go too.
        crate::sandbox::net::sweep::remove_leftovers();
        crate::sandbox::namespace::sweep::remove_on_stop(&parent)
    })
    .await
    {
        if !left.is_empty() {
            tracing::warn!(left = ?left, "sandbox cgroups still there at stop");
        }
    }
    // Commit the last invocation records.
    let meter = agent.meter().clone();
    let _ = tokio::task::spawn_blocking(move || meter.shutdown()).await;
    let _ = std::fs::remove_file(&sock);
    result
}
