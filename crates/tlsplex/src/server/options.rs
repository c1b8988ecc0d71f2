//! `ServerOptions`: what one server instance is, before it is bound.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::handler::{
    ConnectionHandler, ForwardHandler, ForwardOptions, Handler, HttpLimits, PathRule, ProxyHandler,
    ProxyOptions, RespondHandler, StaticHandler, StatusHandler,
};
use crate::rate::RequestRate;
use crate::route::Route;
use crate::tls::certs::CertStore;
use crate::tls::policy::TlsPolicy;

/// Everything needed to bind one server: its name, address, certificates, limits and handler.
///
/// # Defaults
/// - handler: the built-in status page ([`crate::handler::StatusHandler`]);
/// - `handshake_timeout` and `max_connections`: the context's;
/// - `tls`: [`TlsPolicy::default`] (TLS 1.2 and 1.3, ALPN `h2`, `http/1.1`, tickets on);
/// - `backlog`: 1024 connections waiting in the kernel to be accepted.
#[derive(Clone)]
pub struct ServerOptions {
    pub(crate) name: String,
    pub(crate) listen: SocketAddr,
    pub(crate) certs: Arc<CertStore>,
    /// `None` means the built-in status handler, which needs the context's registry to build.
    pub(crate) handler: Option<ConnectionHandler>,
    pub(crate) handshake_timeout: Option<Duration>,
    pub(crate) max_connections: Option<usize>,
    pub(crate) max_connections_per_client: Option<usize>,
    pub(crate) request_rate_per_client: Option<RequestRate>,
    pub(crate) tls: TlsPolicy,
    pub(crate) backlog: u32,
    pub(crate) access_log: bool,
    pub(crate) reuse_port: bool,
    pub(crate) http_limits: Option<HttpLimits>,
    pub(crate) status_lists_servers: bool,
    /// Chosen by SNI before the handler above; the first match wins.
    pub(crate) routes: Vec<Route>,
    pub(crate) paths: Vec<PathRule>,
    /// What a config built it from; `None` (built in code) is always applied on a reload.
    pub(crate) inputs: Option<ServerInputs>,
}

/// A digest (SHA-256) of what a server was built from: its config table, the settings around
/// it and the content of every file its validation read. A reload leaves a running server
/// whose inputs are unchanged as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ServerInputs(pub(crate) [u8; 32]);

impl ServerOptions {
    /// A server called `name` (unique in its context) on `listen` (port 0 picks a free port),
    /// presenting `certs`.
    pub fn new(
        name: impl Into<String>,
        listen: SocketAddr,
        certs: impl Into<Arc<CertStore>>,
    ) -> Self {
        Self {
            name: name.into(),
            listen,
            certs: certs.into(),
            handler: None,
            handshake_timeout: None,
            max_connections: None,
            max_connections_per_client: None,
            request_rate_per_client: None,
            tls: TlsPolicy::default(),
            backlog: 1024,
            access_log: false,
            reuse_port: false,
            http_limits: None,
            status_lists_servers: false,
            routes: Vec::new(),
            paths: Vec::new(),
            inputs: None,
        }
    }

    /// What a config built these options from.
    pub(crate) fn inputs(mut self, inputs: ServerInputs) -> Self {
        self.inputs = Some(inputs);
        self
    }

    /// Serves connections with `handler` instead of the status page.
    pub fn handler(mut self, handler: impl Handler) -> Self {
        self.handler = Some(ConnectionHandler::custom(handler));
        self
    }

    /// Serves connections with a handler already made (a named one).
    pub(crate) fn with_handler(mut self, handler: ConnectionHandler) -> Self {
        self.handler = Some(handler);
        self
    }

    /// Relays connections to a plaintext backend (TLS termination, as stunnel does).
    pub fn forward(mut self, options: ForwardOptions) -> Self {
        self.handler = Some(ConnectionHandler::Forward(ForwardHandler::new(options)));
        self
    }

    /// Proxies HTTP requests to backends ([`ProxyHandler`]: nginx's `proxy_pass`).
    pub fn proxy(mut self, options: ProxyOptions) -> Self {
        self.handler = Some(ConnectionHandler::Proxy(ProxyHandler::new(options)));
        self
    }

