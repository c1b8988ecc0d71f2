//! Client certificates: required and optional, other CAs, revocation by CRL, and what reaches
//! the handler.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

use std::sync::Arc;

use rustls::version::{TLS12, TLS13};
use tlsplex::tls::{ClientAuth, ClientAuthMode};
use tlsplex::{Context, ServerOptions, TlsPolicy};
use tlsplex_testkit::{any_port, get, start, TestCert, TestPki};

/// A server on a fresh port that verifies clients against `clients`' CA, revoking serial 666.
fn mtls_server(
    ctx: &Context,
    server_pki: &TestPki,
    clients: &TestPki,
    mode: ClientAuthMode,
) -> std::net::SocketAddr {
    let crl = clients.crl("clients", &[666]);
    let client_auth = ClientAuth::from_files(&clients.ca_file(), &[crl], mode).unwrap();
    let mut policy = TlsPolicy::default();
    policy.client_auth = Some(client_auth);
    let cert = server_pki.issue("server", &["mtls.test"]);
    start(
        ctx,
        ServerOptions::new(format!("mtls-{mode:?}"), any_port(), cert.store()).tls(policy),
    )
}

async fn get_as(
    addr: std::net::SocketAddr,
    server_pki: &TestPki,
    cert: Option<&TestCert>,
    version: &'static rustls::SupportedProtocolVersion,
) -> std::io::Result<serde_json::Value> {
    let client = Arc::new(server_pki.client_builder(&[version], &[], cert));
    let (page, _) = get(addr, "mtls.test", "/?format=json", client).await?;
    Ok(page.json())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_client_certificates() {
    let server_pki = TestPki::new();
    let clients = TestPki::new();
    let strangers = TestPki::new();
    let ctx = Context::builder().build();
    let addr = mtls_server(&ctx, &server_pki, &clients, ClientAuthMode::Required);
    let valid = clients.issue_client("alice", "alice", 1);
    let revoked = clients.issue_client("mallory", "mallory", 666);
    let foreign = strangers.issue_client("eve", "eve", 2);

    for version in [&TLS13, &TLS12] {
        // TLS 1.3 reports the refusal after the client's Finished, so it shows on the request.
        assert!(
            get_as(addr, &server_pki, None, version).await.is_err(),
            "no certificate"
        );
        assert!(
            get_as(addr, &server_pki, Some(&foreign), version)
                .await
                .is_err(),
            "other CA"
        );
        assert!(
            get_as(addr, &server_pki, Some(&revoked), version)
                .await
                .is_err(),
            "revoked"
        );
        let page = get_as(addr, &server_pki, Some(&valid), version)
            .await
            .unwrap();
        assert_eq!(page["client_cert"]["subject"], "CN=alice");
        assert_eq!(page["client_cert"]["dns_names"][0], "alice");
        assert_eq!(
            page["client_cert"]["sha256_fingerprint"],
            tlsplex::tls::sha256_fingerprint(&valid.cert_der)
        );
    }
}

#[tokio::test]
async fn optional_client_certificates() {
    let server_pki = TestPki::new();
    let clients = TestPki::new();
    let ctx = Context::builder().build();
    let addr = mtls_server(&ctx, &server_pki, &clients, ClientAuthMode::Optional);
    let anonymous = get_as(addr, &server_pki, None, &TLS13).await.unwrap();
    assert_eq!(anonymous["client_cert"], serde_json::Value::Null);
    let bob = clients.issue_client("bob", "bob", 3);
    let named = get_as(addr, &server_pki, Some(&bob), &TLS13).await.unwrap();
    assert_eq!(named["client_cert"]["subject"], "CN=bob");
    let revoked = clients.issue_client("mallory", "mallory", 666);
    assert!(
        get_as(addr, &server_pki, Some(&revoked), &TLS13)
            .await
            .is_err(),
        "a certificate that is presented must still verify"
    );
}

#[tokio::test]
async fn two_servers_with_different_cas_each_accept_only_their_own_clients() {
    let server_pki = TestPki::new();
    let (team_a, team_b) = (TestPki::new(), TestPki::new());
    let ctx = Context::builder().build();
    let server_a = mtls_server(&ctx, &server_pki, &team_a, ClientAuthMode::Required);
    let server_b = {
        let crl = team_b.crl("b", &[]);
        let auth =
            ClientAuth::from_files(&team_b.ca_file(), &[crl], ClientAuthMode::Required).unwrap();
        let mut policy = TlsPolicy::default();
        policy.client_auth = Some(auth);
        let cert = server_pki.issue("server-b", &["mtls.test"]);
        start(
            &ctx,
            ServerOptions::new("b", any_port(), cert.store()).tls(policy),
        )
    };
    let alice = team_a.issue_client("alice", "alice", 1);
    let bob = team_b.issue_client("bob", "bob", 1);
    assert!(get_as(server_a, &server_pki, Some(&alice), &TLS13)
        .await
        .is_ok());
    assert!(get_as(server_a, &server_pki, Some(&bob), &TLS13)
        .await
        .is_err());
    assert!(get_as(server_b, &server_pki, Some(&bob), &TLS13)
        .await
        .is_ok());
    assert!(get_as(server_b, &server_pki, Some(&alice), &TLS13)
        .await
        .is_err());
}

#[test]
fn bad_client_auth_files_name_the_file() {
    let pki = TestPki::new();
    let missing = pki.dir().join("missing-ca.pem");
    let error = ClientAuth::from_files(&missing, &[], ClientAuthMode::Required).unwrap_err();
    assert!(error
        .to_string()
        .starts_with(&format!("cannot read {}", missing.display())));

    let not_a_crl = pki.dir().join("bad.crl");
    std::fs::write(
        &not_a_crl,
        "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
    )
    .unwrap();
    let error = ClientAuth::from_files(
        &pki.ca_file(),
        std::slice::from_ref(&not_a_crl),
        ClientAuthMode::Required,
    )
    .unwrap_err();
    assert!(
        error.to_string().contains(&not_a_crl.display().to_string()),
        "{error}"
    );
    assert!(error.to_string().contains("not a usable CRL"), "{error}");

    let empty = pki.dir().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let error = ClientAuth::from_files(&empty, &[], ClientAuthMode::Required).unwrap_err();
    assert!(
        error.to_string().contains("contains no CA certificate"),
        "{error}"
    );
}
