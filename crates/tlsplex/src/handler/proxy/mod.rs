//! The `proxy` handler: an HTTP reverse proxy (nginx's `proxy_pass`, Caddy's `reverse_proxy`,
//! HAProxy's `mode http`), where `forward` is a byte relay.
//!
//! Clients speak HTTP/1.1 or HTTP/2 (by ALPN, as every HTTP handler here); each request goes to
//! a backend of the handler's pool over HTTP/1.1 (or HTTP/2 with `backend_protocol = "h2"`) on
//! a kept-alive connection (`connector.rs`), with hop-by-hop headers removed and the forwarded
//! headers set by tlsplex (`headers.rs`). Bodies stream both ways under the connection's HTTP
//! limits. A backend that cannot be reached is a `502` (`503` when the active check has every
//! backend down), a response head that does not come within `response_header_timeout` a `504`.
//! Each request carries an `X-Request-Id` (the client's, or a new one) and is logged once its
//! response is done (`log.rs`). An HTTP/1.1 upgrade (WebSocket) the backend accepts with `101`
//! becomes a tunnel, copied both ways under the pool's `idle_timeout` (`tunnel.rs`); an HTTP/2
//! client's WebSocket (RFC 8441 extended CONNECT) reaches the HTTP/1.1 backend as such an
//! upgrade.

mod connector;
mod headers;
mod log;
mod trust;
mod tunnel;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

pub use trust::{Cidr, TrustedProxies};

use super::forward::{ForwardOptions, Pooled};
use super::http::{BasicAuth, ClientAccess, HeaderEdits, HttpLimits, HttpServer};
use super::{ConnInfo, Handler, HandlerError, TlsConn};
use crate::upstream::pool::{BackendPool, BackendStats, PoolOrigin};
use connector::{BackendName, PoolConnector, Unreachable};
use log::RequestLog;
use tunnel::Tunnel;
pub(crate) use tunnel::TunnelSlot;

/// Idle backend connections kept per handler, by default. Above the concurrency a backend
/// usually sees: a cap below it closes connections only to open new ones (measured: with 64
/// clients at once and 32 kept, one request in six opened a backend connection, and cost 12 %
/// more CPU than with 256). Only connections that were once in use at the same time are kept.
const DEFAULT_KEEPALIVE: usize = 256;

/// The most a backend connection buffers (HTTP/1.1 read buffer, HTTP/2 stream window).
const BACKEND_BUFFER: usize = 64 * 1024;

/// The body of a proxied request or response: the client's or the backend's, or one of the
/// proxy's own error pages.
pub(crate) type ProxyBody = BoxBody<Bytes, BodyError>;

/// Why a body ended early: the peer's connection failed, or a request body passed its limit.
/// A type of its own, not a boxed `dyn Error`: rustc cannot prove a boxed error's conversions
/// `Send` for every lifetime inside the connection's future (rust-lang/rust#102211).
#[derive(Debug)]
pub(crate) struct BodyError(HandlerError);

impl BodyError {
    pub(crate) fn new(error: impl Into<HandlerError>) -> Self {
        Self(error.into())
    }
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for BodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// What a backend speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendProtocol {
    /// HTTP/1.1 (the default, as nginx's `proxy_pass`).
    #[default]
    Http1,
    /// HTTP/2 with prior knowledge (h2c, or over `backend_tls`).
    H2,
}

