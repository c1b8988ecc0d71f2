//! A handler that panics costs its own connection: the server goes on, and its bookkeeping is
//! right afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

use std::time::Duration;

use tlsplex::{Context, Handler, HandlerError, Server, ServerOptions, TlsConn};
use tlsplex_testkit::{any_port, connect, eventually, TestPki};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Panics when the client says "panic", echoes one line otherwise.
struct Fragile;

impl Handler for Fragile {
    async fn serve(&self, mut conn: TlsConn) -> Result<(), HandlerError> {
        let mut word = [0u8; 5];
        conn.stream.read_exact(&mut word).await?;
        assert_ne!(&word, b"panic", "the handler panics on purpose");
        conn.stream.write_all(&word).await?;
        conn.stream.shutdown().await?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_costs_only_its_connection() {
    let pki = TestPki::new();
    let ctx = Context::builder().build();
    let cert = pki.issue("fragile", &["fragile.test"]);
    let server = Server::bind(
        &ctx,
        ServerOptions::new("fragile", any_port(), cert.store()).handler(Fragile),
    )
    .unwrap();
    let (addr, handle) = (server.local_addr(), server.handle());
    tokio::spawn(server.run());
    let client = pki.client(&[]);

    for _ in 0..3 {
        let mut doomed = connect(addr, "fragile.test", client.clone()).await.unwrap();
        doomed.write_all(b"panic").await.unwrap();
        let mut rest = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(5), doomed.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "the panicking connection is closed");

        let mut fine = connect(addr, "fragile.test", client.clone()).await.unwrap();
        fine.write_all(b"hello").await.unwrap();
        let mut echoed = Vec::new();
        fine.read_to_end(&mut echoed).await.unwrap();
        assert_eq!(echoed, b"hello", "the server goes on");
    }
    assert!(eventually(Duration::from_secs(2), || handle.open_connections() == 0).await);
    assert_eq!(ctx.open_connections(), 0, "permits came back");
    let metrics = ctx.metrics().encode();
    assert!(
        metrics.contains("tlsplex_connections_active{server=\"fragile\"} 0"),
        "{metrics}"
    );
}
