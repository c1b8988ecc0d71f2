//! `ServerHandle`: a cheap handle to a running server.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::limit::ConnectionLimit;
use super::settings::LiveSettings;
use super::{ServerError, ServerOptions};
use crate::metrics::ServerMetrics;
use crate::registry::{RegistryEntry, ServerState};
use crate::tls::certs::CertStore;
use crate::tls::summary::CertSummary;

/// A cheap handle to a server: stop it, update it, count its connections.
#[derive(Clone)]
pub struct ServerHandle(pub(super) Arc<ServerParts>);

/// What a server's handle reaches, shared by its handles and its accept task.
pub(super) struct ServerParts {
    pub(super) name: Arc<str>,
    pub(super) local_addr: SocketAddr,
    pub(super) stop: CancellationToken,
    /// Cancelled by the server once its listening socket is closed.
    pub(super) closed: CancellationToken,
    pub(super) connections: TaskTracker,
    pub(super) settings: Arc<LiveSettings>,
    pub(super) limit: ConnectionLimit,
    pub(super) clients: Arc<super::client_limit::ClientLimit>,
    /// Requests per second per client address (`request_rate_per_client`).
    pub(super) rates: Arc<crate::rate::RateTable>,
    pub(super) entry: RegistryEntry,
    pub(super) default_max_connections: usize,
    pub(super) metrics: Arc<ServerMetrics>,
}

/// A server's figures, as the admin API reports them.
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct ServerStats {
    /// The server's name.
    pub name: String,
    /// Its address.
    pub listen: SocketAddr,
    /// [`ServerState::Serving`], [`ServerState::Draining`] or [`ServerState::Stopped`]
    /// (`serving`, `draining`, `stopped` in JSON).
    pub state: ServerState,
    /// Connections open now.
    pub connections_active: usize,
    /// Connections accepted since start.
    pub connections_total: u64,
    /// Completed handshakes since start.
    pub handshakes: u64,
    /// Of which resumed.
    pub handshakes_resumed: u64,
    /// Failed handshakes by reason (as its label: `timeout`, `alert`, …).
    pub handshake_failures: std::collections::BTreeMap<&'static str, u64>,
    /// HTTP responses since start (every HTTP handler).
    pub http_requests: u64,
    /// Of which 5xx (the proxy's 502/503/504 among them).
    pub http_responses_5xx: u64,
    /// The default certificate's subject.
    pub certificate_subject: String,
    /// Whole days until it expires.
    pub certificate_days_left: i64,
    /// Every certificate the server presents (the default first, then the SNI ones).
    pub certificates: Vec<CertificateStats>,
    /// Its routes' names, in order (empty: one handler for every name).
    pub routes: Vec<String>,
    /// Its routes' figures, in the same order.
    pub route_stats: Vec<RouteStats>,
    /// Every backend of its handlers' pools: state, connections, failures.
    pub backends: Vec<crate::handler::BackendStats>,
}

/// One route's figures since its server started, as the admin API reports them.
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct RouteStats {
    /// The route's name.
    pub name: String,
    /// Connections its SNI took.
    pub connections_total: u64,
    /// HTTP responses on it.
    pub http_requests: u64,
    /// Of which 5xx.
    pub http_responses_5xx: u64,
}

impl ServerStats {
    /// A server that is configured but not running: its name and the address it had.
    pub fn stopped(name: &str, listen: SocketAddr) -> Self {
        Self {
            name: name.to_owned(),
            listen,
            state: ServerState::Stopped,
            connections_active: 0,
            connections_total: 0,
            handshakes: 0,
            handshakes_resumed: 0,
            handshake_failures: std::collections::BTreeMap::new(),
            http_requests: 0,
            http_responses_5xx: 0,
            certificate_subject: String::new(),
            certificate_days_left: 0,
            certificates: Vec::new(),
            routes: Vec::new(),
            route_stats: Vec::new(),
            backends: Vec::new(),
        }
    }
}

