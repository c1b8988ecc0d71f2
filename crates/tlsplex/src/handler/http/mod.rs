//! HTTP over an established TLS connection: HTTP/1.1 or HTTP/2 by ALPN (hyper-util's `auto`),
//! with graceful shutdown when the server stops. Shared by the built-in HTTP handlers, and public
//! as [`HttpHandler`] so an embedder's tower or hyper service (an axum `Router`, say) runs on a
//! tlsplex server with no glue.

mod access;
mod activity;
mod basic_auth;
mod builder;
mod compress;
mod edits;
mod flood;
mod lazy;
mod limits;
mod track;

use std::error::Error as StdError;
use std::sync::Arc;

use bytes::Bytes;
use hyper::body::{Body, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;

pub use access::ClientAccess;
pub(crate) use basic_auth::{unauthorized, Verdict};
pub use basic_auth::{BasicAuth, BasicAuthError, MAX_BCRYPT_COST, MAX_REMEMBERED};
pub(crate) use compress::{compressed, Encoders};
pub use compress::{COMPRESSING_IN_PROCESS, COMPRESSING_PER_CONNECTION};
pub use edits::HeaderEdits;
pub use limits::HttpLimits;
pub(crate) use limits::MIN_HEADER_BYTES;

use super::{ConnInfo, Handler, HandlerError, TlsConn};
use activity::{Activity, Expiry, CLOSE_GRACE};
use lazy::LazyConnection;
use track::{HostRule, TrackedIo, TrackedService};

/// The builder methods of every built-in HTTP handler, over its `http: HttpServer` field:
/// `limits`, `response_headers`, `compress`, `access`.
macro_rules! http_options {
    () => {
        /// The timeouts and sizes this handler's connections are held to.
        pub fn limits(mut self, limits: $crate::handler::HttpLimits) -> Self {
            self.http = self.http.with_limits(limits);
            self
        }

        /// Header edits applied to every response (HSTS, `Cache-Control`, removing a header…).
        pub fn response_headers(mut self, edits: $crate::handler::HeaderEdits) -> Self {
            self.http = self.http.with_response_headers(edits);
            self
        }

        /// Compress responses (gzip, brotli) as each request's `Accept-Encoding` allows.
        pub fn compress(mut self, compress: bool) -> Self {
            self.http = self.http.with_compression(compress);
            self
        }

        /// Answer only the clients `access` admits; others get `403` to every request.
        pub fn access(mut self, access: $crate::handler::ClientAccess) -> Self {
            self.http = self.http.with_access(access);
            self
        }

        /// Answer only requests with a user and password `auth` knows; others get `401`.
        pub fn basic_auth(mut self, auth: $crate::handler::BasicAuth) -> Self {
            self.http = self.http.with_basic_auth(Some(auth));
            self
        }

        /// What a config's handler table says of every answer, applied at once.
        #[allow(dead_code)] // The config's built-in handlers only.
        pub(crate) fn with_policy(self, policy: $crate::handler::http::HttpPolicy) -> Self {
            let this = self
                .response_headers(policy.edits)
                .compress(policy.compress);
            let this = this.access(policy.access);
            match policy.users {
                Some(users) => this.basic_auth(users),
                None => this,
            }
        }

        #[allow(dead_code)] // Path rules dispatch to the built-in handlers only.
        pub(crate) fn http_server(&self) -> &$crate::handler::http::HttpServer {
            &self.http
        }
    };
}
pub(crate) use http_options;

/// What a config's HTTP handler table says of every answer: `response_headers`, `compress` and
/// `access` (with its `basic_auth` users).
#[derive(Debug, Clone, Default)]
pub(crate) struct HttpPolicy {
    pub(crate) edits: HeaderEdits,
    pub(crate) compress: bool,
    pub(crate) access: ClientAccess,
    pub(crate) users: Option<BasicAuth>,
}

/// HTTP/1.1 and HTTP/2 serving under a set of [`HttpLimits`], with the operator's response
/// header edits applied to every answer; built once per handler.
#[derive(Clone)]
pub(crate) struct HttpServer {
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: HttpLimits,
    tunnels: bool,
    /// `None` when there are none, so a response costs nothing for them.
    response_headers: Option<Arc<HeaderEdits>>,
    /// Responses compressed by `Accept-Encoding` (`compress`).
    compress: bool,
    /// `None`: every client is answered.
    access: Option<Arc<ClientAccess>>,
    /// `None`: no user and password asked for.
    basic_auth: Option<BasicAuth>,
}

impl HttpServer {
    pub(crate) fn new(limits: HttpLimits) -> Self {
        Self::build(limits, false)
    }

    /// As [`HttpServer::new`], and HTTP/2 clients may open tunnels (RFC 8441 extended
    /// CONNECT: WebSockets over HTTP/2).
    pub(crate) fn tunnelling(limits: HttpLimits) -> Self {
        Self::build(limits, true)
    }

    fn build(limits: HttpLimits, tunnels: bool) -> Self {
        Self {
            builder: builder::shared(&limits, tunnels),
            limits,
            tunnels,
            response_headers: None,
            compress: false,
            access: None,
            basic_auth: None,
        }
    }

    /// The same, under `limits`.
    pub(crate) fn with_limits(&self, limits: HttpLimits) -> Self {
        Self {
            response_headers: self.response_headers.clone(),
            compress: self.compress,
            access: self.access.clone(),
            basic_auth: self.basic_auth.clone(),
            ..Self::build(limits, self.tunnels)
        }
    }

    /// The same, answering only the clients `access` admits (others get 403).
    pub(crate) fn with_access(mut self, access: ClientAccess) -> Self {
        self.access = (!access.is_open()).then(|| Arc::new(access));
        self
    }

    /// The same, asking for a user and password `auth` knows (`401` otherwise).
    pub(crate) fn with_basic_auth(mut self, auth: Option<BasicAuth>) -> Self {
        self.basic_auth = auth;
        self
    }

    /// The same, compressing responses (gzip, brotli) when `compress` (`compress.rs`).
    pub(crate) fn with_compression(mut self, compress: bool) -> Self {
        self.compress = compress;
        self
    }

    /// The same, with `edits` applied to every response (`response_headers`).
    pub(crate) fn with_response_headers(mut self, edits: HeaderEdits) -> Self {
        self.response_headers = (!edits.is_empty()).then(|| Arc::new(edits));
        self
    }

    /// Whether a client at `addr` is answered (`access`).
    pub(crate) fn admits(&self, addr: std::net::IpAddr) -> bool {
        self.access
            .as_ref()
            .is_none_or(|access| access.admits(addr))
    }

    /// Whether responses are compressed (`compress`).
    pub(crate) fn compresses(&self) -> bool {
        self.compress
    }

    /// The users asked for, if any (`basic_auth`).
    pub(crate) fn basic_auth(&self) -> Option<&BasicAuth> {
        self.basic_auth.as_ref()
    }

    /// The operator's edits to every response, if any (`response_headers`).
    pub(crate) fn response_edits(&self) -> Option<&Arc<HeaderEdits>> {
        self.response_headers.as_ref()
    }

    /// Serves HTTP on `conn` with `service` until the client is done or a limit runs out; once
    /// the server stops, the request in flight finishes (or, on a fresh connection, the first
    /// request gets a moment to arrive) and the connection closes.
    pub(crate) async fn serve<S, B>(&self, conn: TlsConn, service: S) -> Result<(), HandlerError>
    where
        S: hyper::service::Service<Request<Incoming>, Response = Response<B>>
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn StdError + Send + Sync>>,
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn StdError + Send + Sync>> + Send,
    {
        // Boxed: a connection that neither compresses nor authenticates keeps a future the
        // size it had.
        use basic_auth::Authenticated;
        use compress::Compressed;
        match (self.compress, self.basic_auth.clone()) {
            (false, None) => self.serve_with(conn, service).await,
            (true, None) => Box::pin(self.serve_with(conn, Compressed::new(service))).await,
            (false, Some(auth)) => {
                Box::pin(self.serve_with(conn, Authenticated::new(service, auth))).await
            }
            (true, Some(auth)) => {
                let service = Compressed::new(Authenticated::new(service, auth));
                Box::pin(self.serve_with(conn, service)).await
            }
        }
    }

    async fn serve_with<S, B>(&self, conn: TlsConn, service: S) -> Result<(), HandlerError>
    where
        S: hyper::service::Service<Request<Incoming>, Response = Response<B>>
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn StdError + Send + Sync>>,
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        let TlsConn {
            stream,
            shutdown,
            info,
            strict_sni_host,
            metrics,
            request_rate,
            ..
        } = conn;
        let hosts = if strict_sni_host {
            HostRule::Sni(info.sni.clone())
        } else {
            HostRule::Any
        };
        let activity = Arc::new(Activity::new(self.limits.max_buffered_response_bytes));
        let service = TrackedService {
            inner: service,
            activity: activity.clone(),
            max_headers: self.limits.max_request_headers,
            hosts,
            metrics,
            route: info.route.clone(),
            response_headers: self.response_headers.clone(),
            forbidden: !self.admits(info.peer_addr.ip()),
            rate: request_rate.map(|rate| (rate, info.peer_addr.ip())),
        };
        let io = TokioIo::new(TrackedIo::new(stream, activity.clone()));
        let mut connection = LazyConnection::new(&self.builder, io, service);
        // The watchdog looks at least every `shortest` (see activity.rs: no deadline can appear
        // sooner than that after the event that makes it), and at the soonest deadline.
        let shortest = self.limits.shortest_timeout();
        let watchdog = tokio::time::sleep(shortest);
        tokio::pin!(watchdog);
        let expired = loop {
            tokio::select! {
                served = connection.finish() => return served,
                () = shutdown.cancelled() => break None,
                () = watchdog.as_mut() => {
                    let now = tokio::time::Instant::now();
                    match activity.deadline(&self.limits) {
                        Some((at, expiry)) if at <= now => break Some(expiry),
                        Some((at, _)) => watchdog.as_mut().reset(at.min(now + shortest)),
                        None => watchdog.as_mut().reset(now + shortest),
                    }
                }
            }
        };
        let Some(expiry) = expired else {
            // The server stopped: a connection that has had no request yet gets a moment for
            // its first one; then it closes gracefully once its requests are done.
            if !activity.has_requested() {
                tokio::select! {
                    served = connection.finish() => return served,
                    () = tokio::time::sleep(FIRST_REQUEST_GRACE) => {}
                }
            }
            connection.graceful_shutdown();
            return connection.finish().await;
        };
        tracing::debug!(timeout = expiry.setting(), "closing the connection");
        if !expiry.graceful() {
            return Err(timed_out(expiry));
        }
        connection.graceful_shutdown();
        match tokio::time::timeout(CLOSE_GRACE, connection.finish()).await {
            Ok(served) => served.map_err(|_| timed_out(expiry)),
            Err(_) => Err(timed_out(expiry)),
        }
    }
}