    /// Serves the status page as `status` has it (response headers, compression, access); the
    /// server's registry is the one it lists.
    pub fn status_page(mut self, status: StatusHandler) -> Self {
        self.handler = Some(ConnectionHandler::Status(status));
        self
    }

    /// Serves the files of a folder ([`StaticHandler`]).
    pub fn static_files(mut self, files: StaticHandler) -> Self {
        self.handler = Some(ConnectionHandler::Static(files));
        self
    }

    /// Answers every request with one fixed response ([`RespondHandler`]).
    pub fn respond(mut self, fixed: RespondHandler) -> Self {
        self.handler = Some(ConnectionHandler::Respond(fixed));
        self
    }

    /// Adds a path rule in front of the server's own handler (after those added before): the
    /// requests whose path it takes get its handler. Path rules need a built-in HTTP handler
    /// (the status page, `static`, `respond`, `proxy`) as the server's own; in front of
    /// another they are left out, with a warning when the server starts.
    pub fn path(mut self, rule: PathRule) -> Self {
        self.paths.push(rule);
        self
    }

    /// Adds a route: connections whose SNI matches its names (and no earlier route's) get its
    /// handler and TLS differences; the others get this server's own handler.
    pub fn route(mut self, route: Route) -> Self {
        self.routes.push(route);
        self
    }

    /// Time allowed from accept to the end of the handshake.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = Some(timeout);
        self
    }

    /// Concurrent connections this server holds at most (at least 1).
    pub fn max_connections(mut self, limit: usize) -> Self {
        self.max_connections = Some(limit.max(1));
        self
    }

    /// Connections one client address may hold on this server at once (at least 1); one more
    /// is closed at accept. None by default.
    pub fn max_connections_per_client(mut self, limit: usize) -> Self {
        self.max_connections_per_client = Some(limit.max(1));
        self
    }

    /// Requests per second one client address may make on this server, with a burst: over
    /// it, an HTTP request gets `429` with `Retry-After` (a `forward` connection is closed at
    /// once). None by default.
    pub fn request_rate_per_client(mut self, rate: RequestRate) -> Self {
        self.request_rate_per_client = Some(rate);
        self
    }

    /// How this server negotiates TLS.
    pub fn tls(mut self, policy: TlsPolicy) -> Self {
        self.tls = policy;
        self
    }

    /// ALPN protocols offered, most preferred first; empty turns ALPN off.
    pub fn alpn<I, S>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tls.alpn = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// Logs one `info` line per connection (target `tlsplex::access`) when it closes.
    pub fn access_log(mut self, on: bool) -> Self {
        self.access_log = on;
        self
    }

    /// Sets `SO_REUSEPORT`, so a new process can bind the same address before this one stops
    /// (zero-downtime upgrades). On stop, connections already queued for this socket are
    /// accepted and served before it closes.
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = on;
        self
    }

    /// Length of the kernel's queue of connections not yet accepted.
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = backlog.max(1);
        self
    }

    /// The timeouts and sizes of HTTP connections, for the built-in HTTP handlers (`status`,
    /// `static`); without it, each keeps its own ([`HttpLimits::default`] unless set on it).
    pub fn http_limits(mut self, limits: HttpLimits) -> Self {
        self.http_limits = Some(limits);
        self
    }

    /// Whether the built-in status page (served when no handler is set) lists every server of
    /// the process. Off by default: it would tell any client what else this process runs.
    pub fn status_lists_servers(mut self, list: bool) -> Self {
        self.status_lists_servers = list;
        self
    }

    /// The server's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address it will bind.
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// Its certificates.
    pub fn certs(&self) -> &Arc<CertStore> {
        &self.certs
    }

    /// Its routes, in order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

impl std::fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerOptions")
            .field("name", &self.name)
            .field("listen", &self.listen)
            .field("certs", &self.certs)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("max_connections", &self.max_connections)
            .field(
                "max_connections_per_client",
                &self.max_connections_per_client,
            )
            .field("request_rate_per_client", &self.request_rate_per_client)
            .field("tls", &self.tls)
            .field("routes", &self.routes)
            .finish_non_exhaustive()
    }
}
