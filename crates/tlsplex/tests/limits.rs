//! Connection limits, per server and process-wide. Beyond a limit a connection is not accepted:
//! it waits in the kernel's backlog, and is accepted (and handshaken) once another one closes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

use std::time::Duration;

use tlsplex::{Context, Server, ServerOptions};
use tlsplex_testkit::{any_port, connect, eventually, TestPki};

/// How long a connection beyond the limit is watched to make sure it is *not* served.
const NOT_SERVED_FOR: Duration = Duration::from_millis(400);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_server_limit_a_connection_waits_until_one_closes() {
    let pki = TestPki::new();
    let ctx = Context::builder().build();
    let cert = pki.issue("web", &["web.test"]);
    let server = Server::bind(
        &ctx,
        ServerOptions::new("web", any_port(), cert.store()).max_connections(2),
    )
    .unwrap();
    let addr = server.local_addr();
    let handle = server.handle();
    tokio::spawn(server.run());
    let client = pki.client(&["http/1.1"]);

    let first = connect(addr, "web.test", client.clone()).await.unwrap();
    let _second = connect(addr, "web.test", client.clone()).await.unwrap();
    assert_eq!(handle.open_connections(), 2);

    let third = tokio::spawn(connect(addr, "web.test", client.clone()));
    tokio::time::sleep(NOT_SERVED_FOR).await;
    assert!(
        !third.is_finished(),
        "a third connection is not served while two are open"
    );
    assert_eq!(handle.open_connections(), 2);

    drop(first);
    let third = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .expect("served once a connection closed")
        .unwrap();
    assert!(
        third.is_ok(),
        "the waiting connection completes its handshake"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_process_limit_holds_across_servers() {
    let pki = TestPki::new();
    // Each server may take the whole process budget here (by default a server gets half).
    let ctx = Context::builder()
        .max_connections(2)
        .server_max_connections(2)
        .build();
    let a = pki.issue("a", &["a.test"]);
    let b = pki.issue("b", &["b.test"]);
    let server_a = Server::bind(&ctx, ServerOptions::new("a", any_port(), a.store())).unwrap();
    let server_b = Server::bind(&ctx, ServerOptions::new("b", any_port(), b.store())).unwrap();
    let (addr_a, addr_b) = (server_a.local_addr(), server_b.local_addr());
    tokio::spawn(server_a.run());
    tokio::spawn(server_b.run());
    let client = pki.client(&[]);

    let on_a = connect(addr_a, "a.test", client.clone()).await.unwrap();
    let on_b = connect(addr_b, "b.test", client.clone()).await.unwrap();
    assert!(eventually(Duration::from_secs(2), || ctx.open_connections() == 2).await);

    let waiting = tokio::spawn(connect(addr_a, "a.test", client.clone()));
    tokio::time::sleep(NOT_SERVED_FOR).await;
    assert!(!waiting.is_finished(), "the process-wide limit of 2 holds");

    drop(on_b); // a connection of the *other* server frees a process-wide permit
    let waiting = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("served once any connection closed")
        .unwrap();
    assert!(waiting.is_ok());
    drop((on_a, waiting));
    assert!(
        eventually(Duration::from_secs(2), || ctx.open_connections() == 0).await,
        "permits come back when connections close"
    );
}
