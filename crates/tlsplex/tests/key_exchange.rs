//! The negotiated key-exchange group reaches the status page's JSON and the metrics; rustls
//! follows the client's preference among the groups a server allows.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

use std::sync::Arc;

use tlsplex::rustls::{self, ClientConfig, NamedGroup};
use tlsplex::{Context, ServerOptions, TlsPolicy};
use tlsplex_testkit::{any_port, get, start, TestPki};

/// A client offering the post-quantum hybrid first, as browsers do.
fn hybrid_first(pki: &TestPki) -> Arc<ClientConfig> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider
        .kx_groups
        .sort_by_key(|group| group.name() != NamedGroup::X25519MLKEM768);
    let config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(pki.roots())
        .with_no_client_auth();
    Arc::new(config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_is_shown_and_counted() {
    let pki = TestPki::new();
    let ctx = Context::builder().build();
    let cert = pki.issue("kx", &["kx.test"]);
    let pq = start(&ctx, ServerOptions::new("pq", any_port(), cert.store()));
    let mut x25519_only = TlsPolicy::default();
    x25519_only.kx_groups = TlsPolicy::parse_kx_groups(&["X25519".to_owned()]).unwrap();
    let classic = start(
        &ctx,
        ServerOptions::new("classic", any_port(), cert.store()).tls(x25519_only),
    );
    for (addr, client, group) in [
        (pq, hybrid_first(&pki), "X25519MLKEM768"),
        (pq, pki.client(&[]), "X25519"),
        (classic, hybrid_first(&pki), "X25519"),
    ] {
        let (page, _) = get(addr, "kx.test", "/?format=json", client).await.unwrap();
        assert_eq!(page.json()["key_exchange_group"], group);
    }
    let metrics = ctx.metrics().encode();
    for line in [
        "tlsplex_handshakes_by_group_total{server=\"pq\",group=\"X25519MLKEM768\"} 1",
        "tlsplex_handshakes_by_group_total{server=\"pq\",group=\"X25519\"} 1",
        "tlsplex_handshakes_by_group_total{server=\"classic\",group=\"X25519\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
}
