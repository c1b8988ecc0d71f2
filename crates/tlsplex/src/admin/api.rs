//! The admin routes: what each answers, over the [`Controller`].

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST, LOCATION, SET_COOKIE};
use hyper::{Method, Request, Response, StatusCode};

use super::access::{Access, LOGIN_CODE_LIFETIME, SESSION_COOKIE, SESSION_LIFETIME};
use super::{browser_guard, ADMIN_BODY_TIMEOUT};
use crate::control::{ControlError, Controller, ReloadCause};
use crate::handler::BackendStats;
use crate::registry::ServerState;
use crate::server::{CertificateStats, ServerStats};

const DASHBOARD: &str = include_str!("dashboard.html");

/// The admin routes over a [`Controller`].
pub(super) struct Api {
    pub(super) controller: Controller,
    pub(super) access: Arc<Access>,
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
        let path = request.uri().path().to_owned();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        // Open to all who pass the guard: the login itself, and whether the process serves.
        match (request.method(), segments.as_slice()) {
            (&Method::GET, ["login"]) => return self.log_in(&request),
            (&Method::GET, ["healthz"]) => return text(StatusCode::OK, "ok\n"),
            (&Method::GET, ["readyz"]) => return self.readyz(),
            _ => {}
        }
        if !self.access.allows(request.headers()) {
            return unauthorized(segments == [""]);
        }
        match (request.method(), segments.as_slice()) {
            (&Method::GET, [""]) => dashboard(),
            (&Method::POST, ["api", "login"]) => self.login_link(&request),
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
            (&Method::POST, ["api", "servers", name, "stop"]) => {
                draining(self.controller.stop(name).await)
            }
            (&Method::DELETE, ["api", "servers", name]) => {
                draining(self.controller.remove(name).await)
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

    /// `POST /api/login`: a one-time dashboard link on the host the caller used.
    fn login_link(&self, request: &Request<Incoming>) -> Reply {
        // The guard let only a well-formed, known Host through.
        let host = request
            .headers()
            .get(HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        match self.access.new_login_code() {
            Ok(code) => json(
                StatusCode::OK,
                &serde_json::json!({
                    "url": format!("http://{host}/login?code={code}"),
                    "expires_in_s": LOGIN_CODE_LIFETIME.as_secs(),
                }),
            ),
            Err(error) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{error}\n")),
        }
    }

    /// `GET /login?code=…`: spends the code, sets the session cookie, and sends to `/`.
    fn log_in(&self, request: &Request<Incoming>) -> Reply {
        let code = request
            .uri()
            .query()
            .into_iter()
            .flat_map(|q| q.split('&'))
            .find_map(|pair| pair.strip_prefix("code="));
        let Some(session) = code.and_then(|code| self.access.log_in(code)) else {
            return with_type(
                StatusCode::FORBIDDEN,
                "text/html; charset=utf-8",
                LOGIN_REFUSED,
            );
        };
        let mut reply = text(StatusCode::SEE_OTHER, "logged in\n");
        let cookie = format!(
            "{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
            SESSION_LIFETIME.as_secs()
        );
        if let Ok(cookie) = HeaderValue::from_str(&cookie) {
            reply.headers_mut().insert(SET_COOKIE, cookie);
        }
        reply
            .headers_mut()
            .insert(LOCATION, HeaderValue::from_static("/"));
        reply
    }

    /// 200 once every server with a port accepts connections and at least one does; 503 while
    /// one is bound but not yet serving, or none serves (all stopped). Stopped servers are the
    /// operator's choice and do not count.
    fn readyz(&self) -> Reply {
        let servers = self.controller.context().registry().list();
        let with = |state| servers.iter().filter(move |s| s.state == state);
        let bound: Vec<&str> = with(ServerState::Bound).map(|s| s.name.as_str()).collect();
        let serving = with(ServerState::Serving).count();
        if !bound.is_empty() {
            let waiting = bound.join(", ");
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("not ready: bound, not yet serving: {waiting}\n"),
            )
        } else if serving == 0 {
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: no server is serving\n",
            )
        } else {
            let servers = if serving == 1 { "server" } else { "servers" };
            text(
                StatusCode::OK,
                &format!("ready: {serving} {servers} serving\n"),
            )
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

/// The dashboard page, which no other page may frame (its buttons act: no clickjacking).
fn dashboard() -> Reply {
    let mut reply = with_type(StatusCode::OK, "text/html; charset=utf-8", DASHBOARD);
    let headers = reply.headers_mut();
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static("frame-ancestors 'none'"),
    );
    reply
}

const LOGIN_REFUSED: &str = "<!doctype html><title>tlsplex admin</title>\
<p>This login link was used already or has expired. Run <code>tlsplex ctl dashboard</code> for a new one.\n";

/// 401: a page saying how to log in for the dashboard, a line for the API.
fn unauthorized(dashboard: bool) -> Reply {
    let mut reply = if dashboard {
        with_type(
            StatusCode::UNAUTHORIZED,
            "text/html; charset=utf-8",
            "<!doctype html><title>tlsplex admin</title>\
<p>Log in first: run <code>tlsplex ctl dashboard</code> and open the link it prints.\n",
        )
    } else {
        text(
            StatusCode::UNAUTHORIZED,
            "a bearer token is required (tlsplex ctl reads it from the token file)\n",
        )
    };
    reply
        .headers_mut()
        .insert("www-authenticate", HeaderValue::from_static("Bearer"));
    reply
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

/// 202 for a server stopped (its connections draining), or 404.
fn draining(stopped: Result<(), ControlError>) -> Reply {
    match stopped {
        Ok(()) => json(
            StatusCode::ACCEPTED,
            &serde_json::json!({ "draining": true }),
        ),
        Err(error) => refused(StatusCode::NOT_FOUND, "error", &error),
    }
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
