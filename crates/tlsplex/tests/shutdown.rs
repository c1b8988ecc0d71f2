//! Graceful shutdown: stop accepting at once, let in-flight work finish, bound the wait.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

use std::time::{Duration, Instant};

use tlsplex::{Context, Handler, HandlerError, ServerOptions, Supervisor, TlsConn};
use tlsplex_testkit::{any_port, connect, eventually, TestPki};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Reads one line, works on it for `work` (ignoring shutdown, as a slow request would), answers.
struct Slow {
    work: Duration,
}

impl Handler for Slow {
    async fn serve(&self, conn: TlsConn) -> Result<(), HandlerError> {
        let mut stream = BufReader::new(conn.stream);
        let mut line = String::new();
        stream.read_line(&mut line).await?;
        tokio::time::sleep(self.work).await;
        stream.write_all(format!("done: {line}").as_bytes()).await?;
        stream.shutdown().await?;
        Ok(())
    }
}

async fn start(
    grace: Duration,
    work: Duration,
) -> (Context, Supervisor, std::net::SocketAddr, TestPki) {
    let pki = TestPki::new();
    let ctx = Context::builder().shutdown_grace(grace).build();
    let cert = pki.issue("slow", &["slow.test"]);
    let options = ServerOptions::new("slow", any_port(), cert.store()).handler(Slow { work });
    let supervisor = Supervisor::start(&ctx, [options]).unwrap();
    let addr = supervisor.server("slow").unwrap().local_addr();
    (ctx, supervisor, addr, pki)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_flight_request_completes_and_new_connections_are_refused() {
    let (ctx, supervisor, addr, pki) =
        start(Duration::from_secs(10), Duration::from_millis(600)).await;
    let handle = supervisor.server("slow").unwrap().clone();
    let mut in_flight = connect(addr, "slow.test", pki.client(&[])).await.unwrap();
    in_flight.write_all(b"request 1\n").await.unwrap();
    assert!(eventually(Duration::from_secs(2), || handle.open_connections() == 1).await);

    let shutdown = tokio::spawn(supervisor.shutdown());
    assert!(
        eventually(Duration::from_secs(2), || ctx.registry().list()[0].state
            == tlsplex::registry::ServerState::Draining)
        .await
    );
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "new connections are refused"
    );

    let mut answer = String::new();
    in_flight.read_to_string(&mut answer).await.unwrap();
    assert_eq!(
        answer, "done: request 1\n",
        "the in-flight request completed"
    );
    tokio::time::timeout(Duration::from_secs(5), shutdown)
        .await
        .expect("shutdown returns once drained")
        .unwrap();
    assert!(ctx.registry().list().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_still_open_when_the_grace_period_ends_are_closed() {
    let (_ctx, supervisor, addr, pki) =
        start(Duration::from_millis(300), Duration::from_secs(60)).await;
    let mut stuck = connect(addr, "slow.test", pki.client(&[])).await.unwrap();
    stuck.write_all(b"never answered\n").await.unwrap();
    let handle = supervisor.server("slow").unwrap().clone();
    assert!(eventually(Duration::from_secs(2), || handle.open_connections() == 1).await);

    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), supervisor.shutdown())
        .await
        .expect("shutdown is bounded by the grace period");
    assert!(started.elapsed() >= Duration::from_millis(250));
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stuck.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the connection was closed");
    assert!(rest.is_empty());
}

/// A handler that watches `TlsConn::shutdown` returns as soon as its server stops.
struct Watching;

impl Handler for Watching {
    async fn serve(&self, mut conn: TlsConn) -> Result<(), HandlerError> {
        conn.shutdown.cancelled().await;
        conn.stream.write_all(b"bye\n").await?;
        conn.stream.shutdown().await?;
        Ok(())
    }
}

#[tokio::test]
async fn handlers_see_their_server_stop() {
    let pki = TestPki::new();
    let ctx = Context::builder().build();
    let cert = pki.issue("w", &["w.test"]);
    let options = ServerOptions::new("w", any_port(), cert.store()).handler(Watching);
    let supervisor = Supervisor::start(&ctx, [options]).unwrap();
    let addr = supervisor.server("w").unwrap().local_addr();
    let mut conn = connect(addr, "w.test", pki.client(&[])).await.unwrap();
    let handle = supervisor.server("w").unwrap().clone();
    assert!(eventually(Duration::from_secs(2), || handle.open_connections() == 1).await);
    tokio::time::timeout(Duration::from_secs(5), supervisor.shutdown())
        .await
        .expect("a watching handler lets the drain finish at once");
    let mut said = String::new();
    conn.read_to_string(&mut said).await.unwrap();
    assert_eq!(said, "bye\n");
}
