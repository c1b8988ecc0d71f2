//! Many servers in one process, all naming one certificate file: the file is read and parsed
//! once, watched once, and each further server costs a few KiB, not a copy of everything.
//! (The benchmark measures 10,000; this test keeps 2,000 so a debug build stays quick.) Its own
//! test binary: the RSS it measures is this process's.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

use tlsplex::config::Config;
use tlsplex::Supervisor;
use tlsplex_testkit::{rss_kib, TestPki};

const SERVERS: usize = 2_000;

fn config(pki: &TestPki, servers: usize) -> Config {
    pki.issue("shared", &["web.test"]);
    let mut text = String::new();
    for i in 0..servers {
        text += &format!(
            "[[server]]\nname = \"s{i}\"\nlisten = \"127.0.0.1:0\"\n\
             certificates = [{{ cert = \"shared.pem\", key = \"shared.key\" }}]\n"
        );
    }
    let path = pki.dir().join("tlsplex.toml");
    std::fs::write(&path, text).unwrap();
    Config::load(&path).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_servers_share_one_certificate_and_cost_little_each() {
    let pki = TestPki::new();
    let config = config(&pki, SERVERS);
    let leaves: Vec<_> = config
        .servers
        .iter()
        .map(|s| s.options().certs().clone())
        .collect();
    assert!(
        leaves.iter().all(|store| std::ptr::eq(
            store.default_identity().leaf(),
            leaves[0].default_identity().leaf()
        )),
        "every server holds the one parsed certificate"
    );
    drop(leaves);
    assert_eq!(
        config.watched_files().len(),
        3,
        "the config file, the certificate and the key, each once: {:?}",
        config.watched_files()
    );

    let ctx = config.global.context().unwrap();
    let options: Vec<_> = config.servers.iter().map(|s| s.options()).collect();
    // One server first, so what is measured is the cost of each further one.
    let first = Supervisor::start(&ctx, options[..1].to_vec()).unwrap();
    let before = rss_kib();
    let rest = Supervisor::start(&ctx, options[1..].to_vec()).unwrap();
    let per_server = (rss_kib().saturating_sub(before)) as f64 / (SERVERS - 1) as f64;
    assert_eq!(ctx.registry().list().len(), SERVERS);
    // 4.6 KiB measured (debug build, this test); 28.6 with rustls' session cache allocated at
    // bind. The bound leaves room for allocator noise.
    assert!(
        per_server < 10.0,
        "each server costs {per_server:.1} KiB of RSS"
    );
    let exposition = ctx.metrics().encode();
    let accepted = exposition
        .lines()
        .filter(|l| l.starts_with("tlsplex_connections_accepted_total{"))
        .count();
    assert_eq!(accepted, SERVERS, "every server has its series");
    rest.shutdown().await;
    first.shutdown().await;
}
