//! `TlsConn` and `ConnInfo`: what a handler receives.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConnection;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::{Negotiated, TlsStream};
use crate::metrics::ServerMetrics;
use crate::tls::summary::CertSummary;

/// One established TLS connection, handed to a [`crate::Handler`].
#[non_exhaustive]
pub struct TlsConn {
    /// The decrypted byte stream to and from the client.
    pub stream: TlsStream,
    /// What the handshake settled, and who is on the other end.
    pub info: Arc<ConnInfo>,
    /// Cancelled when this connection's server stops: finish the current exchange and return.
    pub shutdown: CancellationToken,
    /// The server's metrics, for the built-in handlers' own counters.
    pub(crate) metrics: Arc<ServerMetrics>,
    /// HTTP requests must name the SNI (the route's `strict_sni_host`).
    pub(crate) strict_sni_host: bool,
    /// The server's `access_log`: handlers that see requests log each one.
    pub(crate) access_log: bool,
    /// The server's `request_rate_per_client`, when it has one.
    pub(crate) request_rate: Option<Arc<crate::rate::RateTable>>,
}

/// Facts about one connection, fixed once its handshake completed.
///
/// Serialised (by the status page's JSON) with these field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ConnInfo {
    /// Name of the server that accepted the connection.
    pub server: Arc<str>,
    /// The route its SNI took (`None`: the server's own handler).
    pub route: Option<Arc<str>>,
    /// The server's listening address.
    pub local_addr: SocketAddr,
    /// The client's address.
    pub peer_addr: SocketAddr,
    /// The server name the client asked for (SNI), if it sent one.
    pub sni: Option<String>,
    /// The application protocol agreed by ALPN (`h2`, `http/1.1`), if any.
    pub alpn: Option<String>,
    /// `TLSv1.3` or `TLSv1.2`.
    pub tls_version: String,
    /// The IANA-style name of the cipher suite, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher_suite: String,
    /// The key-exchange group, e.g. `X25519MLKEM768` (post-quantum hybrid) or `X25519`; `None`
    /// for a resumed TLS 1.2 session, which exchanges no key.
    pub key_exchange_group: Option<&'static str>,
    /// Whether the session was resumed rather than negotiated afresh.
    pub resumed: bool,
    /// The client's certificate, when it presented one (and it verified).
    pub client_cert: Option<CertSummary>,
    /// From accepting the TCP connection to the end of the handshake.
    #[serde(rename = "handshake_ms", serialize_with = "as_millis")]
    pub handshake_duration: Duration,
}

impl ConnInfo {
    pub(crate) fn new(
        server: Arc<str>,
        route: Option<Arc<str>>,
        (local_addr, peer_addr): (SocketAddr, SocketAddr),
        tls: &ServerConnection,
        handshake_duration: Duration,
    ) -> Self {
        let negotiated = Negotiated::of(tls);
        Self {
            server,
            route,
            local_addr,
            peer_addr,
            sni: tls.server_name().map(str::to_owned),
            alpn: negotiated.alpn,
            tls_version: negotiated.tls_version,
            cipher_suite: negotiated.cipher_suite,
            key_exchange_group: negotiated.key_exchange_group,
            resumed: negotiated.resumed,
            client_cert: tls
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|leaf| CertSummary::from_der(leaf)),
            handshake_duration,
        }
    }
}

fn as_millis<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64() * 1000.0)
}
