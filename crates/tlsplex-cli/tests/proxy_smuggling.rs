//! Requests whose framing or headers are ambiguous, sent to the proxy by a hostile client, with
//! a backend that records what reaches it: nothing ambiguous does. HTTP/1.1 with both
//! `Content-Length` and `Transfer-Encoding` is taken by `Transfer-Encoding` alone and the
//! connection closed after it (RFC 9112 §6.1), so a request hidden in the body never reaches the
//! backend; CR, LF and NUL in values, obsolete line folding, HTTP/2 connection-specific headers,
//! upper-case HTTP/2 names and a `:path` holding a second request line are refused outright.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::h2::{frame, get_headers, with_header, PREFACE};
use common::Daemon;
use tlsplex_testkit::http_backend::HttpBackend;
use tlsplex_testkit::{connect, TestPki};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn start(backend: SocketAddr) -> (TestPki, Daemon, SocketAddr) {
    let pki = TestPki::new();
    let handler = format!("{{ type = \"proxy\", backends = [\"{backend}\"] }}");
    let (daemon, addr) = common::one_server(&pki, &handler, "");
    (pki, daemon, addr)
}

/// Sends `bytes` over a new TLS connection speaking `alpn` and reads what comes back until the
/// server closes or goes quiet for a second.
async fn exchange(pki: &TestPki, addr: SocketAddr, alpn: &str, bytes: &[u8]) -> Vec<u8> {
    let mut tls = connect(addr, "app.test", pki.client(&[alpn]))
        .await
        .unwrap();
    tls.write_all(bytes).await.unwrap();
    let mut got = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(1), tls.read(&mut buffer)).await
    {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buffer[..n]);
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_http1_requests_do_not_reach_the_backend_as_sent() {
    let backend = HttpBackend::start().await;
    let (pki, _daemon, addr) = start(backend.addr);

    // Content-Length and Transfer-Encoding, with a request hidden after the chunked body.
    let smuggle = b"POST /a HTTP/1.1\r\nHost: app.test\r\nContent-Length: 44\r\n\
                    Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
                    GET /smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n";
    let answer = exchange(&pki, addr, "http/1.1", smuggle).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(
        answer.matches("HTTP/1.1 ").count(),
        1,
        "one answer: {answer}"
    );
    let received = backend.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!((received[0].target.as_str(), received[0].body), ("/a", 0));
    assert!(received[0].header("content-length").len() <= 1);
    assert!(received[0].header("transfer-encoding").len() <= 1);

    // Control characters and folding in a header: 400 from the parser, nothing sent on.
    for head in [
        &b"GET /nul HTTP/1.1\r\nHost: app.test\r\nX-Evil: a\0b\r\n\r\n"[..],
        b"GET /cr HTTP/1.1\r\nHost: app.test\r\nX-Evil: a\rb\r\n\r\n",
        b"GET /fold HTTP/1.1\r\nHost: app.test\r\nX-Evil: a\r\n b\r\n\r\n",
        b"GET /two-lengths HTTP/1.1\r\nHost: app.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"GET /space HTTP/1.1\r\nHost: app.test\r\nX-Evil : a\r\n\r\n",
    ] {
        let answer = exchange(&pki, addr, "http/1.1", head).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
            "{}: {answer}",
            String::from_utf8_lossy(head)
        );
    }
    let targets: Vec<String> = backend
        .received()
        .iter()
        .map(|r| r.target.clone())
        .collect();
    assert_eq!(targets, ["/a"], "nothing else reached the backend");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_http2_requests_do_not_reach_the_backend() {
    let backend = HttpBackend::start().await;
    let (pki, _daemon, addr) = start(backend.addr);
    let cases: [(&str, Vec<u8>); 6] = [
        (
            "connection",
            with_header(get_headers("/c", "app.test"), "connection", "keep-alive"),
        ),
        (
            "transfer-encoding",
            with_header(
                get_headers("/te", "app.test"),
                "transfer-encoding",
                "chunked",
            ),
        ),
        (
            "an upper-case name",
            with_header(get_headers("/upper", "app.test"), "X-Evil", "1"),
        ),
        (
            "a line feed in a value",
            with_header(
                get_headers("/lf", "app.test"),
                "x-evil",
                "a\r\nx-injected: 1",
            ),
        ),
        (
            "a request line in :path",
            get_headers("/p HTTP/1.1\r\nHost: evil.test\r\n\r\nGET /x", "app.test"),
        ),
        (
            "te other than trailers",
            with_header(get_headers("/te2", "app.test"), "te", "gzip"),
        ),
    ];
    for (what, block) in cases {
        let mut attack = PREFACE.to_vec();
        attack.extend(frame(0x4, 0, 0, &[]));
        attack.extend(frame(0x1, 0x4 | 0x1, 1, &block));
        let answer = exchange(&pki, addr, "h2", &attack).await;
        // RST_STREAM (3) or GOAWAY (7) for stream 1, or a 400; never a 200 from the backend.
        assert!(!answer.is_empty(), "{what}: no answer");
        assert!(backend.received().is_empty(), "{what} reached the backend");
    }
    // A well-formed request on the same server still goes through.
    let mut request = PREFACE.to_vec();
    request.extend(frame(0x4, 0, 0, &[]));
    request.extend(frame(0x1, 0x4 | 0x1, 1, &get_headers("/ok", "app.test")));
    exchange(&pki, addr, "h2", &request).await;
    let targets: Vec<String> = backend
        .received()
        .iter()
        .map(|r| r.target.clone())
        .collect();
    assert_eq!(targets, ["/ok"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_body_longer_than_its_content_length_is_cut_off() {
    let backend = HttpBackend::start().await;
    let (pki, _daemon, addr) = start(backend.addr);
    // content-length 5, then 40 bytes of DATA that end with a second request.
    let block = with_header(
        {
            let mut block = vec![0x83, 0x87]; // :method POST, :scheme https
            for (index, value) in [(4u8, "/post"), (1u8, "app.test")] {
                block.push(index);
                block.push(u8::try_from(value.len()).unwrap());
                block.extend_from_slice(value.as_bytes());
            }
            block
        },
        "content-length",
        "5",
    );
    let mut attack = PREFACE.to_vec();
    attack.extend(frame(0x4, 0, 0, &[]));
    attack.extend(frame(0x1, 0x4, 1, &block));
    attack.extend(frame(
        0x0,
        0x1,
        1,
        b"hello\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n",
    ));
    exchange(&pki, addr, "h2", &attack).await;
    // The backend may have seen the head and up to the declared length, never more, and never
    // a second request.
    let received = backend.received();
    assert!(
        received.iter().all(|r| r.target == "/post" && r.body <= 5),
        "{received:?}"
    );
}
