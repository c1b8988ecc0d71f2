//! The `passthrough` handler: tlsplex does not terminate TLS. The client's ClientHello, as read
//! to choose the route, and everything after it go to a backend that is itself a TLS server
//! (optionally after a PROXY header), and bytes are copied both ways: the client sees the
//! backend's certificate. HAProxy's `mode tcp` with `req.ssl_sni`, nginx's `ssl_preread`.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::forward::{ForwardOptions, Pooled};
use super::relay::relay;
use super::HandlerError;
use crate::upstream::pool::{BackendPool, BackendStats, PoolOrigin};

/// Relays a connection, ClientHello and all, to a TLS backend of its pool; see the module docs.
/// Takes [`ForwardOptions`] (their `backend_tls` is not used: the TLS is the client's).
#[derive(Debug, Clone)]
pub struct PassthroughHandler {
    pooled: Pooled,
}

/// Who is on either end of a passed-through connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PassthroughPeers<'a> {
    pub(crate) server: &'a str,
    pub(crate) client: SocketAddr,
    pub(crate) local: SocketAddr,
    pub(crate) sni: Option<&'a str>,
}

impl PassthroughHandler {
    /// A handler passing connections through to `options.backends`.
    pub fn new(options: ForwardOptions) -> Self {
        Self {
            pooled: Pooled::new(options, false),
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

    /// Connects to a backend, replays `hello` (the bytes read so far) and relays. `Ok(false)`:
    /// no backend answered (the caller tells the client with an alert).
    pub(crate) async fn serve<C>(
        &self,
        client: &mut C,
        hello: Vec<u8>,
        peers: PassthroughPeers<'_>,
    ) -> Result<bool, HandlerError>
    where
        C: AsyncRead + AsyncWrite + Unpin,
    {
        let Pooled { options, pool, .. } = &self.pooled;
        let (mut backend, _lease) = match pool.connect(options.connect_timeout).await {
            Ok(connected) => connected,
            Err(exhausted) => {
                pool.log_exhausted(peers.server, &exhausted);
                return Ok(false);
            }
        };
        if let Some(version) = options.proxy_protocol {
            let header = version.passthrough_header(peers.client, peers.local, peers.sni)?;
            backend.write_all(&header).await?;
        }
        backend.write_all(&hello).await?;
        drop(hello);
        relay(client, backend, options.idle_timeout).await?;
        Ok(true)
    }
}
