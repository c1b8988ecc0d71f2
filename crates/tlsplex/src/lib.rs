//! # tlsplex
//!
//! Many independent TLS server instances, each on its own port, inside one process that shares
//! one global TLS context. It is the Rust form of NanoSSL's "Multiple instances in a single
//! process": initialise the context once, run one server per port (each stoppable on its own),
//! give each accepted connection its own task that handshakes with that server's certificates and
//! then serves.
//!
//! # Layout
//! The root holds the embedding path ([`Context`], [`Server`], [`Supervisor`], [`Handler`],
//! [`TlsConn`], [`ConnInfo`], [`CertStore`], [`Identity`], [`TlsPolicy`]); the rest is in
//! modules, lowest layer first (each uses only those above it in this list):
//! - [`defaults`], [`files`], [`metrics`], [`registry`]: the process-wide defaults; bounded file reads; every metric name and its labels;
//!   the read-only list of servers handlers may show.
//! - [`tls`]: certificates, client authentication, OCSP, tickets and the rustls policy; knows
//!   rustls, not sockets.
//! - [`conn`]: one client connection ([`conn::MeteredTcp`], [`TlsStream`], [`TlsConn`],
//!   [`ConnInfo`], [`conn::Negotiated`]).
//! - [`Context`]: the global TLS context (`SSL_init` + `SSL_settings`): crypto provider,
//!   defaults, the process-wide connection limit, the registry, the shutdown token.
//! - [`handler`]: the [`Handler`] trait and the built-in status, static and forward handlers.
//! - [`route`]: [`route::Route`], many names on one port: a handler and TLS differences per
//!   SNI name, or passthrough.
//! - `server`: [`Server`] binds, accepts, and runs each connection's handshake and handler.
//! - `supervisor`: [`Supervisor`] owns servers by name and applies a [`ReloadPlan`].
//! - [`config`]: the TOML file, validated into a [`config::Config`] (or read as a
//!   [`config::ConfigOutline`], without keys); data and files, no sockets.
//! - [`control`]: the [`control::Controller`], which owns a supervisor and its config file and
//!   does reload, add, start, stop.
//! - [`acme`]: automatic certificates, a manager over the controller (TLS-ALPN-01 answered by
//!   every server through the context's [`tls::ChallengeStore`]).
//! - [`admin`]: the admin API and dashboard, a service over the controller.
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

pub mod acme;
#[cfg(feature = "admin")]
pub mod admin;
mod cidr;
pub mod config;
pub mod conn;
mod context;
pub mod control;
pub mod daemon;
pub mod defaults;
pub mod files;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod handler;
mod host;
pub mod metrics;
pub mod rate;
pub mod registry;
pub mod route;
mod server;
mod supervisor;
pub mod tls;
pub mod upstream;

// The embedding path: a context, servers, a supervisor, a handler and what it is given, and
// certificates. Everything else lives in its module.
pub use conn::{ConnInfo, TlsConn, TlsStream};
pub use context::{Context, ContextBuilder};
pub use handler::{Handler, HandlerError};
pub use server::{
    CertificateStats, RouteStats, Server, ServerError, ServerHandle, ServerOptions, ServerStats,
};
pub use supervisor::{ReloadPlan, ReloadReport, Supervisor, UnknownServer};
pub use tls::{CertStore, Identity, TlsPolicy};

/// Re-exported so embedders and tests use the same rustls as tlsplex.
pub use rustls;
