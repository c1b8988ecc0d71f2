//! Hot reload of TLS material: new handshakes get the new certificate, open connections keep
//! going, bad material changes nothing, and reloading under load loses no request.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tlsplex::config::Config;
use tlsplex::{Context, ServerOptions, Supervisor};
use tlsplex_testkit::{any_port, connect, echo_backend, free_port, get, request, TestPki};

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
        .update(&ServerOptions::new("web", any_port(), new.store()))
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
        let options = ServerOptions::new("web", any_port(), certs[i % 2].store());
        handle.update(&options).unwrap();
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

/// A config with one `[[server]]` per (name, port, certificate stem, handler).
fn write_config(pki: &TestPki, servers: &[(&str, u16, &str, &str)]) -> Config {
    let mut text = String::new();
    for (name, port, cert, handler) in servers {
        text += &format!(
            "[[server]]\nname = \"{name}\"\nlisten = \"127.0.0.1:{port}\"\n\
             certificates = [{{ cert = \"{cert}.pem\", key = \"{cert}.key\" }}]\nhandler = {handler}\n"
        );
    }
    let path = pki.dir().join("tlsplex.toml");
    std::fs::write(&path, text).unwrap();
    Config::load(&path).unwrap()
}

const STATUS: &str = "{ type = \"status\" }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_adds_removes_rebinds_and_updates_by_name() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pki = TestPki::new();
    for stem in ["one", "two"] {
        pki.issue(stem, &["web.test"]);
    }
    let backend = echo_backend().await;
    let forward = format!("{{ type = \"forward\", backend = \"{backend}\" }}");
    let [web, api, old, api_moved, extra] = [(); 5].map(|()| free_port());
    let first = write_config(
        &pki,
        &[
            ("web", web, "one", STATUS),
            ("api", api, "one", STATUS),
            ("old", old, "one", &forward),
        ],
    );
    let ctx = first.global.context().unwrap();
    let mut supervisor =
        Supervisor::start(&ctx, first.servers.iter().map(|s| s.options())).unwrap();
    let client = pki.client(&["http/1.1"]);
    let at = |port: u16| std::net::SocketAddr::from(([127, 0, 0, 1], port));

    // A live connection through `old`, which the reload removes: it must keep working.
    let mut live = connect(at(old), "web.test", client.clone()).await.unwrap();
    live.write_all(b"before").await.unwrap();
    let mut echoed = [0u8; 6];
    live.read_exact(&mut echoed).await.unwrap();

    let second = write_config(
        &pki,
        &[
            ("web", web, "two", STATUS),
            ("api", api_moved, "one", STATUS),
            ("extra", extra, "one", STATUS),
        ],
    );
    let report = supervisor
        .reload(second.servers.iter().map(|s| s.options()))
        .await;
    assert!(report.errors.is_empty(), "{report:?}");
    assert_eq!(report.added, ["extra"]);
    assert_eq!(report.removed, ["old"]);
    assert_eq!(report.rebound, ["api"]);
    assert_eq!(report.updated, ["web"]);

    let two = std::fs::read(pki.dir().join("two.pem")).unwrap();
    let (_, presented) = get(at(web), "web.test", "/", client.clone()).await.unwrap();
    assert_eq!(
        rustls::pki_types::pem::PemObject::from_pem_slice(&two).ok(),
        Some(presented)
    );
    for port in [api_moved, extra] {
        assert_eq!(
            get(at(port), "web.test", "/", client.clone())
                .await
                .unwrap()
                .0
                .status,
            200
        );
    }
    for port in [api, old] {
        assert!(
            tokio::net::TcpStream::connect(at(port)).await.is_err(),
            "{port} is closed"
        );
    }
    live.write_all(b"after!").await.unwrap();
    live.read_exact(&mut echoed).await.unwrap();
    assert_eq!(
        &echoed, b"after!",
        "the removed server's connection drains, not dropped"
    );
    let names: Vec<_> = ctx
        .registry()
        .list()
        .into_iter()
        .map(|l| (l.name, l.state))
        .collect();
    assert!(
        names.contains(&("old".to_owned(), tlsplex::registry::ServerState::Draining)),
        "{names:?}"
    );
    drop(live);
    supervisor.shutdown().await;
    assert!(ctx.registry().list().is_empty());
}

#[tokio::test]
async fn a_reload_that_cannot_bind_changes_nothing() {
    let pki = TestPki::new();
    pki.issue("one", &["web.test"]);
    let (web, extra) = (free_port(), free_port());
    let first = write_config(&pki, &[("web", web, "one", STATUS)]);
    let ctx = first.global.context().unwrap();
    let mut supervisor =
        Supervisor::start(&ctx, first.servers.iter().map(|s| s.options())).unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().port();
    let second = write_config(
        &pki,
        &[
            ("web", busy, "one", STATUS),
            ("extra", extra, "one", STATUS),
        ],
    );
    let report = supervisor
        .reload(second.servers.iter().map(|s| s.options()))
        .await;
    assert_eq!(report.errors.len(), 1, "{report:?}");
    assert!(report.errors[0].contains(&format!(
        "server \"web\": cannot listen on 127.0.0.1:{busy}"
    )));
    assert!(report.added.is_empty() && report.rebound.is_empty() && report.updated.is_empty());
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", extra))
            .await
            .is_err(),
        "extra not started"
    );
    let (page, _) = get(
        ([127, 0, 0, 1], web).into(),
        "web.test",
        "/",
        pki.client(&[]),
    )
    .await
    .unwrap();
    assert_eq!(page.status, 200, "web still serves on its old address");
}

