//! `HttpLimits`: how long and how much an HTTP client may take, in one place (nginx's
//! `client_header_timeout`, `keepalive_timeout`, `send_timeout`, `large_client_header_buffers`,
//! `http2_max_concurrent_streams`; HAProxy's `timeout http-request`, `timeout http-keep-alive`).

use std::time::Duration;

/// Timeouts and sizes one server's HTTP connections are held to. Every built-in HTTP handler
/// (`status`, `static`) and [`crate::handler::HttpHandler`] applies them.
///
/// # Defaults
/// | limit | default | what happens past it |
/// |---|---|---|
/// | `first_request_timeout` | 10 s | no request yet after the handshake: closed |
/// | `request_header_timeout` | 10 s | HTTP/1 request head started but not finished: closed |
/// | `idle_timeout` | 60 s | no request open (keep-alive, or an HTTP/2 connection without streams): closed (HTTP/2 with GOAWAY) |
/// | `send_timeout` | 30 s | a response waits for the client and nothing could be written: closed |
/// | `http2_keep_alive_interval` | 30 s | a PING after this long without frames; no answer within 20 s: closed |
/// | `max_request_header_bytes` | 32 KiB | HTTP/1: `431`; HTTP/2: the stream is refused |
/// | `max_request_headers` | 100 | header fields in one request (HTTP/1 and HTTP/2): `431` |
/// | `max_concurrent_streams` | 100 | HTTP/2 streams open at once (`SETTINGS_MAX_CONCURRENT_STREAMS`) |
/// | `max_buffered_response_bytes` | 64 KiB | response bytes produced but not yet written: bodies wait |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpLimits {
    /// From the end of the handshake to the first complete request head.
    pub first_request_timeout: Duration,
    /// From the first byte of a later HTTP/1 request head to its end.
    pub request_header_timeout: Duration,
    /// With no request open, how long a connection may stay.
    pub idle_timeout: Duration,
    /// How long a response may wait on a client that takes nothing (a full socket, a zero
    /// HTTP/2 window).
    pub send_timeout: Duration,
    /// HTTP/2 keep-alive PING interval (and 20 s, or this if shorter, for the answer).
    pub http2_keep_alive_interval: Duration,
    /// The largest HTTP/1 request head (request line and headers) or HTTP/2 header list.
    pub max_request_header_bytes: usize,
    /// The most header fields one request may carry, HTTP/1 or HTTP/2 (pseudo-headers aside);
    /// beyond it `431`. Many tiny fields fit under the byte limit and each costs the server
    /// work: 900 one-byte HTTP/2 headers took 370 µs of CPU a request against 40 for a bare one.
    pub max_request_headers: usize,
    /// HTTP/2 streams a client may open at once.
    pub max_concurrent_streams: u32,
    /// Response bytes a connection may hold that the client has not taken yet; beyond it,
    /// response bodies wait before producing more.
    pub max_buffered_response_bytes: usize,
}

impl HttpLimits {
    /// The shortest of the timeouts the watchdog enforces (at least a millisecond).
    pub(crate) fn shortest_timeout(&self) -> Duration {
        [
            self.first_request_timeout,
            self.request_header_timeout,
            self.idle_timeout,
            self.send_timeout,
        ]
        .into_iter()
        .min()
        .unwrap_or(self.idle_timeout)
        .max(Duration::from_millis(1))
    }
}

/// [`HttpLimits::max_request_headers`] when not told otherwise: hyper's HTTP/1 default, and
/// nginx's and Apache's order (Apache: 100 fields).
pub(crate) const DEFAULT_MAX_REQUEST_HEADERS: usize = 100;

/// hyper's smallest HTTP/1 buffer.
pub(crate) const MIN_HEADER_BYTES: usize = 8 * 1024;

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            first_request_timeout: Duration::from_secs(10),
            request_header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(30),
            http2_keep_alive_interval: Duration::from_secs(30),
            max_request_header_bytes: 32 * 1024,
            max_request_headers: DEFAULT_MAX_REQUEST_HEADERS,
            max_concurrent_streams: 100,
            max_buffered_response_bytes: 64 * 1024,
        }
    }
}