/// One certificate of a server, as the admin API reports it: what [`CertSummary`] says, whether
/// it is the default, and the days left.
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct CertificateStats {
    /// Subject, issuer, names, validity and fingerprint.
    #[serde(flatten)]
    pub summary: CertSummary,
    /// Whether it answers clients whose SNI no other certificate names.
    pub default: bool,
    /// Whole days until it expires; negative once it has.
    pub days_left: i64,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("name", &self.0.name)
            .field("local_addr", &self.0.local_addr)
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// The server's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The address the server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.0.local_addr
    }

    /// Stops this server alone (the seed's `needToDie`): it stops accepting, its port closes, its
    /// in-flight connections finish. Other servers are not touched.
    pub fn stop(&self) {
        self.0.entry.set_state(ServerState::Draining);
        self.0.stop.cancel();
    }

    /// Waits until the server, once stopped, has closed its listening socket (its in-flight
    /// connections may still be draining).
    pub async fn port_closed(&self) {
        self.0.closed.cancelled().await;
    }

    /// Whether [`ServerHandle::stop`] (or the context's shutdown) has been called.
    pub fn is_stopping(&self) -> bool {
        self.0.stop.is_cancelled()
    }

    /// Connections this server holds now (handshaking or being served).
    pub fn open_connections(&self) -> usize {
        self.0.connections.len()
    }

    /// Applies new options to the running server: certificates, TLS policy, handler, handshake
    /// timeout and connection limit. New connections use them; open connections keep what they
    /// have; session caches and ticket keys carry over (a new `session_cache_size` waits for a
    /// restart). The name and address are not changed here (see `Supervisor::reload`). On error
    /// nothing changes. Must be called within a tokio runtime.
    pub fn update(&self, options: &ServerOptions) -> Result<(), ServerError> {
        self.0
            .settings
            .replace(options)
            .map_err(|source| ServerError::Tls {
                server: self.0.name.to_string(),
                source,
            })?;
        self.0.limit.resize(
            options
                .max_connections
                .unwrap_or(self.0.default_max_connections),
        );
        self.0.clients.set(options.max_connections_per_client);
        self.0.rates.set(options.request_rate_per_client);
        Ok(())
    }

    /// The certificates it serves, the default first (as [`ServerStats::certificates`]):
    /// without the rest of [`Self::stats`], which the CLI's start-up line for each of 10,000
    /// servers does not need.
    pub fn certificates(&self) -> Vec<CertificateStats> {
        certificates(
            &self.0.settings.current().certs,
            std::time::SystemTime::now(),
        )
    }

    /// The server's figures now.
    pub fn stats(&self) -> ServerStats {
        let m = &self.0.metrics;
        let settings = self.0.settings.current();
        let cert = settings.certs.default_identity().summary();
        let now = std::time::SystemTime::now();
        ServerStats {
            name: self.0.name.to_string(),
            listen: self.0.local_addr,
            state: if self.is_stopping() {
                ServerState::Draining
            } else {
                ServerState::Serving
            },
            connections_active: self.open_connections(),
            connections_total: m.series.accepted.get(),
            handshakes: m.series.handshakes.get(),
            handshakes_resumed: m.series.resumed.get(),
            handshake_failures: m
                .series
                .failures()
                .map(|(reason, count)| (reason.as_str(), count))
                .collect(),
            http_requests: m.http_responses(),
            http_responses_5xx: m.http_server_errors(),
            certificate_subject: cert.subject.clone(),
            certificate_days_left: cert.days_until_expiry(now),
            certificates: certificates(&settings.certs, now),
            routes: settings.routes.names().map(str::to_owned).collect(),
            route_stats: settings
                .routes
                .names()
                .map(|name| {
                    let (http_requests, http_responses_5xx) = m.http_on_route(name);
                    RouteStats {
                        name: name.to_owned(),
                        connections_total: m.routes.sum(|route| &**route == name),
                        http_requests,
                        http_responses_5xx,
                    }
                })
                .collect(),
            backends: settings.routes.backend_stats(),
        }
    }

    /// Drops the server's metric series (it stops for good: no successor takes its name).
    pub(crate) fn forget_metrics(&self, metrics: &crate::metrics::Metrics) {
        metrics.forget_server(&self.0.name, &self.0.metrics);
    }

    /// Marks the server as draining in the registry while it still serves, so a successor may
    /// take its name; `false` undoes it.
    pub(crate) fn set_replaced(&self, replaced: bool) {
        let state = if replaced {
            ServerState::Draining
        } else {
            ServerState::Serving
        };
        self.0.entry.set_state(state);
    }
}

fn certificates(certs: &CertStore, now: std::time::SystemTime) -> Vec<CertificateStats> {
    certs
        .identities()
        .iter()
        .enumerate()
        .map(|(index, identity)| CertificateStats {
            summary: identity.summary().clone(),
            default: index == 0,
            days_left: identity.summary().days_until_expiry(now),
        })
        .collect()
}
