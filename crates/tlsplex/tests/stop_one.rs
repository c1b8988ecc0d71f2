//! Stopping one server (the seed's per-server `needToDie`) leaves the others untouched.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

use std::time::Duration;

use tlsplex::{Context, ServerOptions, Supervisor};
use tlsplex_testkit::{any_port, connect, eventually, get, request, TestPki};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_one_server_closes_its_port_and_no_other() {
    let pki = TestPki::new();
    let ctx = Context::builder().build();
    let a = pki.issue("a", &["a.test"]);
    let b = pki.issue("b", &["b.test"]);
    let mut supervisor = Supervisor::start(
        &ctx,
        [
            ServerOptions::new("a", any_port(), a.store()),
            ServerOptions::new("b", any_port(), b.store()),
        ],
    )
    .unwrap();
    let addr_a = supervisor.server("a").unwrap().local_addr();
    let addr_b = supervisor.server("b").unwrap().local_addr();
    let client = pki.client(&["http/1.1"]);

    // A connection to b, handshake done, request not yet sent: in flight across the stop.
    let mut in_flight_b = connect(addr_b, "b.test", client.clone()).await.unwrap();

    supervisor.stop("a").await.unwrap();

    assert!(
        TcpStream::connect(addr_a).await.is_err(),
        "a's port refuses connections once a has stopped"
    );
    assert!(supervisor.server("a").is_none());
    let listed: Vec<_> = ctx.registry().list().into_iter().map(|s| s.name).collect();
    assert_eq!(listed, ["b"]);

    let response = request(&mut in_flight_b, "b.test", "/?format=json")
        .await
        .unwrap();
    assert_eq!(response.status, 200, "b's in-flight connection is served");
    let (fresh, _) = get(addr_b, "b.test", "/", client).await.unwrap();
    assert_eq!(fresh.status, 200, "b still accepts new connections");
    assert!(supervisor.stop("a").await.is_err(), "a is gone");
    supervisor.shutdown().await;
}

#[tokio::test]
async fn a_handle_stops_its_server_and_run_returns() {
    let pki = TestPki::new();
    let ctx = Context::builder().build();
    let cert = pki.issue("a", &["a.test"]);
    let server =
        tlsplex::Server::bind(&ctx, ServerOptions::new("a", any_port(), cert.store())).unwrap();
    let handle = server.handle();
    let addr = server.local_addr();
    let run = tokio::spawn(server.run());
    assert!(
        eventually(Duration::from_secs(5), || ctx.registry().list()[0].state
            == tlsplex::registry::ServerState::Serving)
        .await
    );
    handle.stop();
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("run returns after stop")
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(addr).await.is_err());
}
