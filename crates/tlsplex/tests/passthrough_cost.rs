//! Quiet passthrough clients: what each costs, and that the idle timeout closes them. Its own
//! test binary, so no other test's memory is in the RSS it measures.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

use std::sync::Arc;

use tlsplex::handler::{Backend, ForwardOptions};
use tlsplex::route::Route;
use tlsplex::{Context, ServerOptions};
use tlsplex_testkit::{any_port, rss_kib, start, TestPki};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_passthrough_clients_cost_their_relay_and_are_closed_by_the_idle_timeout() {
    let pki = TestPki::new();
    // A backend that takes every connection and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = listener.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            held.push(stream);
        }
    });
    let ctx = Context::builder().build();
    let mut options = ForwardOptions::new(Backend::Tcp(backend.to_string()));
    options.idle_timeout = Some(std::time::Duration::from_millis(800));
    let front = ServerOptions::new(
        "front",
        any_port(),
        pki.issue("front", &["front.test"]).store(),
    )
    .route(Route::new("quiet", ["quiet.test"]).passthrough(options));
    let addr = start(&ctx, front);
    // A real ClientHello for the route's name.
    let name = rustls::pki_types::ServerName::try_from("quiet.test").unwrap();
    let mut hello_client = rustls::ClientConnection::new(pki.client(&[]), name).unwrap();
    let mut hello = Vec::new();
    hello_client.write_tls(&mut hello).unwrap();

    let before = rss_kib();
    let clients = 300;
    let mut streams = Vec::new();
    for _ in 0..clients {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(&hello).await.unwrap();
        streams.push(stream);
    }
    let relayed = tlsplex_testkit::eventually(std::time::Duration::from_secs(5), || {
        accepted.load(std::sync::atomic::Ordering::Relaxed) == clients
    })
    .await;
    assert!(relayed, "every ClientHello reached the backend");
    let per_connection = rss_kib().saturating_sub(before) as f64 / clients as f64;
    println!(
        "{per_connection:.1} KiB per quiet passthrough connection (both sockets, test process)"
    );
    assert!(
        per_connection < 48.0,
        "{per_connection:.1} KiB per connection"
    );
    // The idle timeout closes every one: the client reads EOF.
    let started = std::time::Instant::now();
    for stream in &mut streams {
        let mut byte = [0u8; 1];
        let read =
            tokio::time::timeout(std::time::Duration::from_secs(3), stream.read(&mut byte)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "closed: {read:?}");
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
}
