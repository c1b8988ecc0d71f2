//! Metrics: every name in one place, Prometheus conventions (`tlsplex_` prefix, `_total` for
//! counters, `_seconds` for durations, labels `server` and `reason`). prometheus-client adds the
//! `_total` suffix to counters when encoding, so the names below omit it.
//!
//! Each server resolves its label set once, at bind; the connection path then only touches
//! atomics. The series every server has are kept per server in one table (`per_server.rs`); the
//! families here hold the series by a value only some servers see.

mod acme;
mod http;
mod per_server;
mod process;
mod values;

use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub(crate) use per_server::ServerSeries;
use per_server::ServerSeriesTable;
pub use process::BUILD_INFO;
pub(crate) use values::Count;

/// Connections accepted (TCP), per server.
pub const CONNECTIONS_ACCEPTED: &str = "tlsplex_connections_accepted";
/// Connections open now (handshaking or served), per server.
pub const CONNECTIONS_ACTIVE: &str = "tlsplex_connections_active";
/// Times a server's accept loop waited for a free slot (`reason`: `server_limit`,
/// `process_limit`): tlsplex queues connections beyond a limit rather than refusing them.
pub const CONNECTIONS_LIMITED: &str = "tlsplex_connections_limited";
/// Connections closed at accept because their client address held the server's
/// `max_connections_per_client` already.
pub const CLIENT_LIMITED: &str = "tlsplex_client_limited_connections";
/// Completed handshakes, per server.
pub const HANDSHAKES: &str = "tlsplex_handshakes";
/// Completed handshakes by key-exchange `group` (`X25519MLKEM768`, `X25519`, …), per server.
pub const HANDSHAKES_BY_GROUP: &str = "tlsplex_handshakes_by_group";
/// Of which resumed.
pub const HANDSHAKES_RESUMED: &str = "tlsplex_handshakes_resumed";
/// Failed handshakes by `reason` ([`FailureReason`]).
pub const HANDSHAKE_FAILURES: &str = "tlsplex_handshake_failures";
/// Time from accept to the end of a successful handshake.
pub const HANDSHAKE_DURATION: &str = "tlsplex_handshake_duration_seconds";
/// Bytes read from clients (TLS records, as on the wire).
pub const BYTES_RECEIVED: &str = "tlsplex_received_bytes";
/// Bytes written to clients (TLS records, as on the wire).
pub const BYTES_SENT: &str = "tlsplex_sent_bytes";
/// `forward` connections whose backend could not be reached.
pub const FORWARD_BACKEND_ERRORS: &str = "tlsplex_forward_backend_errors";
/// HTTP responses by server and status class (`class` = `1xx` … `5xx`), every HTTP handler.
pub const HTTP_REQUESTS: &str = "tlsplex_http_requests";
/// HTTP responses of servers with routes, by `route` and `class`.
pub const ROUTE_HTTP_REQUESTS: &str = "tlsplex_route_http_requests";
/// From a request head to its response head, by server.
pub const HTTP_REQUEST_DURATION: &str = "tlsplex_http_request_duration_seconds";
/// Expiry of every certificate of every server (the default and each SNI certificate), as a
/// Unix timestamp, labelled by `server` and `name` (the certificate's first DNS name).
pub const CERTIFICATE_EXPIRY: &str = "tlsplex_certificate_expiry_timestamp_seconds";
/// Connections by the `route` their SNI took (servers with routes), per server.
pub const ROUTE_CONNECTIONS: &str = "tlsplex_route_connections";
/// Whether a backend's last connect or health check succeeded (1) or failed (0), labelled by
/// `server`, `pool` (the route, or the server) and `backend`.
pub const BACKEND_UP: &str = "tlsplex_backend_up";
/// Connections open to a backend now.
pub const BACKEND_CONNECTIONS_ACTIVE: &str = "tlsplex_backend_connections_active";
/// Connections made to a backend.
pub const BACKEND_CONNECTIONS: &str = "tlsplex_backend_connections";
/// Failed connects and health checks of a backend.
pub const BACKEND_FAILURES: &str = "tlsplex_backend_failures";
/// How long a backend took from a proxied request to its response head.
pub const BACKEND_RESPONSE_DURATION: &str = "tlsplex_backend_response_duration_seconds";
/// ACME orders by `result`: `ok`, `failed`.
pub const ACME_ORDERS: &str = "tlsplex_acme_orders";
/// Reloads by `result`: `ok`, `failed`.
pub const RELOADS: &str = "tlsplex_reloads";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct GroupLabels {
    server: String,
    group: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertificateLabels {
    server: String,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteLabels {
    server: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabels {
    server: String,
    pool: String,
    backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// The metric families of one context, and the registry that encodes them.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    servers: ServerSeriesTable,
    groups: Family<GroupLabels, Counter>,
    expiry: Family<CertificateLabels, Gauge>,
    routes: Family<RouteLabels, Counter>,
    route_requests: Family<http::RouteClassLabels, Counter>,
    backends: BackendFamilies,
    reloads: Family<ResultLabel, Counter>,
    acme_orders: Family<acme::OrderLabels, Counter>,
}

#[derive(Clone, Debug)]
struct BackendFamilies {
    up: Family<BackendLabels, Gauge>,
    active: Family<BackendLabels, Gauge>,
    connections: Family<BackendLabels, Counter>,
    failures: Family<BackendLabels, Counter>,
    response: Family<BackendLabels, Histogram, fn() -> Histogram>,
}

impl Default for BackendFamilies {
    fn default() -> Self {
        Self {
            up: Family::default(),
            active: Family::default(),
            connections: Family::default(),
            failures: Family::default(),
            response: Family::new_with_constructor(response_histogram),
        }
    }
}

/// A backend's response times (request sent to response head): 1 ms to ~33 s.
fn response_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.001, 2.0, 16,
    ))
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let metrics = Self {
            registry: Arc::default(),
            servers: ServerSeriesTable::default(),
            groups: Family::default(),
            expiry: Family::default(),
            routes: Family::default(),
            route_requests: Family::default(),
            backends: BackendFamilies::default(),
            reloads: Family::default(),
            acme_orders: Family::default(),
        };
        {
            let mut r = metrics
                .registry
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            r.register_collector(Box::new(metrics.servers.clone()));
            r.register_collector(Box::new(process::ProcessCollector));
            r.register(
                HANDSHAKES_BY_GROUP,
                "Completed TLS handshakes by key-exchange group",
                metrics.groups.clone(),
            );
            r.register(
                CERTIFICATE_EXPIRY,
                "Certificate expiry (Unix time)",
                metrics.expiry.clone(),
            );
            r.register(
                ROUTE_CONNECTIONS,
                "Connections by route",
                metrics.routes.clone(),
            );
            r.register(
                ROUTE_HTTP_REQUESTS,
                "HTTP responses by route and status class",
                metrics.route_requests.clone(),
            );
            let backends = &metrics.backends;
            r.register(BACKEND_UP, "Backend answered lately", backends.up.clone());
            r.register(
                BACKEND_CONNECTIONS_ACTIVE,
                "Connections open to a backend",
                backends.active.clone(),
            );
            r.register(
                BACKEND_CONNECTIONS,
                "Connections made to a backend",
                backends.connections.clone(),
            );
            r.register(
                BACKEND_FAILURES,
                "Failed connects and health checks of a backend",
                backends.failures.clone(),
            );
            r.register(
                BACKEND_RESPONSE_DURATION,
                "Proxied requests: sent to a backend until its response head",
                backends.response.clone(),
            );
            r.register(RELOADS, "Configuration reloads", metrics.reloads.clone());
            r.register(ACME_ORDERS, "ACME orders", metrics.acme_orders.clone());
        }
        metrics
    }
}

