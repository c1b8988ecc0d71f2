//! A connection closes right after its fatal alert, whatever its protocol, handler and state:
//! junk records sent after the handshake (application data with a bad tag, a
//! ChangeCipherSpec, a handshake record in the clear), TLS 1.3 and 1.2, ALPN none, `http/1.1`
//! and `h2`, before and after a first request. Before the fix, a connection that had sent no
//! request yet stayed open until `first_request_timeout` (EOF at 9.8 s).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rustls::version::{TLS12, TLS13};
use rustls::SupportedProtocolVersion;
use tlsplex::handler::{Backend, ForwardOptions, HttpLimits};
use tlsplex::{Context, ServerOptions, TlsPolicy};
use tlsplex_testkit::{any_port, connect, echo_backend, read_response, start, TestPki};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Far longer than a close should take: a connection still open then waited for it.
const FIRST_REQUEST: Duration = Duration::from_secs(5);
/// What a close may take here (debug build, two cores shared with the test); in practice a few
/// milliseconds.
const PROMPTLY: Duration = Duration::from_millis(500);

/// Records a peer must not send once the handshake is done.
const JUNK: [(&str, &[u8]); 3] = [
    (
        "application data with a bad tag",
        &[
            0x17, 0x03, 0x03, 0x00, 0x20, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
            17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
        ],
    ),
    ("a ChangeCipherSpec", &[0x14, 0x03, 0x03, 0x00, 0x01, 0x01]),
    (
        "a handshake record in the clear (a KeyUpdate)",
        &[0x16, 0x03, 0x03, 0x00, 0x05, 0x18, 0x00, 0x00, 0x01, 0x00],
    ),
];

fn server(ctx: &Context, pki: &TestPki, forward_to: Option<SocketAddr>) -> SocketAddr {
    let cert = pki.issue("web", &["web.test"]);
    let mut limits = HttpLimits::default();
    limits.first_request_timeout = FIRST_REQUEST;
    let mut policy = TlsPolicy::default();
    policy.versions = vec![&TLS13, &TLS12];
    let mut options = ServerOptions::new("web", any_port(), cert.store())
        .tls(policy)
        .http_limits(limits);
    if let Some(backend) = forward_to {
        options = options.forward(ForwardOptions::new(Backend::Tcp(backend.to_string())));
    }
    start(ctx, options)
}

/// Sends `junk` after the handshake (and a first request if asked): the time until the server
/// closes.
async fn time_to_close(
    addr: SocketAddr,
    pki: &TestPki,
    version: &'static SupportedProtocolVersion,
    alpn: &[&str],
    request_first: bool,
    junk: &[u8],
) -> Duration {
    let client = std::sync::Arc::new(pki.client_builder(&[version], alpn, None));
    let mut tls = connect(addr, "web.test", client).await.unwrap();
    if request_first {
        tls.write_all(b"GET / HTTP/1.1\r\nHost: web.test\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(read_response(&mut tls).await.unwrap().status, 200);
    }
    let tcp = tls.get_mut().0;
    let sent = Instant::now();
    tcp.write_all(junk).await.unwrap();
    let mut sink = [0u8; 4096];
    let closed = tokio::time::timeout(FIRST_REQUEST * 2, async {
        loop {
            match tcp.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {} // tickets, the alert
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "still open after {:?}", sent.elapsed());
    sent.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_connection_closes_right_after_its_fatal_alert() {
    let pki = TestPki::new();
    let ctx = Context::builder().build();
    let status = server(&ctx, &pki, None);
    let mut slowest = Duration::ZERO;
    for version in [&TLS13, &TLS12] {
        for alpn in [&[][..], &["http/1.1"], &["h2"]] {
            // An HTTP/1.1 request first where the connection speaks HTTP/1.
            for request_first in [false, alpn != ["h2"]] {
                for (what, junk) in JUNK {
                    let took =
                        time_to_close(status, &pki, version, alpn, request_first, junk).await;
                    assert!(
                        took < PROMPTLY,
                        "{what}, {version:?}, ALPN {alpn:?}, after a request: {request_first}: \
                         closed after {took:?}"
                    );
                    slowest = slowest.max(took);
                }
            }
        }
    }
    eprintln!("status handler: slowest close after a junk record {slowest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_connection_closes_right_after_its_fatal_alert() {
    let pki = TestPki::new();
    let ctx = Context::builder().build();
    let forward = server(&ctx, &pki, Some(echo_backend().await));
    for version in [&TLS13, &TLS12] {
        for (what, junk) in JUNK {
            let took = time_to_close(forward, &pki, version, &[], false, junk).await;
            assert!(
                took < PROMPTLY,
                "{what}, {version:?}: closed after {took:?}"
            );
        }
    }
}
