//! Response compression (`compress = true`): gzip or brotli as the request's `Accept-Encoding`
//! prefers, by tower-http's layer: it adds `Vary: Accept-Encoding`, and leaves alone responses
//! that already have a `Content-Encoding` or a `Content-Range`, bodies under 32 bytes, images
//! (but SVG), gRPC and event streams. Level 5 for both, as a proxy compresses on the fly (brotli's
//! own default, 11, costs several times the CPU for a few percent).

use std::future::Future;
use std::task::{Context, Poll};

use hyper::body::Body;
use hyper::{Request, Response};
use tower_http::compression::predicate::DefaultPredicate;
use tower_http::compression::{Compression, CompressionBody, CompressionLevel, ResponseFuture};

/// A service whose responses are compressed.
pub(super) struct Compressed<S>(pub(super) S);

impl<S, R, B> hyper::service::Service<Request<R>> for Compressed<S>
where
    S: hyper::service::Service<Request<R>, Response = Response<B>>,
    B: Body,
{
    type Response = Response<CompressionBody<B>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, DefaultPredicate>;

    fn call(&self, request: Request<R>) -> Self::Future {
        // The layer is a few flags: made per request around a borrow of the service, so its
        // future owns nothing of it.
        let mut layer = Compression::new(AsTower(&self.0))
            .gzip(true)
            .br(true)
            .quality(CompressionLevel::Precise(5));
        tower_service::Service::call(&mut layer, request)
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

/// `answer`'s response to `request`, compressed as the request's `Accept-Encoding` allows (for
/// answers chosen per request, as path rules choose them).
pub(crate) fn compressed<F, A, B>(
    answer: &F,
    request: Request<hyper::body::Incoming>,
) -> impl Future<Output = Response<CompressionBody<B>>> + Send + 'static
where
    F: Fn(Request<hyper::body::Incoming>) -> A + ?Sized,
    A: Future<Output = Response<B>> + Unpin + Send + 'static,
    B: Body + Send + 'static,
{
    use hyper::service::Service as _;
    let future = Compressed(AnswerFn(answer)).call(request);
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
