//! What happens after the handshake: the seed's `startHttpsThread`.
//!
//! A server hands each established TLS connection to its handler as a [`TlsConn`]. The built-in
//! [`StatusHandler`] serves a page about the connection; embedders implement [`Handler`].

mod forward;
mod http;
mod named;
mod passthrough;
mod paths;
mod proxy;
mod proxy_protocol;
mod relay;
mod respond;
mod static_files;
mod status;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use crate::conn::{ConnInfo, TlsConn};
pub use forward::{ForwardHandler, ForwardOptions, DEFAULT_FORWARD_IDLE_TIMEOUT};
pub use http::{
    BasicAuth, BasicAuthError, ClientAccess, HeaderEdits, HttpHandler, HttpLimits,
    COMPRESSING_IN_PROCESS, COMPRESSING_PER_CONNECTION, MAX_BCRYPT_COST, MAX_REMEMBERED,
};
pub(crate) use http::{HttpPolicy, MIN_HEADER_BYTES};
pub use named::NamedHandlers;
pub use passthrough::PassthroughHandler;
pub(crate) use passthrough::PassthroughPeers;
pub use paths::{PathMatch, PathMatchError, PathRule};
pub(crate) use paths::{PathsHandler, StrippedPrefix};
// The upstream layer's types, where a handler's options name them.
pub(crate) use crate::upstream::pool::{BackendPool, PoolOrigin};
pub use crate::upstream::{
    Backend, BackendHealth, BackendStats, BackendTls, BackendTlsError, Balance, ExpectedStatus,
    HealthCheck, HttpProbe, PASSIVE_DOWN_TIME,
};
pub use proxy::{BackendProtocol, Cidr, ProxyHandler, ProxyOptions, TrustedProxies};
pub use proxy_protocol::ProxyProtocol;
pub use respond::{RespondError, RespondHandler, MAX_RESPOND_BODY};
pub use static_files::{FileCacheOptions, StaticHandler, MAX_ERROR_PAGE, MAX_LISTED};
pub use status::StatusHandler;

/// What a handler may fail with; the server logs it (at debug) with the connection's span.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// Serves one established TLS connection.
///
/// The future runs in the connection's own task. It should return when the peer is done, and
/// finish promptly once [`TlsConn::shutdown`] is cancelled (its server is stopping): the server
/// waits for it during its drain, up to the context's `shutdown_grace`, then drops it.
///
/// ```
/// use tlsplex::{Handler, HandlerError, TlsConn};
/// use tokio::io::AsyncWriteExt;
///
/// /// Greets the client by the name it asked for, then closes.
/// struct Hello;
///
/// impl Handler for Hello {
///     async fn serve(&self, mut conn: TlsConn) -> Result<(), HandlerError> {
///         let name = conn.info.sni.clone().unwrap_or_default();
///         conn.stream.write_all(format!("hello {name}\n").as_bytes()).await?;
///         conn.stream.shutdown().await?;
///         Ok(())
///     }
/// }
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Serves `conn` until the peer is done or the server stops.
    fn serve(&self, conn: TlsConn) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

type BoxedServe<'a> = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send + 'a>>;

/// A [`Handler`] behind a pointer, so servers can hold any of them.
pub(crate) trait DynHandler: Send + Sync {
    fn serve_boxed(&self, conn: TlsConn) -> BoxedServe<'_>;
}

impl<H: Handler> DynHandler for H {
    fn serve_boxed(&self, conn: TlsConn) -> BoxedServe<'_> {
        Box::pin(self.serve(conn))
    }
}

/// The handler a server runs: a built-in one (dispatched statically) or the embedder's own.
#[derive(Clone)]
pub(crate) enum ConnectionHandler {
    Status(StatusHandler),
    Forward(ForwardHandler),
    Proxy(ProxyHandler),
    Static(StaticHandler),
    Respond(RespondHandler),
    /// Path rules in front of one of the above.
    Paths(PathsHandler),
    Custom(Arc<dyn DynHandler>),
}

impl ConnectionHandler {
    pub(crate) fn custom(handler: impl Handler) -> Self {
        Self::Custom(Arc::new(handler))
    }

    /// Serves `conn`. Each handler's future is boxed, once: inline, every connection task would
    /// reserve room for the largest built-in's future (forward holds the whole TLS stream:
    /// measured 12.7 KiB per task), whatever its own handler needs.
    pub(crate) fn serve(&self, conn: TlsConn) -> BoxedServe<'_> {
        match self {
            Self::Status(status) => Box::pin(status.serve(conn)),
            Self::Forward(forward) => Box::pin(forward.serve(conn)),
            Self::Proxy(proxy) => Box::pin(proxy.serve(conn)),
            Self::Static(files) => Box::pin(files.serve(conn)),
            Self::Respond(fixed) => Box::pin(fixed.serve(conn)),
            Self::Paths(paths) => Box::pin(paths.serve(conn)),
            Self::Custom(custom) => custom.serve_boxed(conn),
        }
    }

    /// The HTTP serving of a built-in HTTP handler that answers requests one by one (what path
    /// rules can dispatch to); `None` for the others.
    pub(crate) fn http(&self) -> Option<&http::HttpServer> {
        match self {
            Self::Status(status) => Some(status.http_server()),
            Self::Proxy(proxy) => Some(proxy.http_server()),
            Self::Static(files) => Some(files.http_server()),
            Self::Respond(fixed) => Some(fixed.http_server()),
            Self::Forward(_) | Self::Paths(_) | Self::Custom(_) => None,
        }
    }

    /// What answers `conn`'s requests one by one, for path rules (an upgrade's tunnel goes to
    /// `tunnels`); `None` where [`ConnectionHandler::http`] is.
    pub(crate) fn answering(
        &self,
        conn: &TlsConn,
        tunnels: &proxy::TunnelSlot,
    ) -> Option<paths::Answering> {
        match self {
            Self::Status(status) => Some(status.answering(conn)),
            Self::Proxy(proxy) => Some(proxy.answering(conn, tunnels)),
            Self::Static(files) => Some(files.answering()),
            Self::Respond(fixed) => Some(fixed.answering()),
            Self::Forward(_) | Self::Paths(_) | Self::Custom(_) => None,
        }
    }

    /// The backend pools it relays to (its own, or its path rules').
    pub(crate) fn pools(&self) -> Vec<&Arc<BackendPool>> {
        match self {
            Self::Forward(forward) => vec![forward.pool()],
            Self::Proxy(proxy) => vec![proxy.pool()],
            Self::Paths(paths) => paths.handlers().flat_map(Self::pools).collect(),
            _ => Vec::new(),
        }
    }
}
