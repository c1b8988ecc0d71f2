//! hyper's connection builder for a set of limits, made once and shared: it is immutable once
//! made, and 10,000 servers with the same limits each holding a copy cost ~500 bytes a server.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto::Builder;

use super::limits::{HttpLimits, DEFAULT_MAX_REQUEST_HEADERS, MIN_HEADER_BYTES};

/// What a builder is made of: the limits hyper enforces itself, and whether HTTP/2 clients may
/// open tunnels (RFC 8441).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Shape {
    header_bytes: usize,
    max_headers: usize,
    streams: u32,
    ping: Duration,
    tunnels: bool,
}

/// The builder for `limits`, shared with every other HTTP server of the process that has the
/// same shape.
pub(super) fn shared(limits: &HttpLimits, tunnels: bool) -> Arc<Builder<TokioExecutor>> {
    static BUILT: LazyLock<Mutex<HashMap<Shape, Weak<Builder<TokioExecutor>>>>> =
        LazyLock::new(Mutex::default);
    let shape = Shape {
        header_bytes: limits.max_request_header_bytes,
        max_headers: limits.max_request_headers,
        streams: limits.max_concurrent_streams,
        ping: limits.http2_keep_alive_interval,
        tunnels,
    };
    let mut built = BUILT.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(builder) = built.get(&shape).and_then(Weak::upgrade) {
        return builder;
    }
    // Shapes no server uses any more go, now and then: at most twice as many as are in use.
    if built.len() >= 16 && built.len().is_power_of_two() {
        built.retain(|_, builder| builder.strong_count() > 0);
    }
    let builder = Arc::new(make(shape));
    built.insert(shape, Arc::downgrade(&builder));
    builder
}

fn make(shape: Shape) -> Builder<TokioExecutor> {
    let mut http = Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        // Request heads are timed by the watchdog (`activity.rs`): hyper's own timer starts when
        // a keep-alive connection begins to wait, so it would cut the idle time short.
        .header_read_timeout(None)
        .max_buf_size(shape.header_bytes.max(MIN_HEADER_BYTES));
    if shape.max_headers != DEFAULT_MAX_REQUEST_HEADERS {
        // Set only when it differs: hyper then parses into a heap buffer per request.
        http.http1().max_headers(shape.max_headers);
    }
    http.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(shape.streams)
        .max_header_list_size(u32::try_from(shape.header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(shape.ping)
        .keep_alive_timeout(shape.ping.min(Duration::from_secs(20)));
    if shape.tunnels {
        http.http2().enable_connect_protocol();
    }
    http
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_with_the_same_shape_share_one_builder() {
        let limits = HttpLimits::default();
        let (a, b) = (shared(&limits, false), shared(&limits, false));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &shared(&limits, true)));
        let timeouts = HttpLimits {
            idle_timeout: Duration::from_secs(1),
            ..limits
        };
        assert!(
            Arc::ptr_eq(&a, &shared(&timeouts, false)),
            "timeouts are not hyper's"
        );
        let streams = HttpLimits {
            max_concurrent_streams: 7,
            ..limits
        };
        assert!(!Arc::ptr_eq(&a, &shared(&streams, false)));
    }
}
