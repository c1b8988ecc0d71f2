//! The admin routes: what each answers, over the [`Controller`].

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};

use super::{browser_guard, ADMIN_BODY_TIMEOUT};
use crate::control::{ControlError, Controller, ReloadCause};
use crate::handler::BackendStats;
use crate::registry::ServerState;
use crate::server::{CertificateStats, ServerStats};

const DASHBOARD: &str = include_str!("dashboard.html");

/// The admin routes over a [`Controller`].
pub(super) struct Api {
    pub(super) controller: Controller,
    pub(super) token: Option<Arc<str>>,
    pub(super) allowed_hosts: Vec<String>,
}

type Reply = Response<Full<Bytes>>;

impl Api {
    pub(super) async fn handle(&self, request: Request<Incoming>) -> Reply {
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
                self.controller.context().metrics().encode(),
            ),
            (&Method::GET, ["api", "servers"]) => {
                json(StatusCode::OK, &self.controller.stats().await)
            }
            (&Method::GET, ["api", "certificates"]) => json(
                StatusCode::OK,
                &certificates(&self.controller.stats().await),
            ),
            (&Method::GET, ["api", "acme"]) => json(
                StatusCode::OK,
                &self.controller.context().acme_certificates().list(),
            ),
            (&Method::GET, ["api", "backends"]) => {
                json(StatusCode::OK, &backends(&self.controller.stats().await))
            }
            (&Method::POST, ["api", "reload"]) => {
                match self.controller.reload(ReloadCause::AdminApi).await {
                    Ok(report) => json(StatusCode::OK, &report),
                    Err(error) => refused(StatusCode::UNPROCESSABLE_ENTITY, "errors", &error),
                }
            }
            (&Method::POST, ["api", "servers"]) => match server_table(request).await {
                Ok(table) => match self.controller.add(&table).await {
                    Ok(stats) => json(StatusCode::CREATED, &stats),
                    Err(error) => refused(StatusCode::UNPROCESSABLE_ENTITY, "errors", &error),
                },
                Err(error) => json(
                    StatusCode::BAD_REQUEST,
                    &serde_json::json!({ "errors": error }),
                ),
            },
            (&Method::POST, ["api", "servers", name, "stop"])
            | (&Method::DELETE, ["api", "servers", name]) => {
                match self.controller.remove(name).await {
                    Ok(()) => json(
                        StatusCode::ACCEPTED,
                        &serde_json::json!({ "draining": true }),
                    ),
                    Err(error) => refused(StatusCode::NOT_FOUND, "error", &error),
                }
            }
            (&Method::POST, ["api", "servers", name, "start"]) => {
                match self.controller.start(name).await {
                    Ok(stats) => json(StatusCode::CREATED, &stats),
                    Err(error) => refused(StatusCode::CONFLICT, "error", &error),
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
        let servers = self.controller.context().registry().list();
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
}

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

/// One backend of one server's pool, for `GET /api/backends`.
#[derive(serde::Serialize)]
struct ServerBackend<'a> {
    server: &'a str,
    #[serde(flatten)]
    backend: &'a BackendStats,
}

/// Every backend of every server, in server and pool order.
fn backends(servers: &[ServerStats]) -> Vec<ServerBackend<'_>> {
    servers
        .iter()
        .flat_map(|server| {
            server.backends.iter().map(|backend| ServerBackend {
                server: &server.name,
                backend,
            })
        })
        .collect()
}

/// The body of `POST /api/servers` as TOML text: TOML as sent, or JSON converted.
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

/// A refused request: `status` with `{ key: why }`, or 503 while shutting down.
fn refused(status: StatusCode, key: &str, error: &ControlError) -> Reply {
    if matches!(error, ControlError::ShuttingDown) {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the servers are shutting down\n",
        );
    }
    json(status, &serde_json::json!({ key: error.to_string() }))
}