/// How a `proxy` handler reaches its backends and what it tells them.
///
/// # Defaults
/// The pool's as in [`ForwardOptions`] (round robin, 5 s to connect); HTTP/1.1 to the backends;
/// `response_header_timeout` 60 s (nginx's `proxy_read_timeout`); up to 256 idle backend
/// connections kept for 60 s; no trusted proxies; no `Forwarded`; no header edits; no request
/// body limit (bodies stream, nothing is buffered whole).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProxyOptions {
    /// The backends, their balance, health check, connect timeout and `backend_tls`.
    pub upstream: ForwardOptions,
    /// What the backends speak.
    pub backend_protocol: BackendProtocol,
    /// Time from sending a request to the backend's response head: `504` beyond it.
    pub response_header_timeout: Duration,
    /// Idle backend connections kept for reuse, at most.
    pub keepalive: usize,
    /// How long an idle backend connection is kept.
    pub keepalive_timeout: Duration,
    /// Clients whose `X-Forwarded-*` and `Forwarded` headers are passed on (extended).
    pub trusted_proxies: TrustedProxies,
    /// Add RFC 7239 `Forwarded` besides the `X-Forwarded-*` headers.
    pub forwarded: bool,
    /// Edits to requests, after tlsplex's own headers.
    pub request_headers: HeaderEdits,
    /// Edits to responses.
    pub response_headers: HeaderEdits,
    /// Largest request body, in bytes: `413` beyond it.
    pub max_request_body: Option<u64>,
    /// Pass the client's certificate (mutual TLS) on as RFC 9440 `Client-Cert` and
    /// `Client-Cert-Chain`. Whatever the client sent under those names is dropped either way.
    pub client_cert: bool,
    /// Compress responses (gzip, brotli) as each request's `Accept-Encoding` allows, unless the
    /// backend already did.
    pub compress: bool,
    /// The client addresses answered (others get 403 and reach no backend).
    pub access: ClientAccess,
    /// The users answered (others get 401 and reach no backend).
    pub basic_auth: Option<BasicAuth>,
}

impl ProxyOptions {
    /// Proxy to `upstream`'s backends with the defaults.
    pub fn new(upstream: ForwardOptions) -> Self {
        Self {
            upstream,
            backend_protocol: BackendProtocol::default(),
            response_header_timeout: Duration::from_secs(60),
            keepalive: DEFAULT_KEEPALIVE,
            keepalive_timeout: Duration::from_secs(60),
            trusted_proxies: TrustedProxies::default(),
            forwarded: false,
            compress: false,
            access: ClientAccess::default(),
            basic_auth: None,
            request_headers: HeaderEdits::default(),
            response_headers: HeaderEdits::default(),
            max_request_body: None,
            client_cert: false,
        }
    }
}

/// Proxies each HTTP request to a backend; see the module docs.
#[derive(Clone)]
pub struct ProxyHandler {
    inner: Arc<Inner>,
    http: HttpServer,
}

struct Inner {
    options: ProxyOptions,
    pooled: Pooled,
    client: Client<PoolConnector, ProxyBody>,
}

impl ProxyHandler {
    /// A proxy to `options.upstream`'s backends (a server gives each handler it runs a pool of
    /// its own, named after the route or the server).
    pub fn new(options: ProxyOptions) -> Self {
        let pooled = Pooled::new(options.upstream.clone(), true);
        let http = HttpServer::tunnelling(HttpLimits::default())
            .with_response_headers(options.response_headers.clone())
            .with_compression(options.compress)
            .with_access(options.access.clone())
            .with_basic_auth(options.basic_auth.clone());
        Self::with_pool(options, pooled, http)
    }

    fn with_pool(options: ProxyOptions, pooled: Pooled, http: HttpServer) -> Self {
        let connector = PoolConnector {
            pool: pooled.pool.clone(),
            connect_timeout: options.upstream.connect_timeout,
            h2: options.backend_protocol == BackendProtocol::H2,
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(options.keepalive_timeout)
            .pool_max_idle_per_host(options.keepalive)
            .http2_only(options.backend_protocol == BackendProtocol::H2)
            // What a backend connection may buffer: its response head at most (a larger one
            // is a 502), and what a client that reads nothing leaves unread (hyper's default,
            // ~400 KiB, cost that much per such client: measured 1 MiB per connection).
            .http1_max_buf_size(BACKEND_BUFFER)
            .http2_initial_stream_window_size(u32::try_from(BACKEND_BUFFER).ok())
            // The client's own Host goes through (or the operator's edit).
            .set_host(false)
            .build(connector);
        Self {
            inner: Arc::new(Inner {
                options,
                pooled,
                client,
            }),
            http,
        }
    }

    /// The timeouts and sizes this handler's client connections are held to.
    pub fn limits(self, limits: HttpLimits) -> Self {
        Self {
            inner: self.inner,
            http: self.http.with_limits(limits),
        }
    }

    /// The same handler with a pool (and so idle connections) of its own called `name`.
    pub(crate) fn renamed(&self, name: &str, origin: PoolOrigin<'_>) -> Self {
        let pooled = self.inner.pooled.renamed(name, origin);
        Self::with_pool(self.inner.options.clone(), pooled, self.http.clone())
    }

    pub(crate) fn pool(&self) -> &Arc<BackendPool> {
        &self.inner.pooled.pool
    }

    /// Each backend's figures.
    pub fn backend_stats(&self) -> Vec<BackendStats> {
        self.inner.pooled.pool.stats()
    }
}

impl ProxyHandler {
    pub(crate) fn http_server(&self) -> &HttpServer {
        &self.http
    }

