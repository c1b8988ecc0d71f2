//! One connection's task: the TLS handshake under a timeout, then the handler.
//! (The seed's `startHttpsThread` with `SSL_acceptConnection`.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::handler::{ConnInfo, ConnectionHandler, TlsConn};

/// What every connection of one server shares; built once at bind.
pub(super) struct ConnectionShared {
    pub(super) server: Arc<str>,
    pub(super) local_addr: SocketAddr,
    pub(super) acceptor: TlsAcceptor,
    pub(super) handler: ConnectionHandler,
    pub(super) handshake_timeout: Duration,
    /// The server's stop token: handlers see it as [`TlsConn::shutdown`].
    pub(super) stop: CancellationToken,
}

/// Handshakes and serves one accepted TCP connection; never fails outward: what goes wrong is
/// logged and costs this connection only.
pub(super) async fn serve(
    shared: Arc<ConnectionShared>,
    tcp: TcpStream,
    peer_addr: SocketAddr,
    accepted_at: Instant,
) {
    // TLS records are written whole; Nagle would only delay the handshake's last flight.
    let _ = tcp.set_nodelay(true);
    let stream =
        match tokio::time::timeout(shared.handshake_timeout, shared.acceptor.accept(tcp)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                tracing::debug!(%error, "handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(
                    timeout_ms = shared.handshake_timeout.as_millis() as u64,
                    "handshake timed out"
                );
                return;
            }
        };
    let info = ConnInfo::new(
        shared.server.clone(),
        shared.local_addr,
        peer_addr,
        stream.get_ref().1,
        accepted_at.elapsed(),
    );
    tracing::debug!(
        tls.version = %info.tls_version,
        tls.suite = %info.cipher_suite,
        tls.sni = info.sni.as_deref().unwrap_or(""),
        tls.alpn = info.alpn.as_deref().unwrap_or(""),
        tls.resumed = info.resumed,
        "handshake complete"
    );
    let conn = TlsConn {
        stream,
        info: Arc::new(info),
        shutdown: shared.stop.clone(),
    };
    match shared.handler.serve(conn).await {
        Ok(()) => tracing::debug!("connection closed"),
        Err(error) => tracing::debug!(%error, "connection closed by handler error"),
    }
}
