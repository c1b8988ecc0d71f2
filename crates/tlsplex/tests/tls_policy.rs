//! Per-server protocol policy: versions, suites and their order, key types, strict SNI.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

use std::sync::Arc;

use rustls::version::{TLS12, TLS13};
use tlsplex::{CertStore, Context, ServerOptions, TlsPolicy};
use tlsplex_testkit::{any_port, connect, get, start, TestPki};

fn policy(f: impl FnOnce(&mut TlsPolicy)) -> TlsPolicy {
    let mut policy = TlsPolicy::default();
    f(&mut policy);
    policy
}

#[tokio::test]
async fn a_tls13_only_server_refuses_tls12_clients_and_the_reverse() {
    let pki = TestPki::new();
    let ctx = Context::builder().build();
    let cert = pki.issue("web", &["web.test"]);
    let only13 = start(
        &ctx,
        ServerOptions::new("only13", any_port(), cert.store())
            .tls(policy(|p| p.versions = vec![&TLS13])),
    );
    let only12 = start(
        &ctx,
        ServerOptions::new("only12", any_port(), cert.store())
            .tls(policy(|p| p.versions = vec![&TLS12])),
    );
    let client12 = Arc::new(pki.client_builder(&[&TLS12], &[], None));
    let client13 = Arc::new(pki.client_builder(&[&TLS13], &[], None));

    assert!(connect(only13, "web.test", client12.clone()).await.is_err());
    assert!(connect(only12, "web.test", client13.clone()).await.is_err());

    let (page, _) = get(only13, "web.test", "/?format=json", client13)
        .await
        .unwrap();
    assert_eq!(page.json()["tls_version"], "TLSv1.3");
    let (page, _) = get(only12, "web.test", "/?format=json", client12)
        .await
        .unwrap();
    assert_eq!(page.json()["tls_version"], "TLSv1.2");
}

#[tokio::test]
async fn the_servers_suite_order_wins_and_unlisted_suites_are_refused() {
    let pki = TestPki::new();
    let ctx = Context::builder().build();
    let cert = pki.issue("web", &["web.test"]);
    let names = [
        "TLS13_CHACHA20_POLY1305_SHA256".to_owned(),
        "TLS13_AES_128_GCM_SHA256".to_owned(),
    ];
    let suites = TlsPolicy::parse_cipher_suites(&names).unwrap();
    let addr = start(
        &ctx,
        ServerOptions::new("web", any_port(), cert.store()).tls(policy(|p| {
            p.versions = vec![&TLS13];
            p.cipher_suites = suites;
        })),
    );
    // The client prefers AES-128 (rustls' default order lists AES-256 and AES-128 first).
    let (page, _) = get(addr, "web.test", "/?format=json", pki.client(&[]))
        .await
        .unwrap();
    assert_eq!(
        page.json()["cipher_suite"],
        "TLS13_CHACHA20_POLY1305_SHA256"
    );

    // A client offering only AES-256 finds nothing in common.
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let aes256 = TlsPolicy::parse_cipher_suites(&["TLS13_AES_256_GCM_SHA384".to_owned()]).unwrap();
    let only_aes256 = rustls::crypto::CryptoProvider {
        cipher_suites: aes256,
        ..provider
    };
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(only_aes256))
        .with_protocol_versions(&[&TLS13])
        .unwrap()
        .with_root_certificates(pki.roots())
        .with_no_client_auth();
    assert!(connect(addr, "web.test", Arc::new(client)).await.is_err());
}

#[test]
fn names_tlsplex_does_not_offer_are_refused_with_the_choices() {
    let error = TlsPolicy::parse_versions(&["TLSv1.1".to_owned()]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "protocol version \"TLSv1.1\" is not offered by tlsplex; choose from: TLSv1.3, TLSv1.2"
    );
    let error =
        TlsPolicy::parse_cipher_suites(&["TLS_RSA_WITH_RC4_128_SHA".to_owned()]).unwrap_err();
    assert!(error
        .to_string()
        .contains("cipher suite \"TLS_RSA_WITH_RC4_128_SHA\" is not offered"));
    assert!(error.to_string().contains("TLS13_AES_128_GCM_SHA256"));
    let error = TlsPolicy::parse_kx_groups(&["ffdhe2048".to_owned()]).unwrap_err();
    assert!(error
        .to_string()
        .contains("key-exchange group \"ffdhe2048\" is not offered"));
    assert!(error.to_string().contains("X25519"));
}

#[tokio::test]
async fn ecdsa_p384_ed25519_and_rsa_keys_all_serve() {
    let pki = TestPki::new();
    let ctx = Context::builder().build();
    let algorithms = [
        ("p384", &rcgen::PKCS_ECDSA_P384_SHA384),
        ("ed25519", &rcgen::PKCS_ED25519),
        ("rsa", &rcgen::PKCS_RSA_SHA256),
    ];
    for (name, algorithm) in algorithms {
        let host = format!("{name}.test");
        let cert = pki.issue_with(name, &[&host], algorithm);
        let addr = start(&ctx, ServerOptions::new(name, any_port(), cert.store()));
        let (page, presented) = get(addr, &host, "/", pki.client(&[])).await.unwrap();
        assert_eq!(page.status, 200, "{name}");
        assert_eq!(presented, cert.cert_der, "{name}");
    }
}

#[tokio::test]
async fn strict_sni_refuses_unknown_names_with_unrecognized_name() {
    let pki = TestPki::new();
    let ctx = Context::builder().build();
    let a = pki.issue("a", &["a.test"]);
    let wild = pki.issue("wild", &["*.w.test"]);
    let store = CertStore::new(a.identity(), vec![wild.identity()]);
    let addr = start(
        &ctx,
        ServerOptions::new("strict", any_port(), store).tls(policy(|p| p.strict_sni = true)),
    );
    let client = pki.client(&[]);
    assert!(get(addr, "a.test", "/", client.clone()).await.is_ok());
    assert!(get(addr, "x.w.test", "/", client.clone()).await.is_ok());

    let error = connect(addr, "other.test", client).await.unwrap_err();
    let tls_error = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    assert_eq!(
        tls_error,
        Some(&rustls::Error::AlertReceived(
            rustls::AlertDescription::UnrecognisedName
        )),
        "{error}"
    );
}
