//! What a hostile client costs the proxy, measured on a live daemon from /proc: clients that
//! ask for a large response and read none of it hold at most the connection's response budget
//! each (the backend is held back by TCP, not buffered), and the send timeout closes them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

mod common;

use std::time::{Duration, Instant};

use tlsplex_testkit::http_backend::HttpBackend;
use tlsplex_testkit::{connect, TestPki};
use tokio::io::AsyncWriteExt;

const CONNECTIONS: usize = 40;
const SEND_TIMEOUT: Duration = Duration::from_secs(2);
/// What one such connection may cost: the 64 KiB response budget, hyper's client and server
/// buffers for the exchange (about 2 x 64 KiB), the TLS connection and the backend connection.
const BUDGET_KIB: u64 = 400;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_read_nothing_cost_a_bounded_amount_and_are_closed() {
    let backend = HttpBackend::start().await;
    let pki = TestPki::new();
    let handler = format!(
        "{{ type = \"proxy\", backends = [\"{}\"], keepalive = 64 }}",
        backend.addr
    );
    let http = format!(
        "http = {{ send_timeout = \"{}s\" }}\n",
        SEND_TIMEOUT.as_secs()
    );
    let (daemon, addr) = common::one_server(&pki, &handler, &http);

    // 50 MB each, never read.
    let request = b"GET /big?bytes=50000000 HTTP/1.1\r\nHost: app.test\r\n\r\n";
    let mut warm = connect(addr, "app.test", pki.client(&["http/1.1"]))
        .await
        .unwrap();
    warm.write_all(request).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = daemon.rss_kib();
    let mut attackers = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut tls = connect(addr, "app.test", pki.client(&["http/1.1"]))
            .await
            .unwrap();
        tls.write_all(request).await.unwrap();
        attackers.push(tls);
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let peak = daemon.rss_kib();
    let per_connection = peak.saturating_sub(before) / CONNECTIONS as u64;
    eprintln!(
        "non-reading clients of 50 MB responses: RSS {before} KiB -> {peak} KiB with \
         {CONNECTIONS} connections: {per_connection} KiB each"
    );
    assert!(
        per_connection < BUDGET_KIB,
        "{per_connection} KiB per connection (budget {BUDGET_KIB})"
    );
    // The send timeout closes them: the daemon's descriptors (client and backend sockets) go
    // back to what they were, though the clients never read.
    let started = Instant::now();
    let fds_with_attackers = daemon.open_fds();
    let closed = tokio::time::timeout(SEND_TIMEOUT * 3 + Duration::from_secs(5), async {
        while daemon.open_fds() + CONNECTIONS > fds_with_attackers {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "{} descriptors open after {:?} (with the attackers: {fds_with_attackers})",
        daemon.open_fds(),
        started.elapsed()
    );
    eprintln!("closed {:?} after the peak", started.elapsed());
    drop(attackers);
}

/// Uploads to a backend that reads nothing: the proxy holds a bounded amount per upload (the
/// client is held back by TCP and HTTP/2 flow control, nothing is buffered whole), and
/// `response_header_timeout` answers each with 504.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_to_a_backend_that_reads_nothing_cost_a_bounded_amount() {
    const UPLOADS: usize = 20;
    const TIMEOUT: Duration = Duration::from_secs(4);
    // Accepts and holds every connection, reading nothing.
    let deaf = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let deaf_addr = deaf.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = deaf.accept().await {
            held.push(tcp);
        }
    });
    let pki = TestPki::new();
    let handler = format!(
        "{{ type = \"proxy\", backends = [\"{deaf_addr}\"], response_header_timeout = \"{}s\" }}",
        TIMEOUT.as_secs()
    );
    let (daemon, addr) = common::one_server(&pki, &handler, "");
    let before = daemon.rss_kib();
    let started = Instant::now();
    let mut uploads = Vec::new();
    for _ in 0..UPLOADS {
        let mut tls = connect(addr, "app.test", pki.client(&["http/1.1"]))
            .await
            .unwrap();
        uploads.push(tokio::spawn(async move {
            let size = 8 * 1024 * 1024;
            let head = format!(
                "POST /upload HTTP/1.1\r\nHost: app.test\r\nContent-Length: {size}\r\n\r\n"
            );
            tls.write_all(head.as_bytes()).await.unwrap();
            let piece = vec![b'u'; 64 * 1024];
            // Writes block once the buffers between here and the deaf backend are full; the
            // answer comes meanwhile.
            let writing = async {
                for _ in 0..size / piece.len() {
                    if tls.write_all(&piece).await.is_err() {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(TIMEOUT + Duration::from_secs(1), writing).await;
            let mut answer = Vec::new();
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                tokio::io::AsyncReadExt::read_to_end(&mut tls, &mut answer),
            )
            .await;
            String::from_utf8_lossy(&answer).into_owned()
        }));
    }
    tokio::time::sleep(TIMEOUT / 2).await;
    let peak = daemon.rss_kib();
    let per_upload = peak.saturating_sub(before) / UPLOADS as u64;
    eprintln!(
        "uploads to a deaf backend: RSS {before} KiB -> {peak} KiB with {UPLOADS} uploads: \
         {per_upload} KiB each"
    );
    assert!(
        per_upload < BUDGET_KIB,
        "{per_upload} KiB per upload (budget {BUDGET_KIB})"
    );
    for upload in uploads {
        let answer = upload.await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    }
    let took = started.elapsed();
    eprintln!("all answered 504 after {took:?}");
    assert!(took < TIMEOUT + Duration::from_secs(8), "{took:?}");
}