    /// What answers `conn`'s requests (an upgrade's tunnel goes to `tunnels`).
    fn exchanges(&self, conn: &TlsConn, tunnels: &TunnelSlot) -> Exchanges {
        let certificate = if self.inner.options.client_cert {
            headers::ClientCert::of(conn.stream.get_ref().1.peer_certificates())
        } else {
            None
        };
        Exchanges {
            inner: self.inner.clone(),
            info: conn.info.clone(),
            certificate: certificate.map(Arc::new),
            tunnels: tunnels.clone(),
            access_log: conn.access_log,
        }
    }

    /// Its answers to `conn`'s requests, for path rules.
    pub(crate) fn answering(
        &self,
        conn: &TlsConn,
        tunnels: &TunnelSlot,
    ) -> super::paths::Answering {
        let exchanges = self.exchanges(conn, tunnels);
        Arc::new(move |request| {
            Box::pin(exchanges.answer(request, |response| response.map(BodyExt::boxed_unsync)))
        })
    }
}

impl Handler for ProxyHandler {
    async fn serve(&self, conn: TlsConn) -> Result<(), HandlerError> {
        let slot = TunnelSlot::default();
        let exchanges = self.exchanges(&conn, &slot);
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            exchanges.answer(request, Ok::<_, std::convert::Infallible>)
        });
        // Boxed: an upgraded connection lives on as its tunnel, which would otherwise keep the
        // finished HTTP state's size beside its own (this future: 928 -> 176 bytes).
        Box::pin(self.http.serve(conn, service)).await?;
        slot.finish().await
    }
}

/// What the requests of one connection share.
struct Exchanges {
    inner: Arc<Inner>,
    info: Arc<ConnInfo>,
    /// The client's certificate headers, when they are passed on.
    certificate: Option<Arc<headers::ClientCert>>,
    tunnels: TunnelSlot,
    access_log: bool,
}

impl Exchanges {
    /// The answer to `request`, as `then` makes it of the response. `then` runs inside the
    /// answer's own future: awaited by another `async` block, that future would be held twice
    /// (as the block's capture and as what it polls: 4,264 bytes a request in flight, moved
    /// into hyper's slot for it, instead of 2,128).
    fn answer<R>(
        &self,
        request: Request<Incoming>,
        then: impl FnOnce(Response<ProxyBody>) -> R + Send + 'static,
    ) -> impl std::future::Future<Output = R> + Send + 'static {
        let (inner, info, tunnels) = (self.inner.clone(), self.info.clone(), self.tunnels.clone());
        let (certificate, access_log) = (self.certificate.clone(), self.access_log);
        async move {
            let exchange = Exchange {
                info: &info,
                certificate: certificate.as_deref(),
                tunnels: &tunnels,
                access_log,
            };
            then(inner.proxy(&exchange, request).await)
        }
    }
}

/// What one request on a connection carries besides itself.
struct Exchange<'c> {
    info: &'c Arc<ConnInfo>,
    /// The client's certificate headers, when they are passed on.
    certificate: Option<&'c headers::ClientCert>,
    /// Where an upgrade's tunnel waits for the connection's task.
    tunnels: &'c TunnelSlot,
    /// The server's `access_log`: one event per request.
    access_log: bool,
}

