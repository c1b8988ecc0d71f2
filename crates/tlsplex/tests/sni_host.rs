//! `strict_sni_host`: a request whose host is not the connection's SNI gets 421 (Caddy's
//! `strict_sni_host`), where on; any host is served where off.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

use std::net::SocketAddr;

use tlsplex::{Context, ServerOptions, TlsPolicy};
use tlsplex_testkit::{any_port, connect, read_response, start, TestPki};
use tokio::io::AsyncWriteExt;

async fn status_for(addr: SocketAddr, pki: &TestPki, sni: &str, host: &str, alpn: &str) -> u16 {
    let mut tls = connect(addr, sni, pki.client(&[alpn])).await.unwrap();
    tls.write_all(format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    read_response(&mut tls).await.unwrap().status
}

#[tokio::test]
async fn a_request_for_another_name_than_the_sni_is_misdirected() {
    let pki = TestPki::new();
    let ctx = Context::builder().build();
    let cert = pki.issue("web", &["a.test", "b.test"]);
    let mut strict = TlsPolicy::default();
    strict.strict_sni_host = Some(true);
    let on = start(
        &ctx,
        ServerOptions::new("on", any_port(), cert.store()).tls(strict),
    );
    let off = start(&ctx, ServerOptions::new("off", any_port(), cert.store()));
    assert_eq!(
        status_for(on, &pki, "a.test", "a.test", "http/1.1").await,
        200
    );
    assert_eq!(
        status_for(on, &pki, "a.test", "A.TEST:443", "http/1.1").await,
        200
    );
    assert_eq!(
        status_for(on, &pki, "a.test", "b.test", "http/1.1").await,
        421
    );
    assert_eq!(
        status_for(on, &pki, "a.test", "a.test@b.test", "http/1.1").await,
        421
    );
    assert_eq!(
        status_for(off, &pki, "a.test", "b.test", "http/1.1").await,
        200
    );
}

#[test]
fn on_by_default_where_client_certificates_are_asked_for() {
    let pki = TestPki::new();
    let mut policy = TlsPolicy::default();
    assert!(!policy.strict_sni_host());
    policy.client_auth = Some(
        tlsplex::tls::ClientAuth::from_files(
            &pki.ca_file(),
            &[],
            tlsplex::tls::ClientAuthMode::Required,
        )
        .unwrap(),
    );
    assert!(policy.strict_sni_host());
    policy.strict_sni_host = Some(false);
    assert!(!policy.strict_sni_host());
}