impl Metrics {
    /// Everything, in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        let registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        text
    }

    /// Counts a reload (the controller does).
    pub(crate) fn reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.reloads.get_or_create(&ResultLabel { result }).inc();
    }

    /// Drops every series of a server that was stopped or removed (not one replaced by a
    /// successor of its name): a stopped server's certificate must not raise an expiry alert.
    /// A connection still draining counts on into series no scrape shows.
    pub(crate) fn forget_server(&self, name: &str, server: &ServerMetrics) {
        self.servers.remove(name);
        server.groups.forget();
        server.routes.forget();
        server.http_routes.forget();
        server.expiry.show([]);
        server.backends.keep([]);
    }

    /// The handles of one server's metrics.
    pub(crate) fn server(&self, name: &str) -> ServerMetrics {
        let (server, series) = self.servers.get_or_create(name);
        ServerMetrics {
            series,
            groups: SeenCounters::new(&self.groups, &server, |server, group| GroupLabels {
                server,
                group,
            }),
            http_routes: SeenCounters::new(&self.route_requests, &server, http::route_class_labels),
            expiry: CertificateExpiry {
                family: self.expiry.clone(),
                server: server.clone(),
                shown: Mutex::default(),
            },
            routes: SeenCounters::new(&self.routes, &server, |server, route| RouteLabels {
                server,
                route: route.to_string(),
            }),
            backends: BackendMetrics {
                families: self.backends.clone(),
                server,
                shown: Mutex::default(),
            },
        }
    }
}

