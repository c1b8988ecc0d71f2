//! The wrappers that report a connection's [`Activity`]: around its stream ([`TrackedIo`]), its
//! service ([`TrackedService`]: requests, the RFC 9112 `Host` rule and the header count) and each response body
//! ([`TrackedBody`]: waiting on the client, and the unsent-bytes budget).

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body_util::{Either, Empty};
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::{CONTENT_LENGTH, HOST, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode, Version};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::activity::Activity;
use super::edits::HeaderEdits;
use super::flood::FrameCounter;
use crate::metrics::ServerMetrics;
use crate::rate::RateTable;

pin_project_lite::pin_project! {
    /// A connection's stream, reporting reads and writes, and counting HTTP/2 frames.
    pub(crate) struct TrackedIo<T> {
        #[pin]
        inner: T,
        activity: Arc<Activity>,
        protocol: Protocol,
    }
}

/// What the client's first bytes say it speaks.
enum Protocol {
    /// This many bytes of the HTTP/2 preface matched so far; the counter has seen them too.
    Detecting(usize, FrameCounter),
    Http2(FrameCounter),
    Http1,
}

/// Enough of the HTTP/2 preface to tell it from any HTTP/1 request.
const H2_PREFACE_START: &[u8] = b"PRI * HTTP/2.0";

impl Protocol {
    /// Reads `bytes`; `true` once an HTTP/2 client floods. `on_http2` runs once it is known.
    fn read(&mut self, bytes: &[u8], on_http2: impl FnOnce()) -> bool {
        if let Self::Detecting(matched, counter) = self {
            let wanted = &H2_PREFACE_START[*matched..];
            let n = wanted.len().min(bytes.len());
            if bytes[..n] != wanted[..n] {
                *self = Self::Http1;
                return false;
            }
            *matched += n;
            let flooding = counter.read(bytes);
            if *matched == H2_PREFACE_START.len() {
                let counter = std::mem::replace(counter, FrameCounter::new());
                *self = Self::Http2(counter);
                on_http2();
            }
            return flooding;
        }
        match self {
            Self::Http2(counter) => counter.read(bytes),
            _ => false,
        }
    }

    fn wrote(&mut self, n: usize) {
        if let Self::Http2(counter) = self {
            counter.wrote(n);
        }
    }
}

impl<T> TrackedIo<T> {
    pub(crate) fn new(inner: T, activity: Arc<Activity>) -> Self {
        Self {
            inner,
            activity,
            protocol: Protocol::Detecting(0, FrameCounter::new()),
        }
    }

    /// The stream, to look at without reading (nothing is reported).
    pub(super) fn stream_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

impl<T: AsyncRead> AsyncRead for TrackedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let read = this.inner.poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = read {
            let new = &buf.filled()[before..];
            if !new.is_empty() {
                let activity = &**this.activity;
                if this.protocol.read(new, || activity.http2()) {
                    tracing::info!("http2 flood detected: closing the connection");
                    return Poll::Ready(Err(io::Error::other("http2 flood detected")));
                }
                activity.read();
            }
        }
        read
    }
}

impl<T: AsyncWrite> AsyncWrite for TrackedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        report(
            this.activity,
            this.protocol,
            this.inner.poll_write(cx, data),
        )
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        report(
            this.activity,
            this.protocol,
            this.inner.poll_write_vectored(cx, bufs),
        )
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let flushed = this.inner.poll_flush(cx);
        if flushed.is_pending() {
            this.activity.wrote(0);
        }
        flushed
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

fn report(
    activity: &Activity,
    protocol: &mut Protocol,
    written: Poll<io::Result<usize>>,
) -> Poll<io::Result<usize>> {
    match &written {
        Poll::Ready(Ok(n)) if *n > 0 => {
            activity.wrote(*n);
            protocol.wrote(*n);
        }
        Poll::Pending => activity.wrote(0),
        _ => {}
    }
    written
}

