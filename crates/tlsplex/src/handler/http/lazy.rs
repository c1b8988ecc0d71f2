//! hyper's connection, made when the client has sent its first bytes. Until then a connection
//! holds the stream and the service, not hyper's state, the largest part of an HTTP connection's
//! future: an idle connection (its handshake done, nothing sent yet: a browser's preconnect, a
//! client's pool) costs 1.2 KiB less RSS (12.8 -> 11.6 KiB, release, 1,000 held).

use std::error::Error as StdError;
use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Incoming};
use hyper::service::{HttpService, Service};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

use super::track::TrackedIo;
use crate::conn::TlsStream;

type Io = TokioIo<TrackedIo<TlsStream>>;
type Served = Result<(), Box<dyn StdError + Send + Sync>>;

/// `builder.serve_connection_with_upgrades(io, service)`, made on the first bytes the client
/// sends. With upgrades: a service that answers `101` (the proxy's WebSocket tunnel) takes the
/// connection over; the others never do.
pub(super) struct LazyConnection<'b, S: HttpService<Incoming>> {
    builder: &'b auto::Builder<TokioExecutor>,
    state: State<'b, S>,
}

enum State<'b, S: HttpService<Incoming>> {
    Waiting(Io, S),
    // Boxed: made only now, so an idle connection never pays for it.
    Serving(Pin<Box<auto::UpgradeableConnection<'b, Io, S, TokioExecutor>>>),
    /// Shut down before the client said anything.
    Cancelled,
}

impl<'b, S: HttpService<Incoming>> LazyConnection<'b, S> {
    pub(super) fn new(builder: &'b auto::Builder<TokioExecutor>, io: Io, service: S) -> Self {
        Self {
            builder,
            state: State::Waiting(io, service),
        }
    }
}

impl<S, B> LazyConnection<'_, S>
where
    S: Service<Request<Incoming>, Response = Response<B>>,
    S::Future: 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body<Data = Bytes> + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
    TokioExecutor: auto::HttpServerConnExec<S::Future, B>,
{
    /// Polls the connection to its end, making it first once the client has sent something.
    pub(super) fn poll_serve(&mut self, cx: &mut Context<'_>) -> Poll<Served> {
        if let State::Waiting(io, _) = &mut self.state {
            // A read error ends the connection here: rustls has queued its fatal alert (sent by
            // `poll_peer_sent`), and it would not report the error again until more bytes came,
            // so hyper would sit on the connection until the first-request timeout. The
            // client's close shows to hyper at its first read.
            if let Err(error) = ready!(io.inner_mut().stream_mut().poll_peer_sent(cx)) {
                self.state = State::Cancelled;
                return Poll::Ready(Err(error.into()));
            }
            if let State::Waiting(io, service) =
                std::mem::replace(&mut self.state, State::Cancelled)
            {
                let connection = self.builder.serve_connection_with_upgrades(io, service);
                self.state = State::Serving(Box::pin(connection));
            }
        }
        match &mut self.state {
            State::Serving(connection) => connection.as_mut().poll(cx),
            State::Cancelled | State::Waiting(..) => {
                Poll::Ready(Err(
                    io::Error::new(io::ErrorKind::Interrupted, "Cancelled").into()
                ))
            }
        }
    }

    /// Serves to the end.
    pub(super) async fn finish(&mut self) -> Served {
        std::future::poll_fn(|cx| self.poll_serve(cx)).await
    }

    /// As hyper's: the request in flight finishes, then the connection closes. One still waiting
    /// for its first bytes ends as hyper's would (with `Interrupted`).
    pub(super) fn graceful_shutdown(&mut self) {
        match &mut self.state {
            State::Serving(connection) => connection.as_mut().graceful_shutdown(),
            State::Waiting(..) => self.state = State::Cancelled,
            State::Cancelled => {}
        }
    }
}
