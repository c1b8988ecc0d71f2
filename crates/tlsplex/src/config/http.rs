//! `[server.http]`: the timeouts and sizes of a server's HTTP connections.

use super::error::Problems;
use super::file::HttpFile;
use super::value::duration;
use crate::handler::HttpLimits;

/// The most `max_request_headers` may be: beyond it the limit no longer bounds much.
const MAX_REQUEST_HEADERS: usize = 1000;

/// `[server.http]` into limits, defaults where a key is absent; `None` if any key is wrong.
pub(super) fn validate_http(
    raw: Option<&HttpFile>,
    label: &str,
    problems: &mut Problems,
) -> Option<HttpLimits> {
    let mut limits = HttpLimits::default();
    let Some(raw) = raw else {
        return Some(limits);
    };
    let mut ok = true;
    let timeouts = [
        (
            "http.first_request_timeout",
            &raw.first_request_timeout,
            &mut limits.first_request_timeout,
        ),
        (
            "http.request_header_timeout",
            &raw.request_header_timeout,
            &mut limits.request_header_timeout,
        ),
        (
            "http.idle_timeout",
            &raw.idle_timeout,
            &mut limits.idle_timeout,
        ),
        (
            "http.send_timeout",
            &raw.send_timeout,
            &mut limits.send_timeout,
        ),
        (
            "http.http2_keep_alive_interval",
            &raw.http2_keep_alive_interval,
            &mut limits.http2_keep_alive_interval,
        ),
    ];
    for (key, text, slot) in timeouts {
        let Some(text) = text else { continue };
        match duration(Some(text), true, &mut |m| problems.server(label, key, m)) {
            Some(value) => *slot = value,
            None => ok = false,
        }
    }
    if let Some(bytes) = raw.max_request_header_bytes {
        let min = crate::handler::MIN_HEADER_BYTES;
        if bytes < min {
            problems.server(
                label,
                "http.max_request_header_bytes",
                format!("must be at least {min}"),
            );
            ok = false;
        }
        limits.max_request_header_bytes = bytes;
    }
    if let Some(count) = raw.max_request_headers {
        if !(1..=MAX_REQUEST_HEADERS).contains(&count) {
            problems.server(
                label,
                "http.max_request_headers",
                format!("must be 1 to {MAX_REQUEST_HEADERS}"),
            );
            ok = false;
        }
        limits.max_request_headers = count;
    }
    if let Some(streams) = raw.max_concurrent_streams {
        if streams == 0 {
            problems.server(label, "http.max_concurrent_streams", "must be at least 1");
            ok = false;
        }
        limits.max_concurrent_streams = streams;
    }
    if let Some(bytes) = raw.max_buffered_response_bytes {
        if bytes < 1024 {
            problems.server(
                label,
                "http.max_buffered_response_bytes",
                "must be at least 1024",
            );
            ok = false;
        }
        limits.max_buffered_response_bytes = bytes;
    }
    ok.then_some(limits)
}