#[tokio::test]
async fn a_reload_rebuilds_only_the_servers_whose_inputs_changed() {
    let pki = TestPki::new();
    pki.issue("one", &["web.test"]);
    pki.issue("two", &["api.test"]);
    let site = pki.dir().join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("404.html"), "first").unwrap();
    let files = "{ type = \"static\", root = \"site\", error_pages = { 404 = \"404.html\" } }";
    let ports = [free_port(), free_port(), free_port(), free_port()];
    let servers = |timeout: &str| {
        [
            ("a", ports[0], "one", STATUS.to_owned()),
            ("b", ports[1], "one", STATUS.to_owned()),
            ("c", ports[2], "two", STATUS.to_owned()),
            ("d", ports[3], "one", files.to_owned()),
        ]
        .map(|(name, port, cert, handler)| (name, port, cert, format!("{handler}{timeout}")))
    };
    let config = |timeout: &str| {
        let servers = servers(timeout);
        let refs: Vec<(&str, u16, &str, &str)> = servers
            .iter()
            .map(|(n, p, c, h)| (*n, *p, *c, h.as_str()))
            .collect();
        write_config(&pki, &refs)
    };
    let first = config("");
    let ctx = first.global.context().unwrap();
    let mut supervisor =
        Supervisor::start(&ctx, first.servers.iter().map(|s| s.options())).unwrap();
    let path = pki.dir().join("tlsplex.toml");
    let mut last = first;
    let mut reload =
        async |supervisor: &mut Supervisor| reload_after(supervisor, &path, &mut last).await;

    // Nothing changed: nothing rebuilt.
    let (updated, unchanged) = {
        config("");
        reload(&mut supervisor).await
    };
    assert!(updated.is_empty(), "{updated:?}");
    assert_eq!(unchanged, ["a", "b", "c", "d"]);
    // A certificate file two servers name: those two; an error page's content: its server.
    pki.issue("two", &["api.test", "www.api.test"]);
    let (updated, _) = {
        config("");
        reload(&mut supervisor).await
    };
    assert_eq!(updated, ["c"]);
    std::fs::write(site.join("404.html"), "second").unwrap();
    let (updated, _) = {
        config("");
        reload(&mut supervisor).await
    };
    assert_eq!(updated, ["d"]);
    pki.issue("one", &["web.test", "www.web.test"]);
    let (updated, unchanged) = {
        config("");
        reload(&mut supervisor).await
    };
    assert_eq!(
        (updated, unchanged),
        (
            vec!["a".into(), "b".into(), "d".into()],
            vec!["c".to_owned()]
        )
    );
    // A server's own table; then a setting every server is built with ([global]).
    let (updated, _) = {
        config("\naccess_log = true");
        reload(&mut supervisor).await
    };
    assert_eq!(updated, ["a", "b", "c", "d"]);
    std::fs::write(
        pki.dir().join("tlsplex.toml"),
        format!(
            "[global]\nhandshake_timeout = \"7s\"\n{}",
            std::fs::read_to_string(pki.dir().join("tlsplex.toml")).unwrap()
        ),
    )
    .unwrap();
    let (updated, _) = reload(&mut supervisor).await;
    assert_eq!(updated, ["a", "b", "c", "d"]);
    // The served certificate is the new one where it changed.
    let two = std::fs::read(pki.dir().join("two.pem")).unwrap();
    let at = std::net::SocketAddr::from(([127, 0, 0, 1], ports[2]));
    let (_, presented) = get(at, "www.api.test", "/", pki.client(&["http/1.1"]))
        .await
        .unwrap();
    assert_eq!(
        rustls::pki_types::pem::PemObject::from_pem_slice(&two).ok(),
        Some(presented)
    );
    supervisor.shutdown().await;
}

/// Loads the file at `path` after `last` (taking unchanged servers from it) and reloads: the
/// servers updated and those left unchanged. An unchanged server's spec is the previous one
/// (not validated again: the same certificate store); an updated one's is new.
async fn reload_after(
    supervisor: &mut Supervisor,
    path: &std::path::Path,
    last: &mut Config,
) -> (Vec<String>, Vec<String>) {
    let config = Config::load_after(path, Some(last)).unwrap();
    let options = config.servers.iter().map(|s| s.options());
    let report = supervisor.reload(options).await;
    assert!(report.errors.is_empty(), "{report:?}");
    for spec in &config.servers {
        let before = last.servers.iter().find(|s| s.name == spec.name).unwrap();
        let reused = Arc::ptr_eq(&before.certs, &spec.certs);
        assert_eq!(
            reused,
            report.unchanged.contains(&spec.name),
            "{}",
            spec.name
        );
    }
    *last = config;
    (report.updated, report.unchanged)
}
