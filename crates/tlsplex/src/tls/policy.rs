//! `TlsPolicy`: what one server negotiates (versions, suites, groups, ALPN, SNI strictness, client
//! certificates, resumption), and the rustls `ServerConfig` built from it.

use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::{aws_lc_rs, CryptoProvider, SupportedKxGroup};
use rustls::server::danger::ClientCertVerifier;
use rustls::{ServerConfig, SupportedCipherSuite, SupportedProtocolVersion};

use super::certs::CertStore;
use super::client_auth::ClientAuth;
use super::resumption::ResumptionState;

/// The ALPN protocols a server offers when it is not told otherwise: HTTP/2 first, then HTTP/1.1.
pub const DEFAULT_ALPN: [&str; 2] = ["h2", "http/1.1"];

/// Session-cache entries per server when not told otherwise.
pub const DEFAULT_SESSION_CACHE_SIZE: usize = 4096;

/// The default suites, most preferred first: rustls' defaults with AES-128-GCM ahead of
/// AES-256-GCM, as Go and BoringSSL order them. Both are strong; AES-128 with SHA-256 costs
/// less per handshake (measured: 175 against 195 µs of server CPU per full TLS 1.3 handshake,
/// most of the difference in SHA-384's key schedule) and per byte.
pub const DEFAULT_CIPHER_SUITES: &[SupportedCipherSuite] = &[
    aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256,
    aws_lc_rs::cipher_suite::TLS13_AES_256_GCM_SHA384,
    aws_lc_rs::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    aws_lc_rs::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    aws_lc_rs::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    aws_lc_rs::cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    aws_lc_rs::cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    aws_lc_rs::cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    aws_lc_rs::cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
];

/// How one server negotiates TLS.
///
/// # Defaults
/// TLS 1.3 and 1.2; rustls's suites for aws-lc-rs in [`DEFAULT_CIPHER_SUITES`]' order (the
/// server's order wins) and its default key-exchange groups; ALPN `h2`, `http/1.1`; unknown SNI gets the default certificate; no client
/// certificates; a 4096-entry session cache and stateless tickets; no certificate compression.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TlsPolicy {
    /// Protocol versions, in any order.
    pub versions: Vec<&'static SupportedProtocolVersion>,
    /// Cipher suites, most preferred first.
    pub cipher_suites: Vec<SupportedCipherSuite>,
    /// Key-exchange groups, most preferred first.
    pub kx_groups: Vec<&'static dyn SupportedKxGroup>,
    /// ALPN protocols, most preferred first; empty turns ALPN off.
    pub alpn: Vec<String>,
    /// Refuse (alert `unrecognized_name`) a client whose SNI matches no certificate.
    pub strict_sni: bool,
    /// HTTP requests whose host (`Host`, or HTTP/2's `:authority`) is not the SNI the client
    /// sent get `421 Misdirected Request` (Caddy's `strict_sni_host`). `None`: on exactly when
    /// client certificates are asked for, since a request for another name on a connection
    /// authenticated for this one must not reach that name's handler.
    pub strict_sni_host: Option<bool>,
    /// Compress the certificate message (RFC 8879, brotli or zlib as the client offers) for
    /// clients that ask. Off by default, as nginx and Envoy chose: it saves bytes in the first
    /// flight, at some CPU the first time each chain is compressed.
    pub cert_compression: bool,
    /// Client certificates: `None` asks for none.
    pub client_auth: Option<ClientAuth>,
    /// Stateful session-cache entries; 0 turns the cache off.
    pub session_cache_size: usize,
    /// Stateless session tickets (TLS 1.2 and 1.3), keys from the context.
    pub tickets: bool,
    /// TLS 1.3 tickets sent after each full handshake (each resumes one later connection; one
    /// costs a little less server CPU per handshake). Default 2, as rustls and OpenSSL.
    pub tls13_tickets: usize,
    /// Under client authentication, how long after its full handshake a session may still be
    /// resumed, across every ticket its resumptions issue.
    pub max_session_age: Duration,
    /// The most bytes a ClientHello may take (its records, headers included). A larger one, or
    /// one that says it will be larger, is refused with a `decode_error` alert before
    /// more of it is read, so a client that never finishes its hello holds this much at most.
    pub max_client_hello: usize,
}

