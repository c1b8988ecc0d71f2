//! An upgraded connection (WebSocket over HTTP/1.1): once the backend answered `101`, hyper
//! hands both sides over and their bytes are copied both ways until either side is done or
//! nothing moves for the idle timeout. The copy runs in the client connection's own task, after
//! hyper has let go of the connection, so a tunnel holds the connection's place (its permit, the
//! server's drain) like any other connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;

use crate::handler::relay::relay;
use crate::handler::HandlerError;

/// Both sides of an accepted upgrade, still being handed over by hyper.
pub(super) struct Tunnel {
    client: OnUpgrade,
    backend: OnUpgrade,
    /// The client's side is one HTTP/2 stream (RFC 8441): the connection goes on serving
    /// others, so the tunnel runs beside it, ending when the stream or the connection does.
    http2: bool,
}

impl Tunnel {
    pub(super) fn new(client: OnUpgrade, backend: OnUpgrade, http2: bool) -> Self {
        Self {
            client,
            backend,
            http2,
        }
    }

    async fn run(self, idle: Option<Duration>) -> Result<(), HandlerError> {
        let (client, backend): (Upgraded, Upgraded) = tokio::try_join!(self.client, self.backend)?;
        relay(TokioIo::new(client), TokioIo::new(backend), idle).await
    }
}

type Running = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send>>;

/// Where a connection's tunnel (at most one: an upgrade ends HTTP on it) waits to be run.
#[derive(Clone, Default)]
pub(crate) struct TunnelSlot(Arc<Mutex<Option<Running>>>);

impl TunnelSlot {
    /// Keeps `tunnel` for the connection's task to run once hyper lets go of the connection
    /// (HTTP/1.1), or runs it beside the connection (an HTTP/2 stream's).
    pub(super) fn start(&self, tunnel: Tunnel, idle: Option<Duration>) {
        if tunnel.http2 {
            tokio::spawn(async move {
                if let Err(error) = tunnel.run(idle).await {
                    tracing::debug!(%error, "an HTTP/2 WebSocket tunnel ended");
                }
            });
            return;
        }
        let running: Running = Box::pin(tunnel.run(idle));
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(running);
    }

    /// Runs the tunnel, if the connection was upgraded, to its end.
    pub(crate) async fn finish(self) -> Result<(), HandlerError> {
        let running = self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
        match running {
            Some(running) => running.await,
            None => Ok(()),
        }
    }
}
