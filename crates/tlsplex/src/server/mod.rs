//! `Server`: one bound TLS server instance, the seed's `SSL_EXAMPLE_startOneServer` thread.
//!
//! [`Server::bind`] opens the port (errors surface before anything serves; port 0 works and
//! [`Server::local_addr`] tells the port chosen); [`Server::run`] accepts until the server's stop
//! token is cancelled, then drains. Each accepted connection runs in its own task.

mod accept;
mod client_limit;
mod connection;
mod handle;
mod handshake;
mod limit;
pub(crate) mod listener;
mod options;
mod outcome;
mod routes;
mod settings;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use handle::ServerParts;
pub use handle::{CertificateStats, RouteStats, ServerHandle, ServerStats};
pub(crate) use options::ServerInputs;
pub use options::ServerOptions;

use crate::context::Context;
use crate::metrics::Count;
use crate::rate::RateTable;
use crate::registry::{DuplicateName, Registration, ServerState};
use accept::AcceptBackoff;
use client_limit::{ClientLimit, ClientSlot};
use connection::{ConnectionShared, ConnectionTask};
use limit::ConnectionLimit;
use settings::LiveSettings;

/// Why a server could not be bound or run; every variant names the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The address could not be bound (in use, not local, no permission…).
    #[error("server {server:?}: cannot listen on {addr}: {source}")]
    Bind {
        /// The server.
        server: String,
        /// The address asked for.
        addr: SocketAddr,
        /// What the operating system said.
        source: io::Error,
    },
    /// Another server of the same context already has this name.
    #[error("server {server:?}: {source}")]
    DuplicateName {
        /// The server.
        server: String,
        /// The clash.
        source: DuplicateName,
    },
    /// rustls refused the TLS configuration.
    #[error("server {server:?}: TLS configuration refused: {source}")]
    Tls {
        /// The server.
        server: String,
        /// What rustls said.
        source: rustls::Error,
    },
    /// The bound socket could not be handed to the async runtime.
    #[error("server {server:?}: cannot register the listening socket: {source}")]
    Listener {
        /// The server.
        server: String,
        /// What went wrong.
        source: io::Error,
    },
}

/// One bound server; call [`Server::run`] to serve.
pub struct Server {
    ctx: Context,
    listener: std::net::TcpListener,
    shared: Arc<ConnectionShared>,
    handle: ServerHandle,
    registration: Registration,
}

impl Server {
    /// Binds `options.listen` for a server of `ctx`. No runtime is needed until [`Server::run`].
    pub fn bind(ctx: &Context, options: ServerOptions) -> Result<Self, ServerError> {
        let listener = listener::bind(options.listen, options.backlog, options.reuse_port)
            .map_err(|source| ServerError::Bind {
                server: options.name.clone(),
                addr: options.listen,
                source,
            })?;
        Self::from_listener(ctx, options, listener)
    }

    /// A server on a socket that is already listening (handed over by systemd, say, or bound
    /// ahead of time); `options.listen` is not used.
    pub fn from_listener(
        ctx: &Context,
        options: ServerOptions,
        listener: std::net::TcpListener,
    ) -> Result<Self, ServerError> {
        let server = options.name.clone();
        let local_addr = listener
            .local_addr()
            .and_then(|addr| listener.set_nonblocking(true).map(|()| addr))
            .map_err(|source| ServerError::Listener {
                server: server.clone(),
                source,
            })?;
        let metrics = Arc::new(ctx.metrics().server(&server));
        let settings =
            LiveSettings::new(ctx, &options, &metrics).map_err(|source| ServerError::Tls {
                server: server.clone(),
                source,
            })?;
        let registration = ctx
            .registry()
            .register(&server, local_addr)
            .map_err(|source| ServerError::DuplicateName {
                server: server.clone(),
                source,
            })?;
        let name: Arc<str> = server.into();
        let stop = ctx.shutdown_token().child_token();
        let default_max_connections = ctx.server_max_connections();
        let limit =
            ConnectionLimit::new(options.max_connections.unwrap_or(default_max_connections));
        let settings = Arc::new(settings);
        let rates = Arc::new(RateTable::new(options.request_rate_per_client));
        Ok(Self {
            ctx: ctx.clone(),
            listener,
            shared: Arc::new(ConnectionShared {
                server: name.clone(),
                local_addr,
                settings: settings.clone(),
                stop: stop.clone(),
                metrics: metrics.clone(),
                reuse_port: options.reuse_port,
                rates: rates.clone(),
            }),
            handle: ServerHandle(Arc::new(ServerParts {
                name,
                local_addr,
                stop,
                closed: CancellationToken::new(),
                connections: TaskTracker::new(),
                settings,
                limit,
                clients: Arc::new(ClientLimit::new(options.max_connections_per_client)),
                rates,
                entry: registration.entry().clone(),
                default_max_connections,
                metrics,
            })),
            registration,
        })
    }

    /// The server's name.
    pub fn name(&self) -> &str {
        self.handle.name()
    }

