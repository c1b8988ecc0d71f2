//! `Context`: the global TLS context, the Rust form of the seed's `SSL_init()` + `SSL_settings`.
//!
//! Every server is bound *with* a context, so "initialise before any server starts" holds by
//! construction. A context is cheap to clone and holds no hidden statics: two contexts in one
//! process are independent (the tests run many).

use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::defaults;
use crate::metrics::Metrics;
use crate::registry::ServerRegistry;
use crate::tls::challenge::ChallengeStore;
use crate::tls::managed::ManagedCertificates;
use crate::tls::policy::Providers;
use crate::tls::tickets::TicketKeys;

/// The global settings and shared state of every server in a process.
///
/// # Defaults
/// - `handshake_timeout`: 10 s, per server unless the server sets its own.
/// - `server_max_connections`: half of `max_connections` per server, so one flooded server
///   leaves the others room.
/// - `max_connections`: 10,000 concurrent connections across all servers of this context.
/// - `shutdown_grace`: 30 s for in-flight connections to finish once a server stops.
/// - `worker_threads`: one per CPU (used by [`Context::runtime`]).
/// - crypto provider: aws-lc-rs.
/// - ticket keys: a random master secret, rotating every 12 h.
#[derive(Clone, Debug)]
pub struct Context {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    providers: Providers,
    handshake_timeout: Duration,
    server_max_connections: usize,
    max_connections: usize,
    /// Permits for the process-wide connection limit; a connection holds one until it closes.
    connection_permits: Arc<Semaphore>,
    shutdown_grace: Duration,
    worker_threads: Option<usize>,
    registry: ServerRegistry,
    metrics: Metrics,
    /// Session-ticket master secret; `None` only if the system could not produce randomness.
    ticket_keys: Option<Arc<TicketKeys>>,
    /// Cancelled once, to stop every server of this context; each server's token is a child.
    shutdown: CancellationToken,
    /// Pending ACME TLS-ALPN-01 validations, answered by every server of this context.
    challenges: Arc<ChallengeStore>,
    /// What the ACME manager knows of the certificates it keeps.
    managed: ManagedCertificates,
}

impl Context {
    /// Starts building a context with the defaults listed on [`Context`].
    pub fn builder() -> ContextBuilder {
        ContextBuilder::default()
    }

    /// The crypto provider every server of this context uses.
    pub fn crypto_provider(&self) -> &Arc<CryptoProvider> {
        self.inner.providers.base()
    }

    /// The narrowed providers servers of this context negotiate with.
    pub(crate) fn providers(&self) -> &Providers {
        &self.inner.providers
    }

    /// How long a client has to complete its handshake, unless its server says otherwise.
    pub fn handshake_timeout(&self) -> Duration {
        self.inner.handshake_timeout
    }

    /// Concurrent connections per server, unless the server says otherwise.
    pub fn server_max_connections(&self) -> usize {
        self.inner.server_max_connections
    }

    /// Concurrent connections across all servers of this context.
    pub fn max_connections(&self) -> usize {
        self.inner.max_connections
    }

    /// How long in-flight connections get to finish after their server stops.
    pub fn shutdown_grace(&self) -> Duration {
        self.inner.shutdown_grace
    }

    /// The servers of this context, as the status page lists them.
    pub fn registry(&self) -> &ServerRegistry {
        &self.inner.registry
    }

    /// The metrics of every server of this context.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The session-ticket keys every server derives its own from.
    pub fn ticket_keys(&self) -> Option<&Arc<TicketKeys>> {
        self.inner.ticket_keys.as_ref()
    }

    /// Connections open now across all servers of this context.
    pub fn open_connections(&self) -> usize {
        self.inner.max_connections - self.inner.connection_permits.available_permits()
    }

    /// The pending ACME TLS-ALPN-01 validations every server of this context answers.
    pub fn acme_challenges(&self) -> &Arc<ChallengeStore> {
        &self.inner.challenges
    }

