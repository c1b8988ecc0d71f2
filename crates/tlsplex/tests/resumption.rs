//! Session resumption: tickets per server from one master secret, shared by key file.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::version::{TLS12, TLS13};
use rustls::{ClientConfig, HandshakeKind};
use tlsplex::tls::TicketKeys;
use tlsplex::{Context, ServerOptions, TlsPolicy};
use tlsplex_testkit::{any_port, connect, request, start, TestCert, TestPki};

/// GETs the status page; returns whether the client saw a resumed handshake and what the server
/// said about it.
async fn visit(addr: SocketAddr, client: &Arc<ClientConfig>) -> (bool, bool) {
    let mut stream = connect(addr, "web.test", client.clone()).await.unwrap();
    let resumed_here = stream.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
    // Reading the response also reads the TLS 1.3 tickets sent after the handshake.
    let page = request(&mut stream, "web.test", "/?format=json")
        .await
        .unwrap();
    (resumed_here, page.json()["resumed"] == true)
}

fn server(ctx: &Context, name: &str, cert: &TestCert, policy: TlsPolicy) -> SocketAddr {
    start(
        ctx,
        ServerOptions::new(name, any_port(), cert.store()).tls(policy),
    )
}

#[tokio::test]
async fn tls13_and_tls12_tickets_resume_on_the_same_server() {
    let pki = TestPki::new();
    let cert = pki.issue("web", &["web.test"]);
    let ctx = Context::builder().build();
    let mut policy = TlsPolicy::default();
    policy.session_cache_size = 0; // tickets alone
    let addr = server(&ctx, "web", &cert, policy);
    for version in [&TLS13, &TLS12] {
        let client = Arc::new(pki.client_builder(&[version], &[], None));
        assert_eq!(
            visit(addr, &client).await,
            (false, false),
            "{version:?}: first visit"
        );
        assert_eq!(
            visit(addr, &client).await,
            (true, true),
            "{version:?}: resumed"
        );
    }
}

#[tokio::test]
async fn the_session_cache_alone_resumes_too() {
    let pki = TestPki::new();
    let cert = pki.issue("web", &["web.test"]);
    let ctx = Context::builder().build();
    let mut policy = TlsPolicy::default();
    policy.tickets = false;
    let addr = server(&ctx, "web", &cert, policy);
    for version in [&TLS13, &TLS12] {
        let client = Arc::new(pki.client_builder(&[version], &[], None));
        visit(addr, &client).await;
        assert_eq!(visit(addr, &client).await, (true, true), "{version:?}");
    }
}

#[tokio::test]
async fn a_ticket_from_one_server_does_not_resume_on_another() {
    let pki = TestPki::new();
    // Both servers answer for web.test, so the client offers A's ticket to B.
    let cert_a = pki.issue("a", &["web.test"]);
    let cert_b = pki.issue("b", &["web.test"]);
    let ctx = Context::builder().build();
    let mut policy = TlsPolicy::default();
    policy.session_cache_size = 0;
    let a = server(&ctx, "a", &cert_a, policy.clone());
    let b = server(&ctx, "b", &cert_b, policy);
    for version in [&TLS13, &TLS12] {
        let client = Arc::new(pki.client_builder(&[version], &[], None));
        visit(a, &client).await;
        assert_eq!(
            visit(b, &client).await,
            (false, false),
            "{version:?}: B refuses A's ticket"
        );
    }
}

#[tokio::test]
async fn processes_sharing_a_key_file_resume_each_others_tickets() {
    let pki = TestPki::new();
    let cert = pki.issue("web", &["web.test"]);
    let key_file = pki.dir().join("ticket.key");
    std::fs::write(&key_file, tlsplex::tls::new_ticket_key_file().unwrap()).unwrap();
    let rotation = Duration::from_secs(3600);
    // Two contexts stand for two processes; each derives keys for its server called "web".
    let first = Context::builder()
        .ticket_keys(TicketKeys::from_file(&key_file, rotation).unwrap())
        .build();
    let second = Context::builder()
        .ticket_keys(TicketKeys::from_file(&key_file, rotation).unwrap())
        .build();
    let mut policy = TlsPolicy::default();
    policy.session_cache_size = 0;
    let one = server(&first, "web", &cert, policy.clone());
    let two = server(&second, "web", &cert, policy.clone());
    // A third process with its own random secret cannot read them.
    let stranger = server(&Context::builder().build(), "web", &cert, policy);
    for version in [&TLS13, &TLS12] {
        let client = Arc::new(pki.client_builder(&[version], &[], None));
        visit(one, &client).await;
        assert_eq!(
            visit(two, &client).await,
            (true, true),
            "{version:?}: shared key file"
        );
        let fresh = Arc::new(pki.client_builder(&[version], &[], None));
        visit(one, &fresh).await;
        assert_eq!(
            visit(stranger, &fresh).await,
            (false, false),
            "{version:?}: other secret"
        );
    }
}
