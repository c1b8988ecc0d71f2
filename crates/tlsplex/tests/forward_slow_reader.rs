//! Forward clients that stop reading while their backend keeps sending: what each costs (the
//! TLS records rustls holds, at most 64 KiB, and what the relay read but could not write, at
//! most one 32 KiB read), and that the idle timeout closes them. Its own test binary, so no
//! other test's memory is in the RSS it measures.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tlsplex::handler::{Backend, ForwardOptions};
use tlsplex::{Context, ServerOptions};
use tlsplex_testkit::{any_port, connect, eventually, rss_kib, start, TestPki};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

const CLIENTS: usize = 200;
const IDLE_TIMEOUT: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_stop_reading_cost_a_bounded_buffer_and_are_closed_by_the_idle_timeout() {
    let pki = TestPki::new();
    // A backend that sends to every connection until the connection pushes back or closes.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = listener.local_addr().unwrap();
    let (accepted, closed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (accepted_count, closed_count) = (accepted.clone(), closed.clone());
    tokio::spawn(async move {
        let chunk: &'static [u8] = Box::leak(vec![7u8; 64 * 1024].into_boxed_slice());
        while let Ok((mut stream, _)) = listener.accept().await {
            accepted_count.fetch_add(1, Ordering::Relaxed);
            let closed = closed_count.clone();
            tokio::spawn(async move {
                while stream.write_all(chunk).await.is_ok() {}
                closed.fetch_add(1, Ordering::Relaxed);
            });
        }
    });
    let ctx = Context::builder().build();
    let mut options = ForwardOptions::new(Backend::Tcp(backend.to_string()));
    options.idle_timeout = Some(IDLE_TIMEOUT);
    let cert = pki.issue("fwd", &["fwd.test"]);
    let addr = start(
        &ctx,
        ServerOptions::new("fwd", any_port(), cert.store()).forward(options),
    );

    let before = rss_kib();
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        // Handshaken, then never read from.
        clients.push(connect(addr, "fwd.test", pki.client(&[])).await.unwrap());
    }
    let relayed = eventually(Duration::from_secs(5), || {
        accepted.load(Ordering::Relaxed) == CLIENTS
    })
    .await;
    assert!(relayed, "every client reached the backend");
    // The socket buffers fill, then the relays stall holding what they could not write.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let stalled = rss_kib();
    let per_connection = stalled.saturating_sub(before) as f64 / CLIENTS as f64;
    println!(
        "{per_connection:.1} KiB per forward connection whose client stopped reading \
         (RSS {before} -> {stalled} KiB; client, server and backend sides in one process)"
    );
    assert!(
        per_connection < 128.0,
        "{per_connection:.1} KiB per stalled connection"
    );

    // No byte moves: the idle timeout closes each relay, and the backend sees it.
    let started = Instant::now();
    let all_closed = eventually(IDLE_TIMEOUT * 3, || {
        closed.load(Ordering::Relaxed) == CLIENTS
    })
    .await;
    assert!(
        all_closed,
        "{} of {CLIENTS} backend connections closed after {:?}",
        closed.load(Ordering::Relaxed),
        started.elapsed()
    );
    println!("all closed {:?} after the measurement", started.elapsed());
    drop(clients);
}
