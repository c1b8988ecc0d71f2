//! HTTP past the handshake: silent clients, idle keep-alive connections, slow and huge request
//! heads, and the Host rule, each against short limits.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tlsplex::handler::HttpLimits;
use tlsplex::{Context, ServerOptions};
use tlsplex_testkit::{any_port, connect, read_response, start, TestPki};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FIRST_REQUEST: Duration = Duration::from_millis(400);
const HEADER: Duration = Duration::from_millis(400);
const IDLE: Duration = Duration::from_millis(800);

fn limits() -> HttpLimits {
    let mut limits = HttpLimits::default();
    limits.first_request_timeout = FIRST_REQUEST;
    limits.request_header_timeout = HEADER;
    limits.idle_timeout = IDLE;
    limits
}

fn server(pki: &TestPki) -> SocketAddr {
    let ctx = Context::builder().build();
    let cert = pki.issue("limits", &["limits.test"]);
    start(
        &ctx,
        ServerOptions::new("limits", any_port(), cert.store()).http_limits(limits()),
    )
}

/// Reads until the server closes; how long that took, or `None` if it kept the connection past
/// `limit`.
async fn closed_within<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    limit: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    let mut sink = [0u8; 4096];
    let drained = tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    drained.ok().map(|()| started.elapsed())
}

/// A connection to a fresh server that has had one request answered.
async fn after_one_request(
    pki: &TestPki,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let addr = server(pki);
    let client = pki.client(&["http/1.1"]);
    let mut stream = connect(addr, "limits.test", client).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: limits.test\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut stream).await.unwrap().status, 200);
    stream
}

#[tokio::test]
async fn a_client_that_never_sends_a_request_is_closed() {
    let pki = TestPki::new();
    let addr = server(&pki);
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".as_slice();
    let empty_settings = [0u8, 0, 0, 4, 0, 0, 0, 0, 0];
    let preface_and_settings = [preface, &empty_settings].concat();
    let cases: [(&str, &[&str], &[u8]); 5] = [
        ("h2, nothing sent", &["h2"], b""),
        ("http/1.1, nothing sent", &["http/1.1"], b""),
        ("no ALPN, nothing sent", &[], b""),
        ("half an h2 preface", &["h2"], &preface[..10]),
        ("an h2 preface and SETTINGS", &["h2"], &preface_and_settings),
    ];
    for (case, alpn, sent) in cases {
        let mut stream = connect(addr, "limits.test", pki.client(alpn))
            .await
            .unwrap();
        stream.write_all(sent).await.unwrap();
        let took = closed_within(&mut stream, Duration::from_secs(5)).await;
        let took = took.unwrap_or_else(|| panic!("{case}: still open after 5 s"));
        assert!(
            took >= FIRST_REQUEST - Duration::from_millis(50),
            "{case}: closed after {took:?}"
        );
        assert!(
            took < FIRST_REQUEST + Duration::from_secs(2),
            "{case}: closed after {took:?}"
        );
    }
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let pki = TestPki::new();
    // After the response, the idle timeout counts.
    let mut stream = after_one_request(&pki).await;
    let took = closed_within(&mut stream, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(
        took >= IDLE - Duration::from_millis(50),
        "closed after {took:?}"
    );
    assert!(
        took < IDLE + Duration::from_secs(2),
        "closed after {took:?}"
    );
}

#[tokio::test]
async fn a_request_head_that_stalls_is_closed() {
    let pki = TestPki::new();
    let mut stream = after_one_request(&pki).await;
    // Half a head, then silence: the header timeout, shorter than the idle one, applies.
    stream.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
    let took = closed_within(&mut stream, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(
        took >= HEADER - Duration::from_millis(50),
        "closed after {took:?}"
    );
    assert!(
        took < IDLE,
        "the header timeout, not the idle one: {took:?}"
    );
}

#[tokio::test]
async fn a_huge_request_head_gets_431() {
    let pki = TestPki::new();
    let addr = server(&pki);
    let mut stream = connect(addr, "limits.test", pki.client(&["http/1.1"]))
        .await
        .unwrap();
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: limits.test\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(400 * 1024)
    );
    // The server may stop reading (and close) before all of it is written.
    let _ = stream.write_all(huge.as_bytes()).await;
    let response = read_response(&mut stream).await.unwrap();
    assert_eq!(response.status, 431);

    // Within the limit is fine.
    let mut stream = connect(addr, "limits.test", pki.client(&["http/1.1"]))
        .await
        .unwrap();
    let fits = format!(
        "GET / HTTP/1.1\r\nHost: limits.test\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    stream.write_all(fits.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut stream).await.unwrap().status, 200);
}

#[tokio::test]
async fn http_1_1_needs_exactly_one_host() {
    let pki = TestPki::new();
    let addr = server(&pki);
    for (head, status) in [
        ("GET / HTTP/1.1\r\n\r\n", 400),
        (
            "GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
            400,
        ),
        ("GET / HTTP/1.1\r\nHost: limits.test\r\n\r\n", 200),
        ("GET / HTTP/1.0\r\n\r\n", 200),
    ] {
        let mut stream = connect(addr, "limits.test", pki.client(&["http/1.1"]))
            .await
            .unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        let response = read_response(&mut stream).await.unwrap();
        assert_eq!(response.status, status, "{head:?}");
    }
}
