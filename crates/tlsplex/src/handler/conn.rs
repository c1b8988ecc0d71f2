//! `TlsConn` and `ConnInfo`: what a handler receives.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::{HandshakeKind, ProtocolVersion, ServerConnection};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::TlsStream;
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
}

/// Facts about one connection, fixed once its handshake completed.
///
/// Serialised (by the status page's JSON) with these field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ConnInfo {
    /// Name of the server that accepted the connection.
    pub server: Arc<str>,
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
        local_addr: SocketAddr,
        peer_addr: SocketAddr,
        tls: &ServerConnection,
        handshake_duration: Duration,
    ) -> Self {
        Self {
            server,
            local_addr,
            peer_addr,
            sni: tls.server_name().map(str::to_owned),
            alpn: tls
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
            tls_version: tls
                .protocol_version()
                .map(tls_version_name)
                .unwrap_or_default(),
            cipher_suite: tls
                .negotiated_cipher_suite()
                .and_then(|s| s.suite().as_str())
                .unwrap_or_default()
                .to_owned(),
            key_exchange_group: tls
                .negotiated_key_exchange_group()
                .and_then(|group| group.name().as_str()),
            resumed: tls.handshake_kind() == Some(HandshakeKind::Resumed),
            client_cert: tls
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|leaf| CertSummary::from_der(leaf)),
            handshake_duration,
        }
    }
}

/// The usual name of a TLS version: `TLSv1.3`, `TLSv1.2`.
pub fn tls_version_name(version: ProtocolVersion) -> String {
    match version {
        ProtocolVersion::TLSv1_3 => "TLSv1.3".to_owned(),
        ProtocolVersion::TLSv1_2 => "TLSv1.2".to_owned(),
        other => format!("{other:?}"),
    }
}

fn as_millis<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64() * 1000.0)
}
