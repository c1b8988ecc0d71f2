//! Response compression (`compress = true`): gzip or brotli as the request's `Accept-Encoding`
//! prefers, by tower-http's layer: it adds `Vary: Accept-Encoding`, and leaves alone responses
//! that already have a `Content-Encoding` or a `Content-Range`, bodies under 32 bytes, images
//! (but SVG), gRPC and event streams. Level 5 for both, as a proxy compresses on the fly (brotli's
//! own default, 11, costs several times the CPU for a few percent).

//!
//! An encoder's state is large (brotli's about 2 MiB, gzip's a few hundred KiB) and lives as long
//! as its response, which a client can hold open at a zero HTTP/2 window: 100 such streams cost
//! 214 MiB per connection before this bound. So at most [`COMPRESSING_PER_CONNECTION`] responses
//! of a connection and [`COMPRESSING_IN_PROCESS`] of the process are compressed at once; the
//! others are sent as they are (with `Vary: Accept-Encoding` all the same), which HTTP allows.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Either;
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::{HeaderValue, VARY};
use hyper::{Request, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_http::compression::predicate::DefaultPredicate;
use tower_http::compression::{Compression, CompressionBody, CompressionLevel, ResponseFuture};

/// Responses of one connection compressed at once, at most.
pub const COMPRESSING_PER_CONNECTION: usize = 2;

/// Responses of the whole process compressed at once, at most (about 70 MiB of encoders).
pub const COMPRESSING_IN_PROCESS: usize = 32;

fn in_process() -> &'static Arc<Semaphore> {
    static ENCODERS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    ENCODERS.get_or_init(|| Arc::new(Semaphore::new(COMPRESSING_IN_PROCESS)))
}

/// One connection's share of encoders.
#[derive(Clone)]
pub(crate) struct Encoders(Arc<Semaphore>);

impl Encoders {
    pub(crate) fn new() -> Self {
        Self(Arc::new(Semaphore::new(COMPRESSING_PER_CONNECTION)))
    }

    /// A place for one more encoder, if the connection and the process have room.
    fn take(&self) -> Option<EncoderPermit> {
        let connection = self.0.clone().try_acquire_owned().ok()?;
        let process = in_process().clone().try_acquire_owned().ok()?;
        Some(EncoderPermit {
            _connection: connection,
            _process: process,
        })
    }
}

/// Held by a compressed body until it is dropped (the places are given back then).
struct EncoderPermit {
    _connection: OwnedSemaphorePermit,
    _process: OwnedSemaphorePermit,
}

/// A service whose responses are compressed, as far as there are encoders.
pub(super) struct Compressed<S> {
    pub(super) inner: S,
    pub(super) encoders: Encoders,
}

impl<S> Compressed<S> {
    /// `inner` compressed, with a connection's own share of encoders.
    pub(super) fn new(inner: S) -> Self {
        Self {
            inner,
            encoders: Encoders::new(),
        }
    }
}

/// A response body: compressed (holding its encoder's place) or as it was.
pub(crate) type MaybeCompressed<B> = Either<Permitted<CompressionBody<B>>, B>;

impl<S, R, B> hyper::service::Service<Request<R>> for Compressed<S>
where
    S: hyper::service::Service<Request<R>, Response = Response<B>>,
    B: Body,
{
    type Response = Response<MaybeCompressed<B>>;
    type Error = S::Error;
    type Future = CompressedFuture<S::Future>;

    fn call(&self, request: Request<R>) -> Self::Future {
        let Some(permit) = self.encoders.take() else {
            return CompressedFuture::Plain {
                inner: self.inner.call(request),
            };
        };
        // The layer is a few flags: made per request around a borrow of the service, so its
        // future owns nothing of it.
        let mut layer = Compression::new(AsTower(&self.inner))
            .gzip(true)
            .br(true)
            .quality(CompressionLevel::Precise(5));
        CompressedFuture::Compressing {
            inner: tower_service::Service::call(&mut layer, request),
            permit: Some(permit),
        }
    }
}

pin_project_lite::pin_project! {
    /// [`Compressed`]'s future.
    #[project = CompressedProj]
    pub(super) enum CompressedFuture<F> {
        Compressing {
            #[pin] inner: ResponseFuture<F, DefaultPredicate>,
            permit: Option<EncoderPermit>,
        },
        Plain { #[pin] inner: F },
    }
}

impl<F, B, E> Future for CompressedFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
{
    type Output = Result<Response<MaybeCompressed<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            CompressedProj::Compressing { inner, permit } => {
                let response = std::task::ready!(inner.poll(cx))?;
                let permit = permit.take();
                Poll::Ready(Ok(response.map(|body| {
                    Either::Left(Permitted {
                        inner: body,
                        _permit: permit,
                    })
                })))
            }
            CompressedProj::Plain { inner } => {
                let mut response = std::task::ready!(inner.poll(cx))?;
                // It could have been compressed: caches must still tell the encodings apart.
                (response.headers_mut()).append(VARY, HeaderValue::from_static("accept-encoding"));
                Poll::Ready(Ok(response.map(Either::Right)))
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A compressed body, with its place among the encoders.
    pub(crate) struct Permitted<B> {
        #[pin]
        inner: B,
        _permit: Option<EncoderPermit>,
    }
}

impl<B: Body<Data = Bytes>> Body for Permitted<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A hyper service seen as a tower one, which tower-http's layers wrap.
struct AsTower<'a, S>(&'a S);

impl<S, R> tower_service::Service<R> for AsTower<'_, S>
where
    S: hyper::service::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.0.call(request)
    }
}

/// `answer`'s response to `request`, compressed as the request's `Accept-Encoding` allows and
/// `encoders` have room (for answers chosen per request, as path rules choose them).
pub(crate) fn compressed<F, A, B>(
    answer: &F,
    request: Request<hyper::body::Incoming>,
    encoders: &Encoders,
) -> impl Future<Output = Response<MaybeCompressed<B>>> + Send + 'static
where
    F: Fn(Request<hyper::body::Incoming>) -> A + ?Sized,
    A: Future<Output = Response<B>> + Unpin + Send + 'static,
    B: Body + Send + 'static,
{
    use hyper::service::Service as _;
    let service = Compressed {
        inner: AnswerFn(answer),
        encoders: encoders.clone(),
    };
    let future = service.call(request);
    async move {
        match future.await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }
}

/// A function answering requests, seen as a hyper service that never fails.
struct AnswerFn<'a, F: ?Sized>(&'a F);

impl<F: ?Sized, R, A> hyper::service::Service<R> for AnswerFn<'_, F>
where
    F: Fn(R) -> A,
    A: Future + Unpin,
{
    type Response = A::Output;
    type Error = std::convert::Infallible;
    type Future = Answered<A>;

    fn call(&self, request: R) -> Self::Future {
        Answered((self.0)(request))
    }
}

/// An answer as a service's result.
struct Answered<A>(A);

impl<A: Future + Unpin> Future for Answered<A> {
    type Output = Result<A::Output, std::convert::Infallible>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx).map(Ok)
    }
}
