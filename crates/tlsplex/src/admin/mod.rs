//! The admin endpoint: a small HTTP/1.1 API and dashboard on a separate address (loopback unless
//! configured otherwise, with a bearer token off loopback).
//!
//! It reads what anyone may read (the context's registry and metrics) and asks for everything
//! else through [`AdminRequest`]s answered by whoever owns the [`crate::Supervisor`] (the
//! `tlsplex` binary's serving loop), so the layers stay one-way.
//!
//! Browsers are kept out as `browser_guard.rs` describes; connections are capped
//! ([`MAX_ADMIN_CONNECTIONS`], taken before accept) and timed ([`ADMIN_HEADER_TIMEOUT`],
//! [`ADMIN_BODY_TIMEOUT`]), apart from the TLS servers' limits.
//!
//! Routes: `GET /` (dashboard), `GET /api/servers`, `GET /api/certificates`, `POST /api/servers` (a `[[server]]` table as
//! TOML or JSON), `POST /api/servers/{name}/stop|start`, `POST /api/reload`,
//! `DELETE /api/servers/{name}`, `GET /metrics`,
//! `GET /healthz`, `GET /readyz`.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

mod browser_guard;

use std::time::Duration;

use hyper_util::rt::TokioTimer;
use tokio::sync::Semaphore;

pub use crate::config::AdminOptions;
use crate::context::Context;
use crate::registry::ServerState;
use crate::server::{CertificateStats, ServerStats};
use crate::supervisor::ReloadReport;

const DASHBOARD: &str = include_str!("dashboard.html");

/// What the admin endpoint asks of the supervisor's owner.
#[derive(Debug)]
#[non_exhaustive]
pub enum AdminRequest {
    /// Every server's figures.
    Servers(oneshot::Sender<Vec<ServerStats>>),
    /// Reload the configuration; the answer is the report, or why the new config was refused.
    Reload(oneshot::Sender<Result<ReloadReport, String>>),
    /// Stop and drain one server (it stays configured; a reload brings it back).
    Remove(String, oneshot::Sender<Result<(), String>>),
    /// Add a server from a `[[server]]` table in TOML; the answer is its figures or why not.
    Add(String, oneshot::Sender<Result<ServerStats, String>>),
    /// Start a configured server that was stopped; the answer is its figures or why not.
    Start(String, oneshot::Sender<Result<ServerStats, String>>),
}

/// Admin connections open at once; more wait in the kernel's backlog. The admin endpoint is for
/// an operator and a few scrapers, and must not take descriptors the TLS servers need.
pub const MAX_ADMIN_CONNECTIONS: usize = 64;

/// Time for a request head to arrive, also the most an idle keep-alive connection is kept.
pub const ADMIN_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Time for a request body (`POST /api/servers`) to arrive.
pub const ADMIN_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest admin request head.
const ADMIN_HEADER_BYTES: usize = 16 * 1024;

/// The admin endpoint, bound.
pub struct AdminServer {
    listener: TcpListener,
    token: Option<Arc<str>>,
    allowed_hosts: Vec<String>,
}

