//! Resumption cannot get past client authentication: a session made before a reload that
//! requires certificates, or before a CRL revoked its certificate, does not resume; neither does
//! one whose certificate has expired since, nor a chain of tickets older than `max_session_age`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::version::{TLS12, TLS13};
use rustls::{ClientConfig, SupportedProtocolVersion};
use tlsplex::tls::{ClientAuth, ClientAuthMode};
use tlsplex::{Context, ServerHandle, ServerOptions, TlsPolicy};
use tlsplex_testkit::{any_port, get, TestCert, TestPki};

struct Setup {
    server_pki: TestPki,
    clients: TestPki,
    cert: TestCert,
    handle: ServerHandle,
    addr: SocketAddr,
}

fn options(setup_cert: &TestCert, policy: TlsPolicy, addr: SocketAddr) -> ServerOptions {
    ServerOptions::new("mtls", addr, setup_cert.store()).tls(policy)
}

fn policy(clients: &TestPki, mode: ClientAuthMode, revoked: &[u64], age: Duration) -> TlsPolicy {
    let crl = clients.crl("clients", revoked);
    let mut policy = TlsPolicy::default();
    policy.client_auth = Some(ClientAuth::from_files(&clients.ca_file(), &[crl], mode).unwrap());
    policy.max_session_age = age;
    policy
}

fn setup(ctx: &Context, mode: ClientAuthMode, age: Duration) -> Setup {
    let server_pki = TestPki::new();
    let clients = TestPki::new();
    let cert = server_pki.issue("server", &["mtls.test"]);
    let server = tlsplex::Server::bind(
        ctx,
        options(&cert, policy(&clients, mode, &[], age), any_port()),
    )
    .unwrap();
    let (handle, addr) = (server.handle(), server.local_addr());
    tokio::spawn(server.run());
    Setup {
        server_pki,
        clients,
        cert,
        handle,
        addr,
    }
}

/// One request with `client` (whose session store remembers tickets): whether it was served,
/// and whether the session was resumed.
async fn visit(setup: &Setup, client: &Arc<ClientConfig>) -> Option<bool> {
    let (page, _) = get(setup.addr, "mtls.test", "/?format=json", client.clone())
        .await
        .ok()?;
    Some(page.json()["resumed"].as_bool().unwrap())
}

fn client(
    setup: &Setup,
    version: &'static SupportedProtocolVersion,
    cert: Option<&TestCert>,
) -> Arc<ClientConfig> {
    Arc::new(setup.server_pki.client_builder(&[version], &[], cert))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_session_does_not_resume_once_certificates_are_required() {
    for version in [&TLS13, &TLS12] {
        let ctx = Context::builder().build();
        let day = Duration::from_secs(86_400);
        let setup = setup(&ctx, ClientAuthMode::Optional, day);
        let anonymous = client(&setup, version, None);
        assert_eq!(visit(&setup, &anonymous).await, Some(false), "{version:?}");
        assert_eq!(
            visit(&setup, &anonymous).await,
            Some(true),
            "resumes under optional"
        );
        let required = policy(&setup.clients, ClientAuthMode::Required, &[], day);
        setup
            .handle
            .update(&options(&setup.cert, required, setup.addr))
            .unwrap();
        assert_eq!(
            visit(&setup, &anonymous).await,
            None,
            "{version:?}: refused"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_certificate_does_not_resume() {
    for version in [&TLS13, &TLS12] {
        let ctx = Context::builder().build();
        let day = Duration::from_secs(86_400);
        let setup = setup(&ctx, ClientAuthMode::Required, day);
        let alice = setup.clients.issue_client("alice", "alice", 7);
        let alice_client = client(&setup, version, Some(&alice));
        assert_eq!(visit(&setup, &alice_client).await, Some(false));
        assert_eq!(visit(&setup, &alice_client).await, Some(true));
        let revoking = policy(&setup.clients, ClientAuthMode::Required, &[7], day);
        setup
            .handle
            .update(&options(&setup.cert, revoking, setup.addr))
            .unwrap();
        assert_eq!(
            visit(&setup, &alice_client).await,
            None,
            "{version:?}: revoked"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_does_not_resume() {
    for version in [&TLS13, &TLS12] {
        let ctx = Context::builder().build();
        let setup = setup(&ctx, ClientAuthMode::Required, Duration::from_secs(86_400));
        let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
        let brief = setup
            .clients
            .issue_client_until("brief", "brief", 8, Some(soon));
        let brief_client = client(&setup, version, Some(&brief));
        assert_eq!(visit(&setup, &brief_client).await, Some(false));
        tokio::time::sleep(Duration::from_secs(3)).await;
        // Same policy, so the ticket opens; the certificate is checked again and has expired.
        assert_eq!(
            visit(&setup, &brief_client).await,
            None,
            "{version:?}: expired"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_resumptions_ends_at_max_session_age() {
    for version in [&TLS13, &TLS12] {
        let ctx = Context::builder().build();
        let setup = setup(&ctx, ClientAuthMode::Required, Duration::from_secs(2));
        let alice = setup.clients.issue_client("alice", "alice", 9);
        let alice_client = client(&setup, version, Some(&alice));
        assert_eq!(visit(&setup, &alice_client).await, Some(false));
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(
            visit(&setup, &alice_client).await,
            Some(true),
            "{version:?}"
        );
        // The ticket from that resumption is fresh, but its chain began over 2 s ago.
        tokio::time::sleep(Duration::from_millis(1800)).await;
        assert_eq!(
            visit(&setup, &alice_client).await,
            Some(false),
            "{version:?}: a full handshake once the chain is too old"
        );
    }
}
