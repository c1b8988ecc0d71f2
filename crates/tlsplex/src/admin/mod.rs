//! The admin endpoint: a small HTTP/1.1 API and dashboard on a separate address (loopback unless
//! configured otherwise), for whoever holds its bearer token (`access.rs`: by default a token
//! made at start into a file only the daemon's user can read; a browser logs in with a one-time
//! code made from it).
//!
//! It is a service over a [`Controller`]: the routes (`api.rs`) read the context's registry and
//! metrics, and ask the controller for everything else, so an embedder who starts it gets the
//! same API as `tlsplex run`.
//!
//! Browsers are kept out as `browser_guard.rs` describes; connections are capped
//! ([`MAX_ADMIN_CONNECTIONS`], taken before accept) and timed ([`ADMIN_HEADER_TIMEOUT`],
//! [`ADMIN_BODY_TIMEOUT`]), apart from the TLS servers' limits.
//!
//! Routes: `GET /` (dashboard), `GET /login?code=…`, `POST /api/login`, `GET /api/servers`, `GET /api/certificates`, `POST /api/servers` (a `[[server]]` table as
//! TOML or JSON), `POST /api/servers/{name}/stop|start`, `POST /api/reload`,
//! `DELETE /api/servers/{name}`, `GET /metrics`,
//! `GET /healthz`, `GET /readyz` (these two without the token: they tell only whether the
//! process serves).

mod access;
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

pub use crate::config::{AdminOptions, AdminToken};
use crate::control::Controller;
use access::Access;
pub use access::{LOGIN_CODE_LIFETIME, SESSION_LIFETIME};

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
    access: Arc<Access>,
    allowed_hosts: Vec<String>,
}

impl AdminServer {
    /// Binds the admin address, and makes and writes the token when it is to be generated. A
    /// non-loopback address with a generated token is refused: its clients elsewhere could not
    /// read the file.
    pub async fn bind(options: &AdminOptions) -> io::Result<Self> {
        let token = match &options.token {
            AdminToken::Fixed(token) if token.trim().is_empty() => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the admin token is empty",
                ));
            }
            AdminToken::Fixed(token) => token.clone(),
            AdminToken::Generated(_) if !options.listen.ip().is_loopback() => {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "admin endpoint on {} is not loopback: give it a token file",
                        options.listen
                    ),
                ));
            }
            AdminToken::Generated(path) => {
                // Bound first (a second process on a taken address must not replace the first
                // one's token), listening only once the token is written: a client that can
                // connect can read it.
                let socket = bound(options.listen)?;
                let token = access::random_secret()?;
                access::write_token_file(path, &token).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("cannot write the admin token to {}: {e}", path.display()),
                    )
                })?;
                tracing::info!(file = %path.display(), "admin token written (mode 0600; tlsplex ctl reads it)");
                socket.listen(1024)?;
                socket.set_nonblocking(true)?;
                let listener = TcpListener::from_std(std::net::TcpListener::from(socket))?;
                return Ok(Self::with(listener, token, options));
            }
        };
        Ok(Self::with(
            TcpListener::bind(options.listen).await?,
            token,
            options,
        ))
    }

    fn with(listener: TcpListener, token: String, options: &AdminOptions) -> Self {
        Self {
            listener,
            access: Arc::new(Access::new(token)),
            allowed_hosts: options.allowed_hosts.clone(),
        }
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A one-time link that logs a browser in to the dashboard (valid for
    /// [`LOGIN_CODE_LIFETIME`], once).
    pub fn login_link(&self) -> io::Result<String> {
        let code = self.access.new_login_code()?;
        Ok(format!("http://{}/login?code={code}", self.local_addr()?))
    }

    /// Serves the API over `controller` until `shutdown` is cancelled.
    pub async fn run(self, controller: Controller, shutdown: CancellationToken) {
        let api = Arc::new(api::Api {
            controller,
            access: self.access,
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

/// A socket bound to `addr` (address reuse on, as `TcpListener::bind` sets it), not listening.
fn bound(addr: SocketAddr) -> io::Result<socket2::Socket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}