/// Why the proxy answered itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// No `Host` (HTTP/1.1 already gets 400 from the HTTP layer; this is HTTP/1.0).
    NoHost,
    BodyTooLarge,
    /// No backend could be reached, or one broke the protocol.
    BadGateway,
    /// The active check has every backend down.
    Unavailable,
    /// The response head did not come in time.
    Timeout,
    /// A WebSocket over HTTP/2 for an HTTP/2 backend.
    NotImplemented,
}

impl Failure {
    fn status(self) -> StatusCode {
        match self {
            Self::NoHost => StatusCode::BAD_REQUEST,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BadGateway => StatusCode::BAD_GATEWAY,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::NotImplemented => StatusCode::NOT_IMPLEMENTED,
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::NoHost => "400 Bad Request: the request names no host\n",
            Self::BodyTooLarge => "413 Content Too Large\n",
            Self::BadGateway => {
                "502 Bad Gateway: the backend could not be reached or did not answer in HTTP\n"
            }
            Self::Unavailable => "503 Service Unavailable: every backend is down\n",
            Self::Timeout => "504 Gateway Timeout: the backend did not answer in time\n",
            Self::NotImplemented => {
                "501 Not Implemented: WebSockets over HTTP/2 need an HTTP/1.1 backend\n"
            }
        }
    }

    fn response(self) -> Response<ProxyBody> {
        let mut response = Response::new(
            Full::new(Bytes::from_static(self.message().as_bytes()))
                .map_err(|never| match never {})
                .boxed(),
        );
        *response.status_mut() = self.status();
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    }
}

impl Inner {
    async fn proxy(
        &self,
        exchange: &Exchange<'_>,
        request: Request<Incoming>,
    ) -> Response<ProxyBody> {
        // Only a server with `access_log` pays for the record (measured: the event per request
        // was a third of the proxy's CPU per keep-alive request).
        let mut log = exchange.access_log.then(|| RequestLog {
            started: Instant::now(),
            info: exchange.info.clone(),
            version: request.version(),
            method: request.method().clone(),
            target: request
                .uri()
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
            request_id: None,
            received: Arc::default(),
        });
        let (response, backend) = match self.send(exchange, request, log.as_mut()).await {
            Ok((response, tunnel)) => {
                if let Some(tunnel) = tunnel {
                    exchange
                        .tunnels
                        .start(tunnel, self.options.upstream.idle_timeout);
                }
                let backend = response.extensions().get::<BackendName>().cloned();
                (response, backend)
            }
            Err(failure) => (failure.response(), None),
        };
        let Some(log) = log else {
            return response;
        };
        let (parts, body) = response.into_parts();
        let body = log.finish_with(parts.status, backend.map(|b| b.0), body);
        Response::from_parts(parts, body)
    }

