//! Hot reload of TLS material: new handshakes get the new certificate, open connections keep
//! going, bad material changes nothing, and reloading under load loses no request.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tlsplex::{Config, Context, ServerOptions, Supervisor, TlsPolicy};
use tlsplex_testkit::{any_port, connect, get, request, TestPki};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_handshakes_get_the_new_certificate_and_open_connections_keep_going() {
    let pki = TestPki::new();
    let old = pki.issue("old", &["web.test"]);
    let new = pki.issue("new", &["web.test"]);
    let ctx = Context::builder().build();
    let supervisor =
        Supervisor::start(&ctx, [ServerOptions::new("web", any_port(), old.store())]).unwrap();
    let handle = supervisor.server("web").unwrap().clone();
    let addr = handle.local_addr();
    let client = pki.client(&["http/1.1"]);

    let mut opened_before = connect(addr, "web.test", client.clone()).await.unwrap();
    handle
        .reload_tls(new.store(), &TlsPolicy::default())
        .unwrap();

    let (_, presented) = get(addr, "web.test", "/", client.clone()).await.unwrap();
    assert_eq!(
        presented, new.cert_der,
        "new handshakes get the new certificate"
    );
    let still = opened_before.get_ref().1.peer_certificates().unwrap()[0].clone();
    assert_eq!(still, old.cert_der);
    let page = request(&mut opened_before, "web.test", "/").await.unwrap();
    assert_eq!(
        page.status, 200,
        "a connection opened before the reload keeps working"
    );
    supervisor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloading_twenty_times_under_load_loses_no_request() {
    let pki = TestPki::new();
    let certs = [
        pki.issue("one", &["web.test"]),
        pki.issue("two", &["web.test"]),
    ];
    let ctx = Context::builder().build();
    let supervisor = Supervisor::start(
        &ctx,
        [ServerOptions::new("web", any_port(), certs[0].store())],
    )
    .unwrap();
    let handle = supervisor.server("web").unwrap().clone();
    let addr = handle.local_addr();
    let client = pki.client(&["http/1.1"]);
    let (served, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let done = tokio_util::sync::CancellationToken::new();
    let mut load = Vec::new();
    for _ in 0..4 {
        let (client, served, failed, done) =
            (client.clone(), served.clone(), failed.clone(), done.clone());
        load.push(tokio::spawn(async move {
            while !done.is_cancelled() {
                match get(addr, "web.test", "/", client.clone()).await {
                    Ok((page, _)) if page.status == 200 => served.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for i in 0..20 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        handle
            .reload_tls(certs[i % 2].store(), &TlsPolicy::default())
            .unwrap();
    }
    done.cancel();
    for task in load {
        task.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    assert!(
        served.load(Ordering::Relaxed) > 20,
        "the load ran throughout"
    );
    supervisor.shutdown().await;
}

#[tokio::test]
async fn supervisor_reload_applies_a_config_and_reports_what_needs_a_restart() {
    let pki = TestPki::new();
    let first = pki.issue("first", &["web.test"]);
    let config_path = pki.dir().join("tlsplex.toml");
    let write = |cert: &str| {
        let text = format!(
            "[[server]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\ncertificates = [{{ cert = \"{cert}.pem\", key = \"{cert}.key\" }}]\n"
        );
        std::fs::write(&config_path, text).unwrap();
        Config::load(&config_path).unwrap()
    };
    let config = write("first");
    let ctx = config.global.context().unwrap();
    let supervisor = Supervisor::start(&ctx, config.servers.iter().map(|s| s.options())).unwrap();
    let addr = supervisor.server("web").unwrap().local_addr();
    let (_, presented) = get(addr, "web.test", "/", pki.client(&[])).await.unwrap();
    assert_eq!(presented, first.cert_der);

    let second = pki.issue("second", &["web.test"]);
    let report = supervisor.reload(&write("second"));
    assert_eq!(report.reloaded, ["web"]);
    assert!(report.errors.is_empty(), "{report:?}");
    let (_, presented) = get(addr, "web.test", "/", pki.client(&[])).await.unwrap();
    assert_eq!(presented, second.cert_der);

    let mut renamed = write("second");
    renamed.servers[0].name = "api".to_owned();
    let report = supervisor.reload(&renamed);
    assert_eq!(report.needs_restart.len(), 2, "{report:?}");
    assert!(report.needs_restart[0].contains("\"api\" is new"));
    assert!(report.needs_restart[1].contains("\"web\" is no longer configured"));
}
