//! Churn: 10,000 connect/close cycles (bare, half a hello, full handshakes, resets) leak no
//! file descriptor and no task; old protocol versions get an alert and cost nothing else.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

use std::time::{Duration, Instant};

use tlsplex::{Context, Server, ServerOptions};
use tlsplex_testkit::{any_port, connect, eventually, TestPki};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_close_cycles_leak_nothing() {
    let pki = TestPki::new();
    let ctx = Context::builder()
        .handshake_timeout(Duration::from_secs(2))
        .build();
    let cert = pki.issue("web", &["web.test"]);
    let server = Server::bind(&ctx, ServerOptions::new("web", any_port(), cert.store())).unwrap();
    let (addr, handle) = (server.local_addr(), server.handle());
    tokio::spawn(server.run());
    let client = pki.client(&["http/1.1"]);
    // Warm up (runtime threads, first allocations), then count.
    connect(addr, "web.test", client.clone()).await.unwrap();
    assert!(eventually(Duration::from_secs(2), || handle.open_connections() == 0).await);
    let before = open_fds();

    let started = Instant::now();
    let cycles = 10_000;
    for i in 0..cycles {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        match i % 4 {
            0 => {}                                                 // connect, close
            1 => tcp.write_all(&[0x16, 0x03, 0x01]).await.unwrap(), // half a record header
            // Linger 0: the close sends RST (zero linger never blocks the thread).
            2 => socket2::SockRef::from(&tcp)
                .set_linger(Some(Duration::ZERO))
                .unwrap(),
            _ => {
                drop(tcp);
                connect(addr, "web.test", client.clone()).await.unwrap(); // a full handshake
                continue;
            }
        }
    }
    let rate = f64::from(cycles) / started.elapsed().as_secs_f64();
    eprintln!("{cycles} cycles at {rate:.0}/s");
    assert!(
        eventually(Duration::from_secs(5), || handle.open_connections() == 0).await,
        "every connection task ended ({} still open)",
        handle.open_connections()
    );
    assert!(
        eventually(Duration::from_secs(5), || open_fds() <= before).await,
        "file descriptors: {before} before, {} after",
        open_fds()
    );
    assert_eq!(ctx.open_connections(), 0, "every permit came back");
}

#[tokio::test]
async fn sslv3_and_tls10_hellos_get_an_alert() {
    let pki = TestPki::new();
    let ctx = Context::builder().build();
    let cert = pki.issue("web", &["web.test"]);
    let addr = tlsplex_testkit::start(&ctx, ServerOptions::new("web", any_port(), cert.store()));
    // Minimal ClientHellos offering only SSL 3.0 (0x0300) or TLS 1.0 (0x0301), one suite.
    for version in [[0x03, 0x00], [0x03, 0x01]] {
        let mut body = vec![version[0], version[1]];
        body.extend_from_slice(&[0u8; 32]); // random
        body.push(0); // no session id
        body.extend_from_slice(&[0x00, 0x02, 0x00, 0x2f]); // TLS_RSA_WITH_AES_128_CBC_SHA
        body.extend_from_slice(&[0x01, 0x00]); // null compression
        let mut handshake = vec![0x01, 0x00, 0x00, body.len() as u8];
        handshake.extend_from_slice(&body);
        let mut record = vec![0x16, version[0], version[1], 0x00, handshake.len() as u8];
        record.extend_from_slice(&handshake);
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(&record).await.unwrap();
        let mut reply = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut reply))
            .await
            .unwrap();
        assert_eq!(
            reply.first(),
            Some(&0x15),
            "an alert record for {version:02x?}: {reply:02x?}"
        );
    }
    assert!(
        connect(addr, "web.test", pki.client(&[])).await.is_ok(),
        "still serving"
    );
}
