//! The `forward` handler: TLS termination to a backend, as stunnel and hitch do.
//!
//! After the handshake the handler connects to a backend of its pool (TCP or a Unix socket,
//! optionally over TLS: `backend_tls`), optionally sends a PROXY header, then copies bytes both
//! ways until both sides are done. Half-closes pass through: a client that shuts its write side
//! (close_notify) still gets the rest of the reply, and a backend that shuts its write side
//! makes tlsplex send close_notify to the client.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::proxy_protocol::ProxyProtocol;
use super::relay::relay;
use super::{Handler, HandlerError, TlsConn};
use crate::upstream::backend::{Backend, BackendTls};
use crate::upstream::pool::{BackendPool, BackendStats, Balance, HealthCheck, PoolOrigin};

/// How long a forwarded connection may carry no byte either way before it is closed: long
/// enough for a quiet interactive session, short enough that idle connections cannot pile up
/// until the connection limits are reached (HAProxy's `timeout tunnel` is set by most
/// deployments to minutes; stunnel's `TIMEOUTidle` defaults to 12 h).
pub const DEFAULT_FORWARD_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// How a `forward` (or `passthrough`) handler reaches its backends.
///
/// # Defaults
/// `balance` round robin, no active health check, `connect_timeout` 5 s (for all the tries of
/// one connection), `idle_timeout` 5 min ([`DEFAULT_FORWARD_IDLE_TIMEOUT`]), no PROXY header,
/// plaintext to the backend.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ForwardOptions {
    /// The backends, at least one.
    pub backends: Vec<Backend>,
    /// Which backend a new connection goes to.
    pub balance: Balance,
    /// An active check of every backend.
    pub health_check: Option<HealthCheck>,
    /// Time allowed to connect to a backend, all tries of one connection together.
    pub connect_timeout: Duration,
    /// Close a connection after this long with no bytes either way; `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Send a PROXY header first.
    pub proxy_protocol: Option<ProxyProtocol>,
    /// Re-encrypt toward the backend (`forward` only).
    pub backend_tls: Option<BackendTls>,
}

impl ForwardOptions {
    /// Forward to `backend` with the defaults.
    pub fn new(backend: Backend) -> Self {
        Self::pool(vec![backend])
    }

    /// Forward to a pool of `backends` with the defaults.
    pub fn pool(backends: Vec<Backend>) -> Self {
        Self {
            backends,
            balance: Balance::default(),
            health_check: None,
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Some(DEFAULT_FORWARD_IDLE_TIMEOUT),
            proxy_protocol: None,
            backend_tls: None,
        }
    }
}

/// Options and the pool they built: what `forward` and `passthrough` handlers hold.
#[derive(Debug, Clone)]
pub(crate) struct Pooled {
    pub(crate) options: Arc<ForwardOptions>,
    pub(crate) pool: Arc<BackendPool>,
    /// Whether the pool speaks `backend_tls` (forward) or leaves TLS to the client (passthrough).
    tls: bool,
}

impl Pooled {
    pub(crate) fn new(options: ForwardOptions, tls: bool) -> Self {
        let options = Arc::new(options);
        let pool = Self::build(&options, "", tls, PoolOrigin::default());
        Self { options, pool, tls }
    }

    /// The same options with a pool of their own called `name`, counted in the server's
    /// metrics, carrying over what the previous pool of that name knew of the backends it keeps
    /// (a reload's successor); its active check starts now.
    pub(crate) fn renamed(&self, name: &str, origin: PoolOrigin<'_>) -> Self {
        let pool = Self::build(&self.options, name, self.tls, origin);
        pool.start_checks();
        Self {
            options: self.options.clone(),
            pool,
            tls: self.tls,
        }
    }

    fn build(
        options: &ForwardOptions,
        name: &str,
        tls: bool,
        origin: PoolOrigin<'_>,
    ) -> Arc<BackendPool> {
        let tls = options.backend_tls.clone().filter(|_| tls);
        let policy = (
            options.backends.as_slice(),
            options.balance,
            options.health_check.clone(),
        );
        BackendPool::new(name, policy, tls, origin)
    }
}

/// Serves a connection by relaying it to a backend; see the module docs.
#[derive(Debug, Clone)]
pub struct ForwardHandler {
    pooled: Pooled,
}

impl ForwardHandler {
    /// A handler relaying to `options.backends`. Its active health check runs once a server
    /// runs it (a server gives each handler it runs a pool of its own, named after the route
    /// or the server).
    pub fn new(options: ForwardOptions) -> Self {
        Self {
            pooled: Pooled::new(options, true),
        }
    }

    /// The same handler with a pool of its own called `name` ([`Pooled::renamed`]).
    pub(crate) fn renamed(&self, name: &str, origin: PoolOrigin<'_>) -> Self {
        Self {
            pooled: self.pooled.renamed(name, origin),
        }
    }

    pub(crate) fn pool(&self) -> &Arc<BackendPool> {
        &self.pooled.pool
    }

    /// Each backend's figures.
    pub fn backend_stats(&self) -> Vec<BackendStats> {
        self.pooled.pool.stats()
    }
}

impl Handler for ForwardHandler {
    async fn serve(&self, conn: TlsConn) -> Result<(), HandlerError> {
        let TlsConn {
            mut stream,
            info,
            metrics,
            request_rate,
            ..
        } = conn;
        // A relayed connection is one request: over the client's rate, it reaches no backend.
        let now = std::time::Instant::now();
        if let Some(Err(_)) = request_rate.map(|rate| rate.take(info.peer_addr.ip(), now)) {
            let _ = stream.shutdown().await;
            return Err("closed: request_rate_per_client".into());
        }
        let Pooled { options, pool, .. } = &self.pooled;
        match pool.connect(options.connect_timeout).await {
            Ok((mut backend, _lease)) => {
                if let Some(version) = options.proxy_protocol {
                    backend.write_all(&version.header(&info)?).await?;
                }
                relay(stream, backend, options.idle_timeout).await
            }
            Err(exhausted) => {
                metrics.series.backend_errors.inc();
                pool.log_exhausted(&info.server, &exhausted);
                let _ = stream.shutdown().await; // close_notify, then FIN
                Ok(())
            }
        }
    }
}