/// One server's metric handles: its series, and its series by a label only some servers use.
/// Each server holds one, shared (`Arc`) by its connections.
#[derive(Debug)]
pub(crate) struct ServerMetrics {
    /// The series every server has.
    pub(crate) series: Arc<ServerSeries>,
    pub(crate) groups: GroupCounters,
    /// HTTP responses by route and class (`http.rs`).
    pub(crate) http_routes: http::RouteRequestCounters,
    pub(crate) expiry: CertificateExpiry,
    pub(crate) routes: RouteCounters,
    pub(crate) backends: BackendMetrics,
}

/// The series of one backend: what its pool counts with.
#[derive(Clone, Debug)]
pub(crate) struct BackendSeries {
    pub(crate) up: Gauge,
    pub(crate) active: Gauge,
    pub(crate) connections: Counter,
    pub(crate) failures: Counter,
    pub(crate) response: Histogram,
}

impl Default for BackendSeries {
    /// Series counted nowhere (a pool made outside a server).
    fn default() -> Self {
        Self {
            up: Gauge::default(),
            active: Gauge::default(),
            connections: Counter::default(),
            failures: Counter::default(),
            response: response_histogram(),
        }
    }
}

/// One server's backend series, by pool and backend; those a reload drops lose their series.
#[derive(Debug)]
pub(crate) struct BackendMetrics {
    families: BackendFamilies,
    server: Arc<str>,
    shown: Mutex<Vec<BackendLabels>>,
}

impl BackendMetrics {
    /// The series of `backend` in `pool`.
    pub(crate) fn series(&self, pool: &str, backend: &str) -> BackendSeries {
        let labels = self.labels(pool, backend);
        let f = &self.families;
        let up = f.up.get_or_create(&labels).clone();
        let active = f.active.get_or_create(&labels).clone();
        let connections = f.connections.get_or_create(&labels).clone();
        let failures = f.failures.get_or_create(&labels).clone();
        let response = f.response.get_or_create(&labels).clone();
        BackendSeries {
            up,
            active,
            connections,
            failures,
            response,
        }
    }

    /// Keeps the series of these `(pool, backend)` pairs and drops the others of this server.
    pub(crate) fn keep(&self, backends: impl IntoIterator<Item = (String, String)>) {
        let keep: Vec<BackendLabels> = backends
            .into_iter()
            .map(|(pool, backend)| self.labels(&pool, &backend))
            .collect();
        let mut shown = self.shown.lock().unwrap_or_else(PoisonError::into_inner);
        for gone in shown.iter().filter(|labels| !keep.contains(labels)) {
            let f = &self.families;
            f.up.remove(gone);
            f.active.remove(gone);
            f.connections.remove(gone);
            f.failures.remove(gone);
            f.response.remove(gone);
        }
        *shown = keep;
    }

    fn labels(&self, pool: &str, backend: &str) -> BackendLabels {
        BackendLabels {
            server: self.server.to_string(),
            pool: pool.to_owned(),
            backend: backend.to_owned(),
        }
    }
}

/// One server's counters by a label value that exists once used (a key-exchange group, a
/// route): a process of many servers pays nothing for values nobody uses, and each server
/// remembers its counters, so a count takes one short lock, not the family's.
#[derive(Debug)]
pub(crate) struct SeenCounters<K, L> {
    family: Family<L, Counter>,
    server: Arc<str>,
    labels: fn(String, &K) -> L,
    /// `None` once the server is forgotten: a draining connection's count then goes nowhere.
    seen: Mutex<Option<Seen<K>>>,
}

/// The counters of one server by key, in the order first used.
type Seen<K> = Vec<(K, Counter)>;

/// Handshakes by key-exchange group.
pub(crate) type GroupCounters = SeenCounters<&'static str, GroupLabels>;
/// Connections by route.
pub(crate) type RouteCounters = SeenCounters<Arc<str>, RouteLabels>;