    /// The backend's response, headers edited (and the tunnel, when it accepted an upgrade),
    /// or why there is none.
    async fn send(
        &self,
        exchange: &Exchange<'_>,
        mut request: Request<Incoming>,
        mut log: Option<&mut RequestLog>,
    ) -> Result<(Response<ProxyBody>, Option<Tunnel>), Failure> {
        let options = &self.options;
        let upgrade =
            request.version() == Version::HTTP_11 && headers::wants_upgrade(request.headers());
        // RFC 8441: a WebSocket over HTTP/2 is an extended CONNECT; HTTP/1.1 backends get it
        // as an Upgrade.
        let websocket_h2 = request.method() == Method::CONNECT
            && request
                .extensions()
                .get::<hyper::ext::Protocol>()
                .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"));
        if websocket_h2 && options.backend_protocol == BackendProtocol::H2 {
            return Err(Failure::NotImplemented);
        }
        let client_side = (upgrade || websocket_h2).then(|| hyper::upgrade::on(&mut request));
        let (mut parts, body) = request.into_parts();
        // The host as the client wrote it, port included (Caddy's X-Forwarded-Host), once it
        // is known to be well formed.
        crate::host::request_host(&parts.uri, &parts.headers).ok_or(Failure::NoHost)?;
        let host = match parts.uri.authority() {
            Some(authority) => authority.as_str().to_owned(),
            None => parts
                .headers
                .get(hyper::header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
        };
        let declared = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let (Some(max), Some(length)) = (options.max_request_body, declared) {
            if length > max {
                return Err(Failure::BodyTooLarge);
            }
        }
        let info = exchange.info;
        let origin = headers::Origin {
            client: info.peer_addr.ip(),
            host: &host,
            rfc7239: options.forwarded,
        };
        headers::to_backend(
            &mut parts.headers,
            &origin,
            &options.trusted_proxies,
            upgrade,
        );
        if websocket_h2 {
            parts.method = Method::GET;
            parts.extensions.remove::<hyper::ext::Protocol>();
            headers::websocket_upgrade(&mut parts.headers);
        }
        if let Some(certificate) = exchange.certificate {
            certificate.set(&mut parts.headers);
        }
        let request_id = log::request_id(&mut parts.headers);
        if let Some(log) = log.as_deref_mut() {
            log.request_id = Some(request_id);
        }
        options.request_headers.apply(&mut parts.headers);
        let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        parts.uri =
            Uri::try_from(format!("http://upstream{target}")).map_err(|_| Failure::NoHost)?;
        parts.version = match options.backend_protocol {
            BackendProtocol::Http1 => Version::HTTP_11,
            BackendProtocol::H2 => Version::HTTP_2,
        };
        let mut body = upstream_body(body, options.max_request_body);
        if let Some(log) = log {
            body = log.count_request(body);
        }
        let sent_at = Instant::now();
        let sent = self.client.request(Request::from_parts(parts, body));
        let mut response = match tokio::time::timeout(options.response_header_timeout, sent).await {
            Err(_) => return Err(Failure::Timeout),
            Ok(Err(error)) => return Err(self.failure(info, &error)),
            Ok(Ok(response)) => response,
        };
        if let Some(BackendName(_, times)) = response.extensions().get::<BackendName>() {
            times.observe(sent_at.elapsed().as_secs_f64());
        }
        let tunnel = match client_side {
            Some(client) if response.status() == StatusCode::SWITCHING_PROTOCOLS => {
                let backend = hyper::upgrade::on(&mut response);
                if websocket_h2 {
                    // The HTTP/2 client's answer: 200 on its stream, no handshake headers.
                    *response.status_mut() = StatusCode::OK;
                    response.headers_mut().remove("sec-websocket-accept");
                }
                Some(Tunnel::new(client, backend, websocket_h2))
            }
            _ => None,
        };
        let upgraded = tunnel.is_some() && !websocket_h2;
        let response = downstream(response, upgraded);
        Ok((response, tunnel))
    }

    /// What a failed exchange with the backends means for the client, logged as the pool logs
    /// unreachable backends (at most every 5 s) or at debug.
    fn failure(&self, info: &ConnInfo, error: &hyper_util::client::legacy::Error) -> Failure {
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            if let Some(Unreachable(exhausted)) = cause.downcast_ref::<Unreachable>() {
                self.pooled.pool.log_exhausted(&info.server, exhausted);
                return if exhausted.tried.is_empty() {
                    Failure::Unavailable
                } else {
                    Failure::BadGateway
                };
            }
            source = cause.source();
        }
        tracing::debug!(server = %info.server, %error, "the backend's answer was not HTTP");
        Failure::BadGateway
    }
}

/// The request body toward the backend: streamed, cut at `max` bytes when set.
fn upstream_body(body: Incoming, max: Option<u64>) -> ProxyBody {
    match max {
        Some(max) => Limited::new(body, usize::try_from(max).unwrap_or(usize::MAX))
            .map_err(BodyError)
            .boxed(),
        None => body.map_err(boxed_error).boxed(),
    }
}

/// The backend's response toward the client: hop-by-hop headers gone (but an accepted
/// upgrade's). The operator's `response_headers` are applied by the HTTP layer, to tlsplex's
/// own answers (502, 504…) as well.
fn downstream(response: Response<Incoming>, upgraded: bool) -> Response<ProxyBody> {
    let (mut parts, body) = response.into_parts();
    headers::remove_hop_by_hop(&mut parts.headers, upgraded);
    Response::from_parts(parts, body.map_err(boxed_error).boxed())
}

fn boxed_error(error: hyper::Error) -> BodyError {
    BodyError(Box::new(error))
}
