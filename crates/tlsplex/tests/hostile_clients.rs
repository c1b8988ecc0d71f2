//! A client that stalls or sends garbage costs its own connection and nothing else.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

use std::time::{Duration, Instant};

use tlsplex::{Context, ServerOptions};
use tlsplex_testkit::{any_port, get, start, TestPki};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes; returns what it sent and how long it took.
async fn read_until_closed(stream: &mut TcpStream) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (received, started.elapsed()),
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            Err(_) => panic!("the server kept the connection open for 10 s"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_closed_after_the_handshake_timeout() {
    let pki = TestPki::new();
    let ctx = Context::builder()
        .handshake_timeout(Duration::from_millis(400))
        .build();
    let cert = pki.issue("web", &["web.test"]);
    let addr = start(&ctx, ServerOptions::new("web", any_port(), cert.store()));

    let mut silent = TcpStream::connect(addr).await.unwrap();
    let closed = tokio::spawn(async move { read_until_closed(&mut silent).await });

    // Meanwhile, well-behaved clients are served.
    for _ in 0..5 {
        let (response, _) = get(addr, "web.test", "/", pki.client(&[])).await.unwrap();
        assert_eq!(response.status, 200);
    }
    let (sent, waited) = closed.await.unwrap();
    assert!(
        sent.is_empty(),
        "nothing is sent to a client that sent nothing"
    );
    assert!(
        waited >= Duration::from_millis(300),
        "closed too early: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(5),
        "closed too late: {waited:?}"
    );
}

#[tokio::test]
async fn a_per_server_handshake_timeout_overrides_the_context() {
    let pki = TestPki::new();
    let ctx = Context::builder().build(); // 10 s by default
    let cert = pki.issue("web", &["web.test"]);
    let options = ServerOptions::new("web", any_port(), cert.store())
        .handshake_timeout(Duration::from_millis(200));
    let addr = start(&ctx, options);

    let mut stalled = TcpStream::connect(addr).await.unwrap();
    // One byte of a ClientHello record header, then nothing.
    stalled.write_all(&[0x16]).await.unwrap();
    let (_, waited) = read_until_closed(&mut stalled).await;
    assert!(waited < Duration::from_secs(3), "closed after {waited:?}");
}

#[tokio::test]
async fn garbage_instead_of_a_client_hello_closes_that_connection_only() {
    let pki = TestPki::new();
    let ctx = Context::builder().build();
    let cert = pki.issue("web", &["web.test"]);
    let addr = start(&ctx, ServerOptions::new("web", any_port(), cert.store()));

    let garbage: [&[u8]; 3] = [
        b"GET / HTTP/1.1\r\nHost: web.test\r\n\r\n",
        &[0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0x00, 0x00],
        &[0xde, 0xad, 0xbe, 0xef].repeat(300),
    ];
    for bytes in garbage {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(bytes).await.unwrap();
        let (reply, waited) = read_until_closed(&mut stream).await;
        assert!(waited < Duration::from_secs(5));
        if bytes.starts_with(b"GET ") {
            // Plain HTTP gets an HTTP answer saying what to do, as nginx's, then the close.
            let text = String::from_utf8_lossy(&reply);
            assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
            assert!(text.contains("Use https://"), "{text}");
        } else {
            // A TLS record of type alert (0x15) whose level is fatal (2), then the close.
            assert_eq!(reply.first(), Some(&0x15), "an alert record: {reply:02x?}");
            assert_eq!(reply.get(5), Some(&2), "a fatal alert: {reply:02x?}");
        }
        let (response, _) = get(addr, "web.test", "/", pki.client(&[])).await.unwrap();
        assert_eq!(response.status, 200, "the server keeps serving");
    }
}

/// A handshake record holding `message` (a handshake message's type, 3-byte length and body).
fn handshake_record(message: &[u8]) -> Vec<u8> {
    let len = u16::try_from(message.len()).unwrap().to_be_bytes();
    [&[0x16, 0x03, 0x01, len[0], len[1]][..], message].concat()
}

/// What a plain rustls server connection sends back for `record`.
fn plain_rustls_answer(record: &[u8], certs: std::sync::Arc<tlsplex::CertStore>) -> Vec<u8> {
    use tlsplex::rustls;
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(certs);
    let mut conn = rustls::ServerConnection::new(std::sync::Arc::new(config)).unwrap();
    conn.read_tls(&mut &record[..]).unwrap();
    assert!(conn.process_new_packets().is_err(), "rustls refuses it too");
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_first_record_gets_the_alert_rustls_would_send() {
    let pki = TestPki::new();
    let ctx = Context::builder().build();
    let cert = pki.issue("web", &["web.test"]);
    let addr = start(&ctx, ServerOptions::new("web", any_port(), cert.store()));
    let cases: [(&str, Vec<u8>); 5] = [
        (
            "a ServerHello from a client",
            handshake_record(&[0x02, 0, 0, 4, 3, 3, 0, 0]),
        ),
        ("a Finished first", handshake_record(&[0x14, 0, 0, 2, 0, 0])),
        (
            "a Certificate first",
            handshake_record(&[0x0b, 0, 0, 4, 0, 0, 0, 0]),
        ),
        // A ClientHello claiming 16 MiB inside a 12-byte record.
        (
            "a message longer than allowed",
            handshake_record(&[0x01, 0xff, 0xff, 0xff, 3, 3, 0, 0]),
        ),
        (
            "a ClientHello that does not parse",
            handshake_record(&[0x01, 0, 0, 3, 3, 3, 0]),
        ),
    ];
    for (case, record) in cases {
        let mut expected = plain_rustls_answer(&record, cert.store());
        eprintln!("{case}: plain rustls answers {expected:?}");
        if expected.is_empty() {
            // rustls drops these without a word; RFC 8446 §6.2 asks for decode_error.
            expected = vec![0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 50];
        }
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(&record).await.unwrap();
        let (received, waited) = read_until_closed(&mut tcp).await;
        assert_eq!(
            received, expected,
            "{case}: rustls' fatal alert, then the close"
        );
        assert!(
            waited < Duration::from_secs(2),
            "{case}: at once, not at the timeout"
        );
    }
}
