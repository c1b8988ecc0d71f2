//! One access-log event per proxied request, written when its response body is done (or
//! dropped: the client went away): who asked what, what came back from which backend, the bytes
//! each way, the time to the response head and in all, and the request id the backend saw.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::Frame;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, StatusCode, Version};

use super::ProxyBody;
use crate::handler::ConnInfo;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The header carrying a request's id to the backend.
pub(super) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id: the client's `X-Request-Id` when it is a plain token (at most 128
/// visible ASCII characters), else a new one, set on the request either way.
pub(super) fn request_id(headers: &mut HeaderMap) -> HeaderValue {
    let given = headers.get(&REQUEST_ID).filter(|v| {
        let bytes = v.as_bytes();
        !bytes.is_empty() && bytes.len() <= 128 && bytes.iter().all(|b| b.is_ascii_graphic())
    });
    if let Some(id) = given {
        return id.clone();
    }
    let mut hex = [0u8; 32];
    for (pair, byte) in hex.chunks_exact_mut(2).zip(new_request_id()) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0xf)];
    }
    let id = HeaderValue::from_bytes(&hex).unwrap_or(HeaderValue::from_static("-"));
    headers.insert(REQUEST_ID, id.clone());
    id
}

/// A new request id: a random half drawn once per process, and the process's request count
/// through a bijection keyed by random numbers, so ids are unique within a process, differ
/// between processes, and do not show the count. Not a secret: one random draw per request was
/// 1.5 % of a proxied request's CPU.
fn new_request_id() -> [u8; 16] {
    static KEYS: OnceLock<[u64; 3]> = OnceLock::new();
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let [process, multiplier, offset] = *KEYS.get_or_init(|| {
        let mut random = [0u8; 24];
        let _ = aws_lc_rs::rand::fill(&mut random);
        let key = |i: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&random[i * 8..i * 8 + 8]);
            u64::from_le_bytes(bytes)
        };
        // An odd multiplier makes the map a bijection of the 64-bit counts.
        [key(0), key(1) | 1, key(2)]
    });
    let count = COUNT.fetch_add(1, Ordering::Relaxed);
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&process.to_be_bytes());
    id[8..].copy_from_slice(
        &count
            .wrapping_mul(multiplier)
            .wrapping_add(offset)
            .to_be_bytes(),
    );
    id
}

/// What is known of a request when it arrives.
pub(super) struct RequestLog {
    pub(super) started: Instant,
    pub(super) info: Arc<ConnInfo>,
    pub(super) version: Version,
    pub(super) method: Method,
    pub(super) target: String,
    pub(super) request_id: Option<HeaderValue>,
    /// Request body bytes sent on to the backend so far.
    pub(super) received: Arc<AtomicU64>,
}

impl RequestLog {
    /// The request body, counted into this log as it streams.
    pub(super) fn count_request(&self, body: ProxyBody) -> ProxyBody {
        let received = self.received.clone();
        body.map_frame(move |frame: Frame<Bytes>| {
            if let Some(data) = frame.data_ref() {
                received.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
            frame
        })
        .boxed()
    }

    /// `body` (the response), logging the exchange once it is done or dropped.
    pub(super) fn finish_with(
        self,
        status: StatusCode,
        backend: Option<Arc<str>>,
        body: ProxyBody,
    ) -> ProxyBody {
        let mut done = Done {
            log: self,
            status,
            backend,
            ttfb_ms: 0,
            sent: 0,
        };
        done.ttfb_ms = millis(done.log.started);
        body.map_frame(move |frame: Frame<Bytes>| {
            if let Some(data) = frame.data_ref() {
                done.count(data.len());
            }
            frame
        })
        .boxed()
    }
}

fn millis(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// A request with its answer, logged when the response body goes.
struct Done {
    log: RequestLog,
    status: StatusCode,
    backend: Option<Arc<str>>,
    ttfb_ms: u64,
    sent: u64,
}

impl Done {
    fn count(&mut self, bytes: usize) {
        self.sent += bytes as u64;
    }
}

impl Drop for Done {
    fn drop(&mut self) {
        let log = &self.log;
        let info = &log.info;
        tracing::info!(
            target: "tlsplex::access",
            server = %info.server,
            route = info.route.as_deref().unwrap_or(""),
            client.addr = %info.peer_addr,
            http.version = ?log.version,
            http.method = %log.method,
            http.target = %log.target,
            http.status = self.status.as_u16(),
            backend = self.backend.as_deref().unwrap_or(""),
            bytes.received = log.received.load(Ordering::Relaxed),
            bytes.sent = self.sent,
            ttfb_ms = self.ttfb_ms,
            duration_ms = millis(log.started),
            request_id = log
                .request_id
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
            "request"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_new_hex_for_each_request_and_a_plain_given_one_is_kept() {
        let made: Vec<HeaderValue> = (0..1000)
            .map(|_| request_id(&mut HeaderMap::new()))
            .collect();
        for id in &made {
            let id = id.as_bytes();
            assert!(
                id.len() == 32 && id.iter().all(u8::is_ascii_hexdigit),
                "{id:?}"
            );
        }
        let distinct: std::collections::HashSet<_> = made.iter().collect();
        assert_eq!(distinct.len(), made.len());
        // Ids do not count up in the open: consecutive ones differ beyond their last digits.
        assert_ne!(made[0].as_bytes()[16..30], made[1].as_bytes()[16..30]);

        let mut given = HeaderMap::new();
        given.insert(REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&mut given), "abc-123");
        let mut bad = HeaderMap::new();
        bad.insert(REQUEST_ID, HeaderValue::from_static("two words"));
        let replaced = request_id(&mut bad);
        assert_ne!(replaced, "two words");
        assert_eq!(bad.get(REQUEST_ID), Some(&replaced));
    }
}