impl<K, L> SeenCounters<K, L>
where
    K: PartialEq + Clone,
    L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug,
{
    fn new(family: &Family<L, Counter>, server: &Arc<str>, labels: fn(String, &K) -> L) -> Self {
        Self {
            family: family.clone(),
            server: server.clone(),
            labels,
            seen: Mutex::new(Some(Vec::new())),
        }
    }

    pub(crate) fn count(&self, key: &K) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(seen) = seen.as_mut() else {
            return;
        };
        if let Some((_, counter)) = seen.iter().find(|(seen_key, _)| seen_key == key) {
            counter.inc();
            return;
        }
        let labels = (self.labels)(self.server.to_string(), key);
        let counter = self.family.get_or_create(&labels).clone();
        counter.inc();
        seen.push((key.clone(), counter));
    }

    /// The sum of the counts of every key `wanted` takes.
    pub(crate) fn sum(&self, wanted: impl Fn(&K) -> bool) -> u64 {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let seen = seen.iter().flatten();
        seen.filter(|(key, _)| wanted(key))
            .map(|(_, c)| c.get())
            .sum()
    }

    /// Drops this server's series from the family; later counts go nowhere.
    fn forget(&self) {
        let seen = self
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        for (key, _) in seen.into_iter().flatten() {
            self.family
                .remove(&(self.labels)(self.server.to_string(), &key));
        }
    }
}

/// Why a handshake failed: the `reason` label of [`HANDSHAKE_FAILURES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureReason {
    /// The handshake did not finish within the handshake timeout.
    Timeout,
    /// The client sent an alert.
    Alert,
    /// The client broke the protocol (not TLS, a bad message, nothing in common).
    Protocol,
    /// No client certificate, or one that does not verify (or no longer does, on resumption).
    ClientCert,
    /// Strict SNI: no certificate (or, with routes, no route) for the name asked for.
    Sni,
    /// A client certificate that verified but is not on the allow-list.
    ClientNotAllowed,
    /// The name's certificate is still to come from ACME.
    CertificatePending,
    /// The connection failed beneath TLS (reset, closed early).
    Io,
}

impl FailureReason {
    /// Every reason, in label order.
    pub const ALL: [Self; 8] = [
        Self::Timeout,
        Self::Alert,
        Self::Protocol,
        Self::ClientCert,
        Self::Sni,
        Self::ClientNotAllowed,
        Self::CertificatePending,
        Self::Io,
    ];

    /// The label value: `timeout`, `alert`, `protocol`, `client_cert`, `sni`,
    /// `client_not_allowed`, `certificate_pending`, `io`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Alert => "alert",
            Self::Protocol => "protocol",
            Self::ClientCert => "client_cert",
            Self::Sni => "sni",
            Self::ClientNotAllowed => "client_not_allowed",
            Self::CertificatePending => "certificate_pending",
            Self::Io => "io",
        }
    }
}

/// One server's certificate expiry gauges: one series per certificate name, replaced whole when
/// the server's certificates change.
#[derive(Debug)]
pub(crate) struct CertificateExpiry {
    family: Family<CertificateLabels, Gauge>,
    server: Arc<str>,
    /// The names shown now, so that a certificate removed by a reload loses its series.
    shown: Mutex<Vec<String>>,
}

impl CertificateExpiry {
    /// Shows `(name, not_after as Unix seconds)` for each certificate; where two certificates
    /// share a name, the sooner expiry.
    pub(crate) fn show(&self, certificates: impl IntoIterator<Item = (String, i64)>) {
        let mut soonest = std::collections::BTreeMap::<String, i64>::new();
        for (name, not_after) in certificates {
            let entry = soonest.entry(name).or_insert(not_after);
            *entry = (*entry).min(not_after);
        }
        let mut shown = self.shown.lock().unwrap_or_else(PoisonError::into_inner);
        for name in shown.iter().filter(|name| !soonest.contains_key(*name)) {
            self.family.remove(&self.labels(name));
        }
        for (name, not_after) in &soonest {
            self.family
                .get_or_create(&self.labels(name))
                .set(*not_after);
        }
        *shown = soonest.into_keys().collect();
    }

    fn labels(&self, name: &str) -> CertificateLabels {
        CertificateLabels {
            server: self.server.to_string(),
            name: name.to_owned(),
        }
    }
}