    /// The address actually bound (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    /// A handle to stop this server and watch its connections, usable while it runs.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// Accepts and serves until stopped, then drains: the port closes at once, in-flight
    /// connections get the context's `shutdown_grace` to finish, and any still open after it are
    /// closed. Returns once every connection of this server is gone.
    ///
    /// Beyond this server's connection limit, connections are not accepted: they wait in the
    /// kernel's backlog and are taken, in order, as others close. Beyond the context's
    /// process-wide limit, each server accepts at most one more connection and holds it, not
    /// handshaking, until a permit frees. Either way the client sees a slow handshake, never a
    /// refusal.
    pub fn run(self) -> impl Future<Output = Result<(), ServerError>> + Send + 'static {
        // Taken apart here, not in the async block: an async fn keeps its arguments for its whole
        // life, which would double what each idle server's task holds.
        let Self {
            ctx,
            listener,
            shared,
            handle: ServerHandle(handle),
            registration,
        } = self;
        async move {
            let listener = match TcpListener::from_std(listener) {
                Ok(listener) => listener,
                Err(source) => {
                    handle.closed.cancel();
                    return Err(ServerError::Listener {
                        server: handle.name.to_string(),
                        source,
                    });
                }
            };
            if !handle.stop.is_cancelled() {
                registration.entry().set_state(ServerState::Serving);
            }
            tracing::info!(server = %handle.name, addr = %handle.local_addr, "serving");

            // Cancelling `abort` drops connections still open when the grace period ends.
            let abort = CancellationToken::new();
            let mut backoff = AcceptBackoff::default();
            loop {
                // This server's permit is taken before accept, so beyond its limit connections wait
                // in the kernel's backlog, never in our memory.
                let limited = &shared.metrics.series.server_limited;
                let Some(server_permit) =
                    permit(handle.limit.permits(), limited, &handle.stop).await
                else {
                    break;
                };
                let accepted = tokio::select! {
                    biased;
                    () = handle.stop.cancelled() => break,
                    accepted = listener.accept() => accepted,
                };
                let (tcp, peer_addr) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Boxed, as the other waits off the accept path: the server's task stays small
                        // (10,000 idle servers hold one each).
                        Box::pin(backoff.on_error(&handle.name, &error)).await;
                        continue;
                    }
                };
                let Some(client) = handle.clients.admit(peer_addr.ip()) else {
                    shared.metrics.series.client_limited.inc();
                    tracing::debug!(server = %handle.name, client.addr = %peer_addr, "closed at accept: max_connections_per_client");
                    continue; // `tcp` is dropped: closed before any byte
                };
                // The process-wide permit is taken after accept: taken before, every idle server
                // would hold one and the limit would shrink by one per server. So at most one
                // accepted connection per server waits here for a permit.
                let limited = &shared.metrics.series.process_limited;
                let Some(process_permit) =
                    permit(ctx.connection_permits(), limited, &handle.stop).await
                else {
                    break;
                };
                backoff.reset();
                let held = Some((server_permit, process_permit, client));
                spawn_connection(&shared, &handle, &abort, tcp, peer_addr, held);
            }

            if shared.reuse_port {
                take_queued(&listener, &shared, &handle, &abort);
            }
            drop(listener);
            handle.closed.cancel();
            registration.entry().set_state(ServerState::Draining);
            Box::pin(drain(&handle, ctx.shutdown_grace(), &abort)).await;
            tracing::info!(server = %handle.name, "stopped");
            Ok(())
        }
    }
}

/// With `SO_REUSEPORT`, closing a listener resets the connections the kernel already queued for
/// it (unless `net.ipv4.tcp_migrate_req` is on); accept and serve those first. Limits are not
/// waited for here: these few connections were promised service by the handshake the kernel did.
fn take_queued(
    listener: &TcpListener,
    shared: &Arc<ConnectionShared>,
    handle: &ServerParts,
    abort: &CancellationToken,
) {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    while let std::task::Poll::Ready(Ok((tcp, peer_addr))) = listener.poll_accept(&mut cx) {
        spawn_connection(shared, handle, abort, tcp, peer_addr, None);
    }
}

/// What a connection holds until it ends: this server's permit, the process-wide one, and its
/// client address's slot.
type Permits = (OwnedSemaphorePermit, OwnedSemaphorePermit, ClientSlot);

/// Runs one accepted connection in its own task on the server's tracker, in a span naming the
/// server and client; `abort` drops it at the end of the grace period.
fn spawn_connection(
    shared: &Arc<ConnectionShared>,
    handle: &ServerParts,
    abort: &CancellationToken,
    tcp: tokio::net::TcpStream,
    peer_addr: SocketAddr,
    permits: Option<Permits>,
) {
    let series = shared.metrics.series.clone();
    series.accepted.inc();
    series.active.inc();
    let span = tracing::debug_span!("conn", server = %handle.name, client.addr = %peer_addr);
    let serve = connection::serve(shared.clone(), tcp, peer_addr, Instant::now());
    let task = ConnectionTask::new(serve, abort.clone(), series, permits);
    handle.connections.spawn(task.instrument(span));
}

/// A permit from `permits`, counting in `limited` when it had to wait; `None` once stopped.
async fn permit(
    permits: &Arc<Semaphore>,
    limited: &Count,
    stop: &CancellationToken,
) -> Option<OwnedSemaphorePermit> {
    if let Ok(permit) = permits.clone().try_acquire_owned() {
        return Some(permit);
    }
    limited.inc();
    Box::pin(async {
        tokio::select! {
            biased;
            () = stop.cancelled() => None,
            permit = permits.clone().acquire_owned() => permit.ok(),
        }
    })
    .await
}

/// Waits for the server's connections to finish, at most `grace`, then closes the rest.
async fn drain(handle: &ServerParts, grace: Duration, abort: &CancellationToken) {
    handle.connections.close();
    let open = handle.connections.len();
    if open > 0 {
        tracing::info!(server = %handle.name, open, grace_ms = grace.as_millis() as u64, "draining");
    }
    if tokio::time::timeout(grace, handle.connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            server = %handle.name,
            open = handle.connections.len(),
            "grace period expired; closing the connections still open"
        );
        abort.cancel();
        handle.connections.wait().await;
    }
}