impl TlsPolicy {
    /// Whether requests must name the SNI (see [`TlsPolicy::strict_sni_host`]).
    pub fn strict_sni_host(&self) -> bool {
        self.strict_sni_host.unwrap_or(self.client_auth.is_some())
    }
}

/// [`TlsPolicy::max_client_hello`] when not told otherwise. Real ClientHellos, post-quantum key
/// shares and GREASE included, are 0.5 to 3 KiB (Chromium with X25519MLKEM768: about 1.8 KiB).
pub const DEFAULT_MAX_CLIENT_HELLO: usize = 16 * 1024;
/// The bounds of [`TlsPolicy::max_client_hello`]: at least a small hello, at most what a
/// handshake message may be.
pub const CLIENT_HELLO_LIMITS: std::ops::RangeInclusive<usize> = 512..=65_536;

/// [`TlsPolicy::tls13_tickets`] when not told otherwise.
pub const DEFAULT_TLS13_TICKETS: usize = 2;
/// The most [`TlsPolicy::tls13_tickets`] may be: each one is written on every full handshake.
pub const MAX_TLS13_TICKETS: usize = 8;

/// [`TlsPolicy::max_session_age`] when not told otherwise: a day (RFC 8446 allows a ticket up
/// to 7 days; browsers keep them for hours).
pub const DEFAULT_MAX_SESSION_AGE: Duration = Duration::from_secs(24 * 3600);

impl Default for TlsPolicy {
    fn default() -> Self {
        Self {
            versions: rustls::DEFAULT_VERSIONS.to_vec(),
            cipher_suites: DEFAULT_CIPHER_SUITES.to_vec(),
            kx_groups: aws_lc_rs::DEFAULT_KX_GROUPS.to_vec(),
            alpn: DEFAULT_ALPN.iter().map(|p| (*p).to_owned()).collect(),
            strict_sni: false,
            cert_compression: false,
            client_auth: None,
            session_cache_size: DEFAULT_SESSION_CACHE_SIZE,
            tickets: true,
            tls13_tickets: DEFAULT_TLS13_TICKETS,
            max_client_hello: DEFAULT_MAX_CLIENT_HELLO,
            strict_sni_host: None,
            max_session_age: DEFAULT_MAX_SESSION_AGE,
        }
    }
}

/// A name in a policy that tlsplex does not offer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {name:?} is not offered by tlsplex; choose from: {}", choices.join(", "))]
pub struct UnknownName {
    /// `protocol version`, `cipher suite` or `key-exchange group`.
    pub kind: &'static str,
    /// The name asked for.
    pub name: String,
    /// The names that are offered.
    pub choices: Vec<&'static str>,
}

impl TlsPolicy {
    /// Parses version names: `TLSv1.3`/`1.3` and `TLSv1.2`/`1.2`.
    pub fn parse_versions(
        names: &[String],
    ) -> Result<Vec<&'static SupportedProtocolVersion>, UnknownName> {
        names
            .iter()
            .map(|name| match name.trim_start_matches("TLSv") {
                "1.3" => Ok(&rustls::version::TLS13),
                "1.2" => Ok(&rustls::version::TLS12),
                _ => Err(UnknownName {
                    kind: "protocol version",
                    name: name.clone(),
                    choices: vec!["TLSv1.3", "TLSv1.2"],
                }),
            })
            .collect()
    }

    /// Parses cipher-suite names as rustls spells them (`TLS13_AES_128_GCM_SHA256`,
    /// `TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384`, …).
    pub fn parse_cipher_suites(names: &[String]) -> Result<Vec<SupportedCipherSuite>, UnknownName> {
        let all = aws_lc_rs::ALL_CIPHER_SUITES;
        let name_of = |s: &SupportedCipherSuite| s.suite().as_str().unwrap_or("");
        names
            .iter()
            .map(|name| {
                all.iter()
                    .find(|s| name_of(s).eq_ignore_ascii_case(name))
                    .copied()
                    .ok_or_else(|| UnknownName {
                        kind: "cipher suite",
                        name: name.clone(),
                        choices: all.iter().map(name_of).collect(),
                    })
            })
            .collect()
    }

    /// Parses key-exchange group names (`X25519`, `secp256r1`, `secp384r1`, `X25519MLKEM768`).
    pub fn parse_kx_groups(
        names: &[String],
    ) -> Result<Vec<&'static dyn SupportedKxGroup>, UnknownName> {
        let all = aws_lc_rs::ALL_KX_GROUPS;
        let name_of = |g: &&dyn SupportedKxGroup| g.name().as_str().unwrap_or("");
        names
            .iter()
            .map(|name| {
                all.iter()
                    .find(|g| name_of(g).eq_ignore_ascii_case(name))
                    .copied()
                    .ok_or_else(|| UnknownName {
                        kind: "key-exchange group",
                        name: name.clone(),
                        choices: all.iter().map(name_of).collect(),
                    })
            })
            .collect()
    }
}

