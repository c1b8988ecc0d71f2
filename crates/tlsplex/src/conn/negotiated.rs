//! `Negotiated`: what a TLS handshake settled, read from any rustls connection.

use rustls::{CommonState, HandshakeKind, ProtocolVersion};

/// What a handshake settled: version, suite, key exchange, ALPN, resumption.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Negotiated {
    /// `TLSv1.3` or `TLSv1.2`.
    pub tls_version: String,
    /// The IANA-style name of the cipher suite, e.g. `TLS13_AES_128_GCM_SHA256`.
    pub cipher_suite: String,
    /// The key-exchange group, e.g. `X25519MLKEM768`; `None` for a resumed TLS 1.2 session.
    pub key_exchange_group: Option<&'static str>,
    /// The application protocol agreed by ALPN, if any.
    pub alpn: Option<String>,
    /// Whether the session was resumed.
    pub resumed: bool,
}

impl Negotiated {
    /// Reads it from a connection whose handshake is complete (a `ServerConnection` or a
    /// `ClientConnection`, both of which deref to `CommonState`).
    pub fn of(tls: &CommonState) -> Self {
        Self {
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
            alpn: tls
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
            resumed: tls.handshake_kind() == Some(HandshakeKind::Resumed),
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
