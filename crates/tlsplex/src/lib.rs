//! # tlsplex
//!
//! Many independent TLS server instances, each on its own port, inside one process that shares
//! one global TLS context. It is the Rust form of NanoSSL's "Multiple instances in a single
//! process": initialise the context once, run one server per port (each stoppable on its own),
//! give each accepted connection its own task that handshakes with that server's certificates and
//! then serves.
//!
//! # Layout
//! - [`context`](Context): the global TLS context (`SSL_init` + `SSL_settings`): crypto provider,
//!   defaults, the process-wide connection limit, the server registry, the shutdown token.
//! - `config`: the TOML file, validated into a [`Config`]; pure data, no sockets.
//! - [`files`]: reading configured files without waiting on a FIFO or reading a device forever.
//! - `metered`: [`MeteredTcp`], the client's TCP stream counting its bytes (used by `server`
//!   and `handler`).
//! - `tls`: certificates ([`CertStore`], [`Identity`], [`CertSummary`]) and the rustls policy.
//! - `server`: [`Server`] binds, accepts, and runs each connection's handshake and handler.
//! - `handler`: the [`Handler`] trait, [`TlsConn`]/[`ConnInfo`], the built-in [`StatusHandler`].
//! - `registry`: [`ServerRegistry`], the read-only list of servers handlers may show.
//! - `supervisor`: [`Supervisor`] owns servers by name: start all, reload as a diff, shut down.
//! - [`admin`]: the admin API and dashboard, answering through requests to the supervisor's owner.
//! - [`metrics`]: every metric name, and the registry the admin endpoint encodes.
//!
//! # Example
//! The seed's program: one context, two servers, each connection in its own task.
//! ```no_run
//! use tlsplex::{CertStore, Context, Identity, ServerOptions, Supervisor};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let ctx = Context::builder().build(); // SSL_init(), once, before any server
//! let certs = CertStore::single(Identity::from_pem_files(
//!     "cert.pem".as_ref(),
//!     "key.pem".as_ref(),
//! )?);
//! let certs = std::sync::Arc::new(certs);
//! let servers = [1440, 1441].map(|port| {
//!     ServerOptions::new(format!("demo-{port}"), ([127, 0, 0, 1], port).into(), certs.clone())
//! });
//! let supervisor = Supervisor::start(&ctx, servers)?; // binds both, then serves both
//! tokio::signal::ctrl_c().await?;
//! supervisor.shutdown().await; // stop accepting, let in-flight connections finish
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
mod config;
mod conn;
mod context;
pub mod control;
pub mod files;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod handler;
pub mod metrics;
mod registry;
mod server;
mod supervisor;
mod tls;

pub use config::{
    AdminOutline, Config, ConfigError, ConfigOutline, GlobalSettings, HandlerSpec, Problem,
    ServerOutline, ServerSpec,
};
pub use conn::{tls_version_name, MeteredTcp, Negotiated, TlsStream};
pub use context::{Context, ContextBuilder};
pub use handler::{
    Backend, ConnInfo, ForwardHandler, ForwardOptions, Handler, HandlerError, HttpHandler,
    HttpLimits, ProxyProtocol, StaticHandler, StatusHandler, TlsConn, DEFAULT_FORWARD_IDLE_TIMEOUT,
};
pub use metrics::{FailureReason, Metrics};
pub use registry::{DuplicateName, ServerListing, ServerRegistry, ServerState};
pub use server::{CertificateStats, Server, ServerError, ServerHandle, ServerOptions, ServerStats};
pub use supervisor::{ReloadReport, Supervisor, UnknownServer};
pub use tls::certs::{CertLoadError, CertStore, Identity};
pub use tls::client_auth::{ClientAuth, ClientAuthError, ClientAuthMode};
pub use tls::ocsp::{OcspCertStatus, OcspSummary};
pub use tls::policy::{
    TlsPolicy, UnknownName, DEFAULT_ALPN, DEFAULT_CIPHER_SUITES, DEFAULT_SESSION_CACHE_SIZE,
};
pub use tls::summary::{sha256_fingerprint, CertSummary};
pub use tls::tickets::{new_ticket_key_file, TicketKeyError, TicketKeys};

/// Re-exported so embedders and tests use the same rustls as tlsplex.
pub use rustls;