impl AdminServer {
    /// Binds the admin address. A non-loopback address without a token is refused.
    pub async fn bind(options: &AdminOptions) -> io::Result<Self> {
        if !options.listen.ip().is_loopback() && options.token.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "admin endpoint on {} is not loopback: set a token",
                    options.listen
                ),
            ));
        }
        Ok(Self {
            listener: TcpListener::bind(options.listen).await?,
            token: options.token.as_deref().map(Arc::from),
            allowed_hosts: options.allowed_hosts.clone(),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` is cancelled.
    pub async fn run(
        self,
        ctx: Context,
        requests: mpsc::Sender<AdminRequest>,
        shutdown: CancellationToken,
    ) {
        let api = Arc::new(Api {
            ctx,
            requests,
            token: self.token,
            allowed_hosts: self.allowed_hosts,
        });
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(ADMIN_HEADER_TIMEOUT)
            .max_buf_size(ADMIN_HEADER_BYTES);
        let permits = Arc::new(Semaphore::new(MAX_ADMIN_CONNECTIONS));
        loop {
            // Taken before accept: beyond the cap, connections wait in the backlog and hold no
            // descriptor of ours.
            let permit = tokio::select! {
                () = shutdown.cancelled() => return,
                permit = permits.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
            };
            let (tcp, peer) = tokio::select! {
                () = shutdown.cancelled() => return,
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::debug!(%error, "admin accept failed");
                        // EMFILE and the like: give descriptors a moment to free.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let api = api.clone();
            let connection = http.serve_connection(
                TokioIo::new(tcp),
                hyper::service::service_fn(move |request| {
                    let api = api.clone();
                    async move { Ok::<_, Infallible>(api.handle(request).await) }
                }),
            );
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%error, client.addr = %peer, "admin connection ended");
                }
                drop(permit);
            });
        }
    }
}

struct Api {
    ctx: Context,
    requests: mpsc::Sender<AdminRequest>,
    token: Option<Arc<str>>,
    allowed_hosts: Vec<String>,
}

type Reply = Response<Full<Bytes>>;

impl Api {
    async fn handle(&self, request: Request<Incoming>) -> Reply {
        if let Err(refusal) =
            browser_guard::check(request.method(), request.headers(), &self.allowed_hosts)
        {
            return text(refusal.status(), refusal.message());
        }
        if !self.authorized(&request) {
            let mut reply = text(StatusCode::UNAUTHORIZED, "a bearer token is required\n");
            reply
                .headers_mut()
                .insert("www-authenticate", HeaderValue::from_static("Bearer"));
            return reply;
        }
        let path = request.uri().path().to_owned();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (request.method(), segments.as_slice()) {
            (&Method::GET, [""]) => {
                with_type(StatusCode::OK, "text/html; charset=utf-8", DASHBOARD)
            }
            (&Method::GET, ["healthz"]) => text(StatusCode::OK, "ok\n"),
            (&Method::GET, ["readyz"]) => self.readyz(),
            (&Method::GET, ["metrics"]) => with_type(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                self.ctx.metrics().encode(),
            ),
            (&Method::GET, ["api", "servers"]) => match self.ask(AdminRequest::Servers).await {
                Some(servers) => json(StatusCode::OK, &servers),
                None => unavailable(),
            },
            (&Method::GET, ["api", "certificates"]) => {
                match self.ask(AdminRequest::Servers).await {
                    Some(servers) => json(StatusCode::OK, &certificates(&servers)),
                    None => unavailable(),
                }
            }
            (&Method::POST, ["api", "reload"]) => match self.ask(AdminRequest::Reload).await {
                Some(Ok(report)) => json(StatusCode::OK, &report),
                Some(Err(errors)) => json(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &serde_json::json!({ "errors": errors }),
                ),
                None => unavailable(),
            },
            (&Method::POST, ["api", "servers"]) => match server_table(request).await {
                Ok(table) => match self.ask(|tx| AdminRequest::Add(table, tx)).await {
                    Some(Ok(stats)) => json(StatusCode::CREATED, &stats),
                    Some(Err(error)) => json(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        &serde_json::json!({ "errors": error }),
                    ),
                    None => unavailable(),
                },
                Err(error) => json(
                    StatusCode::BAD_REQUEST,
                    &serde_json::json!({ "errors": error }),
                ),
            },
            (&Method::POST, ["api", "servers", name, "stop"])
            | (&Method::DELETE, ["api", "servers", name]) => {
                let name = (*name).to_owned();
                match self.ask(|tx| AdminRequest::Remove(name, tx)).await {
                    Some(Ok(())) => json(
                        StatusCode::ACCEPTED,
                        &serde_json::json!({ "draining": true }),
                    ),
                    Some(Err(error)) => json(
                        StatusCode::NOT_FOUND,
                        &serde_json::json!({ "error": error }),
                    ),
                    None => unavailable(),
                }
            }
            (&Method::POST, ["api", "servers", name, "start"]) => {
                let name = (*name).to_owned();
                match self.ask(|tx| AdminRequest::Start(name, tx)).await {
                    Some(Ok(stats)) => json(StatusCode::CREATED, &stats),
                    Some(Err(error)) => {
                        json(StatusCode::CONFLICT, &serde_json::json!({ "error": error }))
                    }
                    None => unavailable(),
                }
            }
            (_, ["api", ..]) | (_, ["metrics" | "healthz" | "readyz"]) => {
                text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }

    fn authorized(&self, request: &Request<Incoming>) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let presented = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        // Constant-time comparison: the token is a secret.
        presented.is_some_and(|p| {
            p.len() == token.len()
                && p.bytes()
                    .zip(token.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        })
    }

    fn readyz(&self) -> Reply {
        let servers = self.ctx.registry().list();
        let bound: Vec<&str> = servers
            .iter()
            .filter(|s| s.state == ServerState::Bound)
            .map(|s| s.name.as_str())
            .collect();
        if servers.is_empty() || !bound.is_empty() {
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("not serving yet: {}\n", bound.join(", ")),
            )
        } else {
            text(StatusCode::OK, "ready\n")
        }
    }

    async fn ask<T>(&self, request: impl FnOnce(oneshot::Sender<T>) -> AdminRequest) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.requests.send(request(tx)).await.ok()?;
        rx.await.ok()
    }
}

/// The body of `POST /api/servers` as TOML text: TOML as sent, or JSON converted.
/// One certificate of one server, for `GET /api/certificates`.
#[derive(serde::Serialize)]
struct ServerCertificate<'a> {
    server: &'a str,
    #[serde(flatten)]
    certificate: &'a CertificateStats,
}

/// Every certificate of every server, the soonest to expire first.
fn certificates(servers: &[ServerStats]) -> Vec<ServerCertificate<'_>> {
    let mut all: Vec<_> = servers
        .iter()
        .flat_map(|server| {
            server
                .certificates
                .iter()
                .map(|certificate| ServerCertificate {
                    server: &server.name,
                    certificate,
                })
        })
        .collect();
    all.sort_by_key(|entry| entry.certificate.summary.not_after);
    all
}

async fn server_table(request: Request<Incoming>) -> Result<String, String> {
    use http_body_util::BodyExt as _;
    const LIMIT: usize = 64 * 1024;
    let is_json = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let body = http_body_util::Limited::new(request.into_body(), LIMIT).collect();
    let body = tokio::time::timeout(ADMIN_BODY_TIMEOUT, body)
        .await
        .map_err(|_| format!("the body did not arrive within {ADMIN_BODY_TIMEOUT:?}"))?
        .map_err(|e| format!("cannot read the body (at most {LIMIT} bytes): {e}"))?
        .to_bytes();
    if is_json {
        let value: toml::Value =
            serde_json::from_slice(&body).map_err(|e| format!("not valid JSON: {e}"))?;
        toml::to_string(&value).map_err(|e| format!("cannot express as TOML: {e}"))
    } else {
        String::from_utf8(body.to_vec()).map_err(|_| "the body is not UTF-8".to_owned())
    }
}

fn with_type(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut reply = Response::new(Full::new(body.into()));
    *reply.status_mut() = status;
    reply
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    reply
}

fn text(status: StatusCode, body: &str) -> Reply {
    with_type(status, "text/plain; charset=utf-8", body.to_owned())
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> Reply {
    let body = serde_json::to_vec_pretty(value).unwrap_or_default();
    with_type(status, "application/json", body)
}

fn unavailable() -> Reply {
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        "the server is shutting down\n",
    )
}
