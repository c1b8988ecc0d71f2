//! How the proxy's HTTP client reaches its backends: a connector over the handler's
//! [`BackendPool`], so a new backend connection takes the pool's balance, health and failover
//! (a connect failure moves to the next backend, within `connect_timeout`), and hyper-util's
//! client keeps the connections alive between requests (bounded idle connections, each to one
//! backend with the pool's TLS settings).

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;

use crate::upstream::backend::BackendStream;
use crate::upstream::pool::{BackendLease, BackendPool, PoolExhausted};

/// The backend a response came from, in the response's extensions: its address (for the access
/// log) and where its response times go.
#[derive(Debug, Clone)]
pub(super) struct BackendName(
    pub(super) Arc<str>,
    pub(super) prometheus_client::metrics::histogram::Histogram,
);

/// Opens backend connections through the pool.
#[derive(Clone)]
pub(super) struct PoolConnector {
    pub(super) pool: Arc<BackendPool>,
    pub(super) connect_timeout: Duration,
    pub(super) h2: bool,
}

/// No backend took the connection: what each one said.
#[derive(Debug)]
pub(super) struct Unreachable(pub(super) PoolExhausted);

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no backend answered: {}", self.0)
    }
}

impl std::error::Error for Unreachable {}

impl tower_service::Service<Uri> for PoolConnector {
    type Response = Upstream;
    type Error = Unreachable;
    type Future = Pin<Box<dyn Future<Output = Result<Upstream, Unreachable>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Unreachable>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let (pool, budget, h2) = (self.pool.clone(), self.connect_timeout, self.h2);
        Box::pin(async move {
            let (stream, lease) = pool.connect(budget).await.map_err(Unreachable)?;
            Ok(Upstream {
                name: BackendName(lease.backend().to_string().into(), lease.response_times()),
                io: TokioIo::new(stream),
                _lease: lease,
                h2,
            })
        })
    }
}

/// One backend connection, counted open (its lease) until hyper's client drops it.
pub(super) struct Upstream {
    io: TokioIo<BackendStream>,
    name: BackendName,
    _lease: BackendLease,
    h2: bool,
}

impl Connection for Upstream {
    fn connected(&self) -> Connected {
        let connected = Connected::new().extra(self.name.clone());
        if self.h2 {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}

impl hyper::rt::Read for Upstream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Upstream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
