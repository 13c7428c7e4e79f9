//! The accept loop of flintd's HTTP listeners (the REST API, function URLs): each
//! connection on its own task, through TLS when an acceptor is given (a client gets
//! [`HANDSHAKE_TIMEOUT`] to finish its handshake), until the stop signal turns true.
//! What is served on a connection is the listener's own business.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// How long a client may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// One accepted connection, plain or TLS.
pub type Conn = Box<dyn Io>;

/// What a connection is: a byte stream both ways.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Accepts on `listener` until `stop` turns true, handing each connection (after its
/// TLS handshake, with `tls`) to `serve` on a task of its own. `what` names the
/// listener in log lines.
pub async fn serve<F, Fut>(
    what: &'static str,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    serve: F,
) where
    F: Fn(Conn, SocketAddr) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let tls = tls.clone();
                    let serve = serve.clone();
                    tokio::spawn(async move {
                        match tls {
                            None => serve(Box::new(stream), peer).await,
                            Some(t) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, t.accept(stream)).await {
                                Ok(Ok(s)) => serve(Box::new(s), peer).await,
                                Ok(Err(e)) => tracing::info!(%peer, error = %e, "{what}: TLS handshake failed"),
                                Err(_) => tracing::info!(%peer, "{what}: TLS handshake timed out"),
                            },
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "{what}: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = stopped(&mut stop) => return,
        }
    }
}

/// Completes once `stop` is true (or its sender is gone); holds no borrow of the
/// value across an await, so the loop stays `Send`.
async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn each_connection_is_served_until_stop() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(serve(
            "test",
            listener,
            None,
            rx,
            |mut c: Conn, _| async move {
                let mut b = [0u8; 4];
                if c.read_exact(&mut b).await.is_ok() {
                    b.reverse();
                    let _ = c.write_all(&b).await;
                }
            },
        ));
        for _ in 0..2 {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(b"abcd").await.unwrap();
            let mut b = [0u8; 4];
            s.read_exact(&mut b).await.unwrap();
            assert_eq!(&b, b"dcba");
        }
        tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the loop ends at stop")
            .unwrap();
    }
}
