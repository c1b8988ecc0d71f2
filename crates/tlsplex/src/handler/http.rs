//! HTTP over an established TLS connection: HTTP/1.1 or HTTP/2 by ALPN (hyper-util's `auto`),
//! with graceful shutdown when the server stops. Shared by the built-in HTTP handlers, and public
//! as [`HttpHandler`] so an embedder's tower or hyper service (an axum `Router`, say) runs on a
//! tlsplex server with no glue.

use std::error::Error as StdError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use hyper::body::{Body, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;

use super::{ConnInfo, Handler, HandlerError, TlsConn};

/// An HTTP/1.1 + HTTP/2 connection builder with timers (for hyper's header-read timeout).
pub(crate) fn builder() -> Arc<auto::Builder<TokioExecutor>> {
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1().timer(TokioTimer::new());
    http.http2().timer(TokioTimer::new());
    Arc::new(http)
}

/// How long a connection that has sent no request yet may still send its first one after its
/// server stopped: it was accepted, so closing it at once would fail a client that did nothing
/// wrong (this is what loses requests during an upgrade).
const FIRST_REQUEST_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Serves HTTP on `conn` with `service` until the client is done; once the server stops, the
/// request in flight finishes (or, on a fresh connection, the first request gets a moment to
/// arrive) and the connection closes.
pub(crate) async fn serve<S, B>(
    http: &auto::Builder<TokioExecutor>,
    conn: TlsConn,
    service: S,
) -> Result<(), HandlerError>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + Sync,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let TlsConn {
        stream, shutdown, ..
    } = conn;
    let first_request = Arc::new(AtomicBool::new(false));
    let service = NoteFirstRequest {
        inner: service,
        seen: first_request.clone(),
    };
    let connection = http.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        served = connection.as_mut() => return served,
        () = shutdown.cancelled() => {}
    }
    if !first_request.load(Ordering::Relaxed) {
        tokio::select! {
            served = connection.as_mut() => return served,
            () = tokio::time::sleep(FIRST_REQUEST_GRACE) => {}
        }
    }
    connection.as_mut().graceful_shutdown();
    connection.await
}

/// Notes that a connection has received a request.
struct NoteFirstRequest<S> {
    inner: S,
    seen: Arc<AtomicBool>,
}

impl<S, R> hyper::service::Service<R> for NoteFirstRequest<S>
where
    S: hyper::service::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, request: R) -> Self::Future {
        self.seen.store(true, Ordering::Relaxed);
        self.inner.call(request)
    }
}

/// Serves a tower `Service` (an axum `Router`, a `tower::ServiceBuilder` stack…) on each
/// connection, over HTTP/1.1 or HTTP/2 as ALPN decided. Each request carries the connection's
/// `Arc<ConnInfo>` in its extensions.
///
/// ```no_run
/// use std::sync::Arc;
/// use axum::{extract::Extension, routing::get, Router};
/// use tlsplex::{ConnInfo, HttpHandler, ServerOptions};
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
    http: Arc<auto::Builder<TokioExecutor>>,
}

impl<S> HttpHandler<S> {
    /// A handler serving `service` on every connection.
    pub fn new(service: S) -> Self {
        Self {
            service,
            http: builder(),
        }
    }
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
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    async fn serve(&self, conn: TlsConn) -> Result<(), HandlerError> {
        let info = conn.info.clone();
        let with_info = WithConnInfo {
            inner: self.service.clone(),
            info,
        };
        serve(&self.http, conn, TowerToHyperService::new(with_info)).await
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