/// A context's crypto provider, and the copies narrowed to a policy's suites and groups that
/// servers negotiate with: each distinct narrowing is built once, so 10,000 servers with the
/// same policy share one provider instead of holding one each.
#[derive(Debug)]
pub(crate) struct Providers {
    base: Arc<CryptoProvider>,
    narrowed: std::sync::Mutex<Vec<Arc<CryptoProvider>>>,
}

impl Providers {
    pub(crate) fn new(base: CryptoProvider) -> Self {
        Self {
            base: Arc::new(base),
            narrowed: std::sync::Mutex::default(),
        }
    }

    /// The provider as the context was built with.
    pub(crate) fn base(&self) -> &Arc<CryptoProvider> {
        &self.base
    }

    /// The provider one server negotiates with: the base narrowed to the policy's suites and
    /// groups.
    pub(crate) fn for_policy(&self, policy: &TlsPolicy) -> Arc<CryptoProvider> {
        let fits = |p: &CryptoProvider| {
            p.cipher_suites
                .iter()
                .map(|s| s.suite())
                .eq(policy.cipher_suites.iter().map(|s| s.suite()))
                && p.kx_groups
                    .iter()
                    .map(|g| g.name())
                    .eq(policy.kx_groups.iter().map(|g| g.name()))
        };
        let mut narrowed = self
            .narrowed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(provider) = narrowed.iter().find(|p| fits(p)) {
            return provider.clone();
        }
        let provider = Arc::new(CryptoProvider {
            cipher_suites: policy.cipher_suites.clone(),
            kx_groups: policy.kx_groups.clone(),
            ..(*self.base).clone()
        });
        narrowed.push(provider.clone());
        provider
    }
}

/// Builds one server's rustls configuration; `verifier` checks client certificates (built from
/// the policy's client auth with [`provider`]).
pub(crate) fn server_config(
    provider: Arc<CryptoProvider>,
    certs: Arc<CertStore>,
    policy: &TlsPolicy,
    verifier: Option<Arc<dyn ClientCertVerifier>>,
    resumption: &ResumptionState,
) -> Result<ServerConfig, rustls::Error> {
    let builder =
        ServerConfig::builder_with_provider(provider).with_protocol_versions(&policy.versions)?;
    let builder = match verifier {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let chains = certs.identities().len();
    let mut config = builder.with_cert_resolver(certs);
    if policy.cert_compression {
        // Each chain is compressed once per algorithm, then served from the cache.
        let compressors = rustls::compress::default_cert_compressors();
        config.cert_compressors = compressors.to_vec();
        config.cert_compression_cache = Arc::new(rustls::compress::CompressionCache::new(
            chains * compressors.len(),
        ));
    } else {
        config.cert_compressors = Vec::new();
    }
    config.alpn_protocols = policy.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    // The server's preference wins: operators order suites on purpose.
    config.ignore_client_order = true;
    config.session_storage = resumption.session_cache.clone();
    config.send_tls13_tickets = policy.tls13_tickets;
    let ticketer = resumption.ticketer.as_ref().filter(|_| policy.tickets);
    if let Some(ticketer) = ticketer {
        config.ticketer = ticketer.clone();
    } else if policy.session_cache_size == 0 {
        // No way to resume: sending TLS 1.3 tickets would only cost the client memory.
        config.send_tls13_tickets = 0;
    }
    Ok(config)
}
