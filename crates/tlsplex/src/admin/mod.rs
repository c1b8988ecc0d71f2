//! The admin endpoint: a small HTTP/1.1 API and dashboard on a separate address (loopback unless
//! configured otherwise, with a bearer token off loopback).
//!
//! It is a service over a [`Controller`]: the routes (`api.rs`) read the context's registry and
//! metrics, and ask the controller for everything else, so an embedder who starts it gets the
//! same API as `tlsplex run`.
//!
//! Browsers are kept out as `browser_guard.rs` describes; connections are capped
//! ([`MAX_ADMIN_CONNECTIONS`], taken before accept) and timed ([`ADMIN_HEADER_TIMEOUT`],
//! [`ADMIN_BODY_TIMEOUT`]), apart from the TLS servers' limits.
//!
//! Routes: `GET /` (dashboard), `GET /api/servers`, `GET /api/certificates`, `POST /api/servers` (a `[[server]]` table as
//! TOML or JSON), `POST /api/servers/{name}/stop|start`, `POST /api/reload`,
//! `DELETE /api/servers/{name}`, `GET /metrics`,
//! `GET /healthz`, `GET /readyz`.

mod api;
mod browser_guard;

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub use crate::config::AdminOptions;
use crate::control::Controller;

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

    /// Serves the API over `controller` until `shutdown` is cancelled.
    pub async fn run(self, controller: Controller, shutdown: CancellationToken) {
        let api = Arc::new(api::Api {
            controller,
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
