//! Several servers in one process, each on its own port with its own certificate.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

use tlsplex::{Context, Server, ServerOptions};
use tlsplex_testkit::{any_port, connect, get, start, TestPki};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_server_answers_with_its_own_certificate() {
    let pki = TestPki::new();
    let ctx = Context::builder().build();
    let names = ["alpha.test", "beta.test", "gamma.test"];
    let mut running = Vec::new();
    for name in names {
        let cert = pki.issue(name, &[name]);
        // The list is opt-in (alpha's page lists every server; the others list none).
        let options = ServerOptions::new(name, any_port(), cert.store())
            .status_lists_servers(name == "alpha.test");
        let server = Server::bind(&ctx, options).unwrap();
        running.push((name, server.local_addr(), cert.cert_der.clone()));
        tokio::spawn(server.run());
    }
    let ports: std::collections::HashSet<_> = running.iter().map(|(_, a, _)| a.port()).collect();
    assert_eq!(ports.len(), 3, "each server has its own port");

    for (name, addr, cert) in &running {
        let (response, presented) = get(*addr, name, "/?format=json", pki.client(&["http/1.1"]))
            .await
            .unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(&presented, cert, "{name} presents its own certificate");
        assert_eq!(response.header("content-type"), Some("application/json"));
        let page = response.json();
        assert_eq!(page["server"], *name);
        assert_eq!(page["local_addr"], addr.to_string());
        assert_eq!(page["sni"], *name);
        assert_eq!(page["tls_version"], "TLSv1.3");
        assert_eq!(page["alpn"], "http/1.1");
        assert_eq!(page["http_version"], "HTTP/1.1");
        assert_eq!(page["resumed"], false);
        assert!(page["handshake_ms"].as_f64().unwrap() > 0.0);
        let listed: Vec<_> = page["servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect();
        if *name == "alpha.test" {
            assert_eq!(listed, names, "the page lists every server of the process");
        } else {
            assert!(listed.is_empty(), "{name} lists no server unless asked to");
        }
    }
}

#[tokio::test]
async fn status_page_is_html_unless_json_is_asked_for() {
    let pki = TestPki::new();
    let ctx = Context::builder().build();
    let cert = pki.issue("web", &["web.test"]);
    let server =
        Server::bind(&ctx, ServerOptions::new("web<1>", any_port(), cert.store())).unwrap();
    let addr = server.local_addr();
    tokio::spawn(server.run());

    let (html, _) = get(addr, "web.test", "/any/path", pki.client(&[]))
        .await
        .unwrap();
    assert_eq!(html.status, 200);
    assert_eq!(
        html.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        html.body
            .contains("<span id=\"server\">web&lt;1&gt;</span>"),
        "{}",
        html.body
    );
    assert!(html.body.contains("TLSv1.3"));

    let mut stream = tlsplex_testkit::connect(addr, "web.test", pki.client(&[]))
        .await
        .unwrap();
    use tokio::io::AsyncWriteExt;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: web.test\r\nAccept: application/json\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let json = tlsplex_testkit::read_response(&mut stream).await.unwrap();
    assert_eq!(json.json()["server"], "web<1>");
}

#[tokio::test]
async fn alpn_prefers_h2_and_falls_back_to_http11() {
    let pki = TestPki::new();
    let ctx = Context::builder().build();
    let cert = pki.issue("web", &["web.test"]);
    let addr = start(&ctx, ServerOptions::new("web", any_port(), cert.store()));

    let both = connect(addr, "web.test", pki.client(&["http/1.1", "h2"]))
        .await
        .unwrap();
    assert_eq!(both.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let h1 = connect(addr, "web.test", pki.client(&["http/1.1"]))
        .await
        .unwrap();
    assert_eq!(h1.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
}

#[tokio::test]
async fn two_contexts_in_one_process_are_independent() {
    let pki = TestPki::new();
    let cert = pki.issue("web", &["web.test"]);
    let first = Context::builder().build();
    let second = Context::builder().build();
    // The same name in two contexts is fine; in one context it is refused.
    let a = Server::bind(&first, ServerOptions::new("web", any_port(), cert.store())).unwrap();
    let b = Server::bind(&second, ServerOptions::new("web", any_port(), cert.store())).unwrap();
    let clash = Server::bind(&first, ServerOptions::new("web", any_port(), cert.store()));
    let error = clash.err().unwrap().to_string();
    assert!(
        error.contains("a server named \"web\" already exists"),
        "{error}"
    );
    assert_eq!(first.registry().list().len(), 1);
    assert_eq!(second.registry().list().len(), 1);
    drop((a, b));
    assert!(
        first.registry().list().is_empty(),
        "a dropped server leaves the registry"
    );
}