    /// The certificates the ACME manager keeps, and where each stands.
    pub fn acme_certificates(&self) -> &ManagedCertificates {
        &self.inner.managed
    }

    /// Stops every server of this context (each drains as [`crate::Server::run`] describes).
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
    }

    /// The token every server's own stop token is a child of.
    pub(crate) fn shutdown_token(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    pub(crate) fn connection_permits(&self) -> &Arc<Semaphore> {
        &self.inner.connection_permits
    }

    /// A multi-threaded tokio runtime with this context's `worker_threads`.
    pub fn runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if let Some(threads) = self.inner.worker_threads {
            builder.worker_threads(threads);
        }
        builder.thread_name("tlsplex-worker").enable_all().build()
    }
}

/// Builds a [`Context`]; see there for the defaults.
#[derive(Debug, Clone)]
pub struct ContextBuilder {
    handshake_timeout: Duration,
    server_max_connections: Option<usize>,
    max_connections: usize,
    shutdown_grace: Duration,
    worker_threads: Option<usize>,
    ticket_keys: Option<Arc<TicketKeys>>,
}

impl Default for ContextBuilder {
    fn default() -> Self {
        Self {
            handshake_timeout: defaults::DEFAULT_HANDSHAKE_TIMEOUT,
            server_max_connections: None,
            max_connections: defaults::DEFAULT_MAX_CONNECTIONS,
            shutdown_grace: defaults::DEFAULT_SHUTDOWN_GRACE,
            worker_threads: None,
            ticket_keys: None,
        }
    }
}

impl ContextBuilder {
    /// Default time allowed for a TLS handshake, from accept to the handshake's end.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Default limit of concurrent connections per server (at least 1).
    pub fn server_max_connections(mut self, limit: usize) -> Self {
        self.server_max_connections = Some(limit.max(1));
        self
    }

    /// Limit of concurrent connections across all servers (at least 1).
    pub fn max_connections(mut self, limit: usize) -> Self {
        self.max_connections = limit.clamp(1, Semaphore::MAX_PERMITS);
        self
    }

    /// Time in-flight connections get to finish after their server stops.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Worker threads for [`Context::runtime`]; `None` means one per CPU.
    pub fn worker_threads(mut self, threads: Option<usize>) -> Self {
        self.worker_threads = threads.map(|n| n.max(1));
        self
    }

    /// Session-ticket keys, e.g. from a file shared with other processes
    /// ([`TicketKeys::from_file`]). Without this, a random secret rotating every 12 h.
    pub fn ticket_keys(mut self, keys: TicketKeys) -> Self {
        self.ticket_keys = Some(Arc::new(keys));
        self
    }

    /// Initialises the context: the seed's `SSL_init()`, done once, before any server.
    pub fn build(self) -> Context {
        let ticket_keys = self.ticket_keys.or_else(|| {
            match TicketKeys::generate(defaults::DEFAULT_TICKET_ROTATION) {
                Ok(keys) => Some(Arc::new(keys)),
                Err(error) => {
                    tracing::error!(%error, "session tickets disabled");
                    None
                }
            }
        });
        Context {
            inner: Arc::new(Inner {
                providers: Providers::new(rustls::crypto::aws_lc_rs::default_provider()),
                handshake_timeout: self.handshake_timeout,
                server_max_connections: self.server_max_connections.unwrap_or_else(|| {
                    defaults::default_server_max_connections(self.max_connections)
                }),
                max_connections: self.max_connections,
                connection_permits: Arc::new(Semaphore::new(self.max_connections)),
                shutdown_grace: self.shutdown_grace,
                worker_threads: self.worker_threads,
                registry: ServerRegistry::default(),
                metrics: Metrics::default(),
                ticket_keys,
                shutdown: CancellationToken::new(),
                challenges: Arc::default(),
                managed: ManagedCertificates::default(),
            }),
        }
    }
}
