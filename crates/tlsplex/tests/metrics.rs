//! Metrics move as connections happen, and encode in the Prometheus text format.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

use std::collections::HashMap;
use std::time::Duration;

use tlsplex::{CertStore, Context, Identity, Server, ServerOptions};
use tlsplex_testkit::{any_port, eventually, get, start, TestPki};
use tokio::io::AsyncWriteExt;

/// `name{labels} value` lines, keyed by `name{labels}`.
fn scrape(ctx: &Context) -> HashMap<String, f64> {
    ctx.metrics()
        .encode()
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            Some((key.to_owned(), value.parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_follow_connections_handshakes_and_failures() {
    let pki = TestPki::new();
    let ctx = Context::builder()
        .handshake_timeout(Duration::from_millis(200))
        .build();
    let cert = pki.issue("web", &["web.test"]);
    let addr = start(&ctx, ServerOptions::new("web", any_port(), cert.store()));
    for _ in 0..3 {
        assert_eq!(
            get(addr, "web.test", "/", pki.client(&[]))
                .await
                .unwrap()
                .0
                .status,
            200
        );
    }
    let mut garbage = tokio::net::TcpStream::connect(addr).await.unwrap();
    garbage.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let _silent = tokio::net::TcpStream::connect(addr).await.unwrap();

    let label = "{server=\"web\"}";
    let expect = |key: String, value: f64| {
        let ctx = ctx.clone();
        async move {
            let ok = eventually(Duration::from_secs(3), || {
                scrape(&ctx).get(&key) == Some(&value)
            })
            .await;
            assert!(ok, "{key} = {value}:\n{}", ctx.metrics().encode());
        }
    };
    expect(format!("tlsplex_connections_accepted_total{label}"), 5.0).await;
    expect(format!("tlsplex_handshakes_total{label}"), 3.0).await;
    expect(
        format!("tlsplex_handshake_duration_seconds_count{label}"),
        3.0,
    )
    .await;
    expect(
        "tlsplex_handshake_failures_total{server=\"web\",reason=\"protocol\"}".into(),
        1.0,
    )
    .await;
    expect(
        "tlsplex_handshake_failures_total{server=\"web\",reason=\"timeout\"}".into(),
        1.0,
    )
    .await;
    expect(format!("tlsplex_connections_active{label}"), 0.0).await;
    let metrics = scrape(&ctx);
    assert!(metrics[&format!("tlsplex_received_bytes_total{label}")] > 500.0);
    assert!(metrics[&format!("tlsplex_sent_bytes_total{label}")] > 1000.0);
    let expiry =
        metrics["tlsplex_certificate_expiry_timestamp_seconds{server=\"web\",name=\"web.test\"}"];
    assert!(
        expiry > 4_000_000_000.0,
        "rcgen's default validity ends in 4096: {expiry}"
    );
}

#[tokio::test]
async fn every_certificate_has_an_expiry_gauge_that_follows_updates() {
    let pki = TestPki::new();
    let ctx = Context::builder().build();
    let default = pki.issue("web", &["web.test"]);
    let soon = pki.issue_for_days("soon", &["soon.test", "www.soon.test"], 10);
    let store = || {
        CertStore::new(
            Identity::from_pem(default.cert_pem.as_bytes(), default.key_pem.as_bytes()).unwrap(),
            vec![Identity::from_pem(soon.cert_pem.as_bytes(), soon.key_pem.as_bytes()).unwrap()],
        )
    };
    let server = Server::bind(&ctx, ServerOptions::new("web", any_port(), store())).unwrap();
    let handle = server.handle();
    tokio::spawn(server.run());

    let gauge = |name: &str| {
        scrape(&ctx)
            .get(&format!(
                "tlsplex_certificate_expiry_timestamp_seconds{{server=\"web\",name=\"{name}\"}}"
            ))
            .copied()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let soon_expiry = gauge("soon.test").expect("the SNI certificate has its own series");
    let days = (soon_expiry - now) / 86_400.0;
    assert!((9.9..10.1).contains(&days), "10 days left: {days}");
    assert!(gauge("web.test").unwrap() > 4_000_000_000.0);
    assert_eq!(
        gauge("www.soon.test"),
        None,
        "labelled by the first name only"
    );

    // A reload without the SNI certificate removes its series.
    let only_default = CertStore::single(
        Identity::from_pem(default.cert_pem.as_bytes(), default.key_pem.as_bytes()).unwrap(),
    );
    handle
        .update(&ServerOptions::new("web", any_port(), only_default))
        .unwrap();
    assert_eq!(gauge("soon.test"), None, "{}", ctx.metrics().encode());
    assert!(gauge("web.test").is_some());
    handle.stop();
}