fn timed_out(expiry: Expiry) -> HandlerError {
    format!("closed: {} ran out", expiry.setting()).into()
}

/// How long a connection that has sent no request yet may still send its first one after its
/// server stopped: it was accepted, so closing it at once would fail a client that did nothing
/// wrong (this is what loses requests during an upgrade).
const FIRST_REQUEST_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Serves a tower `Service` (an axum `Router`, a `tower::ServiceBuilder` stack…) on each
/// connection, over HTTP/1.1 or HTTP/2 as ALPN decided. Each request carries the connection's
/// `Arc<ConnInfo>` in its extensions.
///
/// ```no_run
/// use std::sync::Arc;
/// use axum::{extract::Extension, routing::get, Router};
/// use tlsplex::{ConnInfo, ServerOptions};
/// use tlsplex::handler::HttpHandler;
///
/// let app = Router::new().route(
///     "/",
///     get(|Extension(info): Extension<Arc<ConnInfo>>| async move {
///         format!("hello over {}", info.tls_version)
///     }),
/// );
/// # let identity = tlsplex::Identity::from_pem_files("c.pem".as_ref(), "k.pem".as_ref()).unwrap();
/// # let certs = Arc::new(tlsplex::CertStore::single(identity));
/// let options = ServerOptions::new("app", ([127, 0, 0, 1], 8443).into(), certs)
///     .handler(HttpHandler::new(app));
/// ```
#[derive(Clone)]
pub struct HttpHandler<S> {
    service: S,
    http: HttpServer,
}

impl<S> HttpHandler<S> {
    /// A handler serving `service` on every connection, with the default [`HttpLimits`].
    pub fn new(service: S) -> Self {
        Self {
            service,
            http: HttpServer::new(HttpLimits::default()),
        }
    }

    http_options!();
}

impl<S, B> Handler for HttpHandler<S>
where
    S: tower_service::Service<Request<Incoming>, Response = Response<B>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>> + Send,
{
    async fn serve(&self, conn: TlsConn) -> Result<(), HandlerError> {
        let info = conn.info.clone();
        let with_info = WithConnInfo {
            inner: self.service.clone(),
            info,
        };
        self.http
            .serve(conn, TowerToHyperService::new(with_info))
            .await
    }
}

/// Puts the connection's `Arc<ConnInfo>` into every request's extensions.
#[derive(Clone)]
struct WithConnInfo<S> {
    inner: S,
    info: Arc<ConnInfo>,
}

impl<S, B> tower_service::Service<Request<B>> for WithConnInfo<S>
where
    S: tower_service::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        request.extensions_mut().insert(self.info.clone());
        self.inner.call(request)
    }
}
