//! Records the server owes in answer to a read (a KeyUpdate response, close_notify, a
//! `no_renegotiation` warning) go out promptly, not when the application next writes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use tlsplex::{Context, ServerOptions};
use tlsplex_testkit::{any_port, connect, read_response, start, TestPki};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

const PROMPTLY: Duration = Duration::from_secs(2);

/// One keep-alive request and its response, so that nothing from the handshake (session tickets)
/// is left in flight.
async fn one_request(tls: &mut TlsStream<TcpStream>) {
    tls.write_all(b"GET / HTTP/1.1\r\nHost: web.test\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(tls).await.unwrap().status, 200);
}

/// A connection to a fresh server, done with one request, now idle: the server waits for the
/// next request.
async fn idle_connection() -> TlsStream<TcpStream> {
    let pki = TestPki::new();
    let ctx = Context::builder().build();
    let cert = pki.issue("web", &["web.test"]);
    let addr = start(&ctx, ServerOptions::new("web", any_port(), cert.store()));
    let mut tls = connect(addr, "web.test", pki.client(&["http/1.1"]))
        .await
        .unwrap();
    one_request(&mut tls).await;
    tls
}

/// Raw TLS bytes the server sends within `PROMPTLY`, read beneath the client's TLS layer.
async fn raw_bytes_within(tcp: &mut TcpStream) -> Vec<u8> {
    let mut buffer = vec![0u8; 4096];
    match tokio::time::timeout(PROMPTLY, tcp.read(&mut buffer)).await {
        Ok(Ok(n)) => buffer[..n].to_vec(),
        Ok(Err(error)) => panic!("reading: {error}"),
        Err(_) => Vec::new(),
    }
}

#[tokio::test]
async fn a_key_update_request_is_answered_while_the_server_waits_for_a_request() {
    let mut tls = idle_connection().await;

    // KeyUpdate with update_requested: the server must send a KeyUpdate of its own.
    tls.get_mut().1.refresh_traffic_keys().unwrap();
    tls.flush().await.unwrap();
    let answer = raw_bytes_within(tls.get_mut().0).await;
    assert!(
        !answer.is_empty(),
        "no KeyUpdate within {PROMPTLY:?} while the server idled"
    );
    let client = tls.get_mut().1;
    client.read_tls(&mut answer.as_slice()).unwrap();
    let state = client.process_new_packets().unwrap();
    assert_eq!(
        state.plaintext_bytes_to_read(),
        0,
        "a handshake record only"
    );

    // Both sides now use the new keys: the connection still works.
    one_request(&mut tls).await;
}

#[tokio::test]
async fn close_notify_is_answered_with_close_notify_and_a_close() {
    let mut tls = idle_connection().await;

    tls.get_mut().1.send_close_notify();
    tls.flush().await.unwrap();
    let answer = raw_bytes_within(tls.get_mut().0).await;
    assert!(!answer.is_empty(), "no close_notify within {PROMPTLY:?}");
    let client = tls.get_mut().1;
    client.read_tls(&mut answer.as_slice()).unwrap();
    client.process_new_packets().unwrap();
    let mut rest = [0u8; 16];
    assert_eq!(
        std::io::Read::read(&mut client.reader(), &mut rest).unwrap(),
        0,
        "a clean close (close_notify received)"
    );
    assert!(
        raw_bytes_within(tls.get_mut().0).await.is_empty(),
        "then the TCP close"
    );
}

#[test]
fn a_tls12_renegotiation_gets_a_no_renegotiation_warning_promptly() {
    if !tlsplex_testkit::available("openssl") {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let pki = TestPki::new();
    let ctx = Context::builder().build();
    let cert = pki.issue("web", &["web.test"]);
    let addr = runtime
        .block_on(async { start(&ctx, ServerOptions::new("web", any_port(), cert.store())) });

    let mut client = Command::new("openssl")
        .args(["s_client", "-tls1_2", "-msg", "-servername", "web.test"])
        .arg("-connect")
        .arg(addr.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = client.stdin.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    let stdout = client.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait_for = |needle: &str, limit: Duration| {
        let deadline = std::time::Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        false
    };
    assert!(
        wait_for("Verify return code", Duration::from_secs(10)),
        "handshake"
    );
    // `R` on a line of its own asks s_client to renegotiate; the server sends nothing else.
    stdin.write_all(b"R\n").unwrap();
    stdin.flush().unwrap();
    assert!(
        wait_for("no_renegotiation", PROMPTLY),
        "a no_renegotiation warning within {PROMPTLY:?}"
    );
    let _ = client.kill();
    let _ = client.wait();
}

/// The lengths of the TLS records in `raw`, in order (a trailing partial record is left out).
fn record_lengths(raw: &[u8]) -> Vec<usize> {
    let mut lengths = Vec::new();
    let mut rest = raw;
    while rest.len() >= 5 {
        let length = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        if rest.len() < 5 + length {
            break;
        }
        lengths.push(length);
        rest = &rest[5 + length..];
    }
    lengths
}

/// Sends `updates` KeyUpdate requests and a request in one flight; returns the lengths of the
/// records the server answers with, up to and including the response.
async fn records_after_key_updates(updates: usize) -> Vec<usize> {
    let mut tls = idle_connection().await;
    for _ in 0..updates {
        tls.get_mut().1.refresh_traffic_keys().unwrap();
    }
    // Written into rustls' buffer only: the flush below sends the updates and the request in
    // one write.
    tls.get_mut()
        .1
        .writer()
        .write_all(b"GET / HTTP/1.1\r\nHost: web.test\r\n\r\n")
        .unwrap();
    tls.flush().await.unwrap();

    let mut raw = Vec::new();
    loop {
        let more = raw_bytes_within(tls.get_mut().0).await;
        assert!(!more.is_empty(), "the response within {PROMPTLY:?}");
        let client = tls.get_mut().1;
        client.read_tls(&mut more.as_slice()).unwrap();
        raw.extend_from_slice(&more);
        if client
            .process_new_packets()
            .unwrap()
            .plaintext_bytes_to_read()
            > 0
        {
            break;
        }
    }
    record_lengths(&raw)
}

/// An encrypted KeyUpdate: a 4-byte handshake header, its one byte, the inner content type and
/// the 16-byte AEAD tag.
const KEY_UPDATE_RECORD: usize = 4 + 1 + 1 + 16;

#[tokio::test]
async fn several_key_update_requests_in_one_flight_get_a_single_key_update() {
    for updates in [1, 2, 5] {
        let records = records_after_key_updates(updates).await;
        let key_updates = records.iter().filter(|&&n| n == KEY_UPDATE_RECORD).count();
        assert_eq!(
            key_updates, 1,
            "{updates} KeyUpdate requests: records {records:?}"
        );
        assert_eq!(
            records.first(),
            Some(&KEY_UPDATE_RECORD),
            "the KeyUpdate before the response: records {records:?}"
        );
    }
}