/// A request open on the connection, from its head until its response body is done or dropped.
struct OpenRequest(Arc<Activity>);

impl OpenRequest {
    fn new(activity: &Arc<Activity>) -> Self {
        activity.request_started();
        Self(activity.clone())
    }
}

impl Drop for OpenRequest {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

/// The body a tracked service answers with: the application's, or an empty one for a request
/// refused before it reached the application.
pub(crate) type AnyBody<B> = TrackedBody<Either<B, Empty<Bytes>>>;

/// A service whose requests and responses are tracked.
pub(crate) struct TrackedService<S> {
    pub(crate) inner: S,
    pub(crate) activity: Arc<Activity>,
    /// More header fields than this get 431 (hyper enforces it itself for HTTP/1).
    pub(crate) max_headers: usize,
    pub(crate) hosts: HostRule,
    /// Where responses are counted (by status class) and timed.
    pub(crate) metrics: Arc<ServerMetrics>,
    /// The route the connection took, for the per-route counts.
    pub(crate) route: Option<Arc<str>>,
    /// The operator's edits to every response the service gives.
    pub(crate) response_headers: Option<Arc<HeaderEdits>>,
    /// The client's address is refused (`access`): every request gets 403.
    pub(crate) forbidden: bool,
    /// The server's requests per second per client address, and this client's address.
    pub(crate) rate: Option<(Arc<RateTable>, IpAddr)>,
}

/// Which hosts a connection's requests may name.
pub(crate) enum HostRule {
    Any,
    /// `strict_sni_host`: only the SNI the client sent (`None`: it sent none, so only an IP
    /// address); another gets `421 Misdirected Request`, as RFC 9110 §15.5.20 has it.
    Sni(Option<String>),
}

impl HostRule {
    fn allows<B>(&self, request: &Request<B>) -> bool {
        match self {
            Self::Any => true,
            Self::Sni(sni) => crate::host::request_host(request.uri(), request.headers())
                .is_some_and(|host| crate::host::matches_sni(host, sni.as_deref())),
        }
    }
}

impl<S, B> hyper::service::Service<Request<hyper::body::Incoming>> for TrackedService<S>
where
    S: hyper::service::Service<Request<hyper::body::Incoming>, Response = Response<B>>,
    B: Body,
{
    type Response = Response<AnyBody<B>>;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn call(&self, request: Request<hyper::body::Incoming>) -> Self::Future {
        let open = OpenRequest::new(&self.activity);
        if let Some((rate, client)) = &self.rate {
            if let Err(wait) = rate.take(*client, std::time::Instant::now()) {
                Answered::new(&self.metrics, self.route.as_ref())
                    .answer(StatusCode::TOO_MANY_REQUESTS);
                return TrackedFuture::Refused {
                    open: Some(open),
                    status: StatusCode::TOO_MANY_REQUESTS,
                    // Whole seconds, rounded up (RFC 9110 §10.2.3).
                    retry_after: Some(wait.as_secs() + u64::from(wait.subsec_nanos() > 0)),
                };
            }
        }
        if self.forbidden {
            return self.refuse(open, StatusCode::FORBIDDEN);
        }
        // RFC 9112 §3.2: an HTTP/1.1 request without exactly one Host is answered 400.
        let hosts = request.headers().get_all(HOST).iter().count();
        if request.version() == Version::HTTP_11 && hosts != 1 {
            return self.refuse(open, StatusCode::BAD_REQUEST);
        }
        if request.headers().len() > self.max_headers {
            return self.refuse(open, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        }
        if !self.hosts.allows(&request) {
            return self.refuse(open, StatusCode::MISDIRECTED_REQUEST);
        }
        let head = request.method() == Method::HEAD;
        TrackedFuture::Called {
            inner: self.inner.call(request),
            open: Some(open),
            head,
            answered: Answered::new(&self.metrics, self.route.as_ref()),
            edits: self.response_headers.clone(),
        }
    }
}

impl<S> TrackedService<S> {
    fn refuse<F>(&self, open: OpenRequest, status: StatusCode) -> TrackedFuture<F> {
        Answered::new(&self.metrics, self.route.as_ref()).answer(status);
        TrackedFuture::Refused {
            open: Some(open),
            status,
            retry_after: None,
        }
    }
}

/// Counts a request's response head in the server's metrics, with the time it took.
pub(crate) struct Answered {
    metrics: Arc<ServerMetrics>,
    route: Option<Arc<str>>,
    since: Instant,
}

impl Answered {
    fn new(metrics: &Arc<ServerMetrics>, route: Option<&Arc<str>>) -> Self {
        Self {
            metrics: metrics.clone(),
            route: route.cloned(),
            since: Instant::now(),
        }
    }

    fn answer(&self, status: StatusCode) {
        let elapsed = self.since.elapsed();
        self.metrics.answered(status, self.route.as_ref(), elapsed);
    }
}

pin_project_lite::pin_project! {
    /// The service's future; the response it yields carries the open request along.
    #[project = TrackedFutureProj]
    pub(crate) enum TrackedFuture<F> {
        // `head`: the answer to a HEAD request, whose body is never sent (hyper's HTTP/2 would
        // send it, and clients reset the stream).
        Called {
            #[pin] inner: F,
            open: Option<OpenRequest>,
            head: bool,
            answered: Answered,
            edits: Option<Arc<HeaderEdits>>,
        },
        Refused { open: Option<OpenRequest>, status: StatusCode, retry_after: Option<u64> },
    }
}

impl<F, B, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
{
    type Output = Result<Response<AnyBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            TrackedFutureProj::Called {
                inner,
                open,
                head,
                answered,
                edits,
            } => {
                let mut response = std::task::ready!(inner.poll(cx))?;
                if let Some(edits) = edits {
                    edits.apply(response.headers_mut());
                }
                let Some(open) = open.take() else {
                    return Poll::Pending; // polled after completion: never again
                };
                answered.answer(response.status());
                if !*head {
                    return Poll::Ready(Ok(
                        response.map(|body| TrackedBody::new(Either::Left(body), open))
                    ));
                }
                // The length a GET would have had, then no body.
                let (mut parts, body) = response.into_parts();
                if let Some(length) = body.size_hint().exact() {
                    parts.headers.entry(CONTENT_LENGTH).or_insert(length.into());
                }
                let body = TrackedBody::new(Either::Right(Empty::new()), open);
                Poll::Ready(Ok(Response::from_parts(parts, body)))
            }
            TrackedFutureProj::Refused {
                open,
                status,
                retry_after,
            } => {
                let Some(open) = open.take() else {
                    return Poll::Pending;
                };
                let mut response =
                    Response::new(TrackedBody::new(Either::Right(Empty::new()), open));
                *response.status_mut() = *status;
                if let Some(seconds) = retry_after {
                    response
                        .headers_mut()
                        .insert(RETRY_AFTER, (*seconds).into());
                }
                Poll::Ready(Ok(response))
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that reports when it waits on the client and holds back once the
    /// connection holds its budget of unsent bytes.
    pub(crate) struct TrackedBody<B> {
        #[pin]
        inner: B,
        open: OpenRequest,
        waiting: bool,
    }

    impl<B> PinnedDrop for TrackedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if *this.waiting {
                this.open.0.body_taken();
            }
        }
    }
}

impl<B> TrackedBody<B> {
    fn new(inner: B, open: OpenRequest) -> Self {
        open.0.body_waiting();
        Self {
            inner,
            open,
            waiting: true,
        }
    }
}

impl<B: Body> Body for TrackedBody<B>
where
    B::Data: Buf,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let activity = &this.open.0;
        if !activity.may_produce(cx.waker()) {
            return Poll::Pending; // still waiting on the client
        }
        if std::mem::take(this.waiting) {
            activity.body_taken();
        }
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                activity.produced(data.remaining());
            }
            *this.waiting = true;
            activity.body_waiting();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
