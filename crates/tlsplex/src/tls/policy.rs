//! The rustls `ServerConfig` one server hands to every handshake.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::ServerConfig;

use super::certs::CertStore;

/// The ALPN protocols a server offers when it is not told otherwise: HTTP/2 first, then HTTP/1.1.
pub const DEFAULT_ALPN: [&str; 2] = ["h2", "http/1.1"];

/// Builds the rustls configuration for one server: TLS 1.2 and 1.3, no client authentication,
/// certificates chosen by `certs`, and `alpn` in order of preference.
pub(crate) fn server_config(
    provider: &Arc<CryptoProvider>,
    certs: Arc<CertStore>,
    alpn: &[String],
) -> Result<ServerConfig, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Ok(config)
}
