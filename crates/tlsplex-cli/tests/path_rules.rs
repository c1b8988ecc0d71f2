//! `[[server.path]]`: one name, a handler per path. First match wins, prefixes by whole
//! segments, `strip_prefix` handing the rest on; a path is normalised before any rule sees it,
//! so `..`, `%2e`, `//` cannot reach another rule than the one the normalised path names, and
//! an encoded slash is refused. Checked with curl (HTTP/1.1 and HTTP/2) against a backend that
//! records what it got, and with headless Chromium loading a page whose `/api/` call reaches
//! the app. Mistakes in rules are named with server, rule and key, in one pass.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

mod common;

use std::process::Command;

use common::{available, chromium_dom, free_port, tlsplex, Daemon};
use tlsplex_testkit::http_backend::HttpBackend;
use tlsplex_testkit::TestPki;

/// What curl got for `path` (sent as it is): status, `x-rule` header, then the body.
fn fetch(port: u16, pki: &TestPki, version: &str, path: &str) -> (String, String, String) {
    let out = Command::new("curl")
        .args(["-s", "--path-as-is", "-D", "-", version, "--cacert"])
        .arg(pki.ca_file())
        .args(["--resolve", &format!("web.test:{port}:127.0.0.1")])
        .arg(format!("https://web.test:{port}{path}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).unwrap_or("none").to_owned();
    let header = |name: &str| {
        head.lines()
            .find_map(|line| {
                let (n, v) = line.split_once(':')?;
                n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
            })
            .unwrap_or_default()
    };
    let rule = header("x-rule");
    let location = header("location");
    let shown = if location.is_empty() {
        body.to_owned()
    } else {
        location
    };
    (status, rule, shown)
}

const PAGE: &str = "<!doctype html><p id=\"out\">waiting</p><script>\
fetch('/api/hello?from=page').then(r => r.json())\
.then(j => { document.getElementById('out').textContent = 'app saw ' + j.target; })\
.catch(e => { document.getElementById('out').textContent = 'failed ' + e; });</script>\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_take_the_rule_their_normalised_path_names() {
    if !available("curl") {
        return;
    }
    let backend = HttpBackend::start().await;
    let pki = TestPki::new();
    let cert = pki.issue("web", &["web.test"]);
    let dir = pki.dir();
    std::fs::create_dir_all(dir.join("www")).unwrap();
    std::fs::write(dir.join("www/index.html"), PAGE).unwrap();
    std::fs::create_dir_all(dir.join("docs/guide")).unwrap();
    std::fs::write(dir.join("docs/guide/index.html"), "the guide\n").unwrap();
    let port = free_port();
    let config = dir.join("tlsplex.toml");
    std::fs::write(
        &config,
        format!(
            "[[server]]\nname = \"site\"\nlisten = \"127.0.0.1:{port}\"\n\
             certificates = [{{ cert = \"web.pem\", key = \"web.key\" }}]\n\
             handler = {{ type = \"static\", root = \"www\", response_headers = {{ set = {{ x-rule = \"site\" }} }} }}\n\
             [[server.path]]\nprefix = \"/api/\"\nstrip_prefix = true\n\
             handler = {{ type = \"proxy\", backend = \"{}\", response_headers = {{ set = {{ x-rule = \"api\" }} }} }}\n\
             [[server.path]]\nexact = \"/healthz\"\n\
             handler = {{ type = \"respond\", body = \"ok\\n\", response_headers = {{ set = {{ x-rule = \"healthz\" }} }} }}\n\
             [[server.path]]\nprefix = \"/docs\"\nstrip_prefix = true\n\
             handler = {{ type = \"static\", root = \"docs\", response_headers = {{ set = {{ x-rule = \"docs\" }} }} }}\n\
             [[server.path]]\nprefix = \"/private/\"\n\
             handler = {{ type = \"respond\", body = \"secret\\n\", access = {{ deny = [\"127.0.0.0/8\"] }} }}\n",
            backend.addr
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start(&["run", "-c", config.to_str().unwrap()]);
    daemon.wait_listening(&[([127, 0, 0, 1], port).into()]);

    let cases: &[(&str, &str, &str, &str)] = &[
        // path sent, status, rule, body (or location) it starts with
        ("/api/hello?x=1", "200", "api", "{"),
        ("/api", "200", "api", "{"),
        ("/healthz", "200", "healthz", "ok"),
        ("/healthz/", "404", "site", ""),
        ("/", "200", "site", "<!doctype html>"),
        ("/apix", "404", "site", ""),
        ("/docs/guide", "307", "docs", "/docs/guide/"),
        ("/docs/guide/", "200", "docs", "the guide"),
        // Another rule than the one the raw path seems to name: the normalised path's.
        ("/api/../healthz", "200", "healthz", "ok"),
        ("/api/%2e%2e/healthz", "200", "healthz", "ok"),
        ("/api/%2E%2e/private/x", "403", "", ""),
        ("/docs/../api/x", "200", "api", "{"),
        ("//api//users", "200", "api", "{"),
        ("/%61pi/x", "200", "api", "{"),
        ("/private/x", "403", "", ""),
        // An encoded slash is refused before any rule.
        (
            "/api%2f..%2fhealthz",
            "400",
            "",
            "400 Bad Request: the path holds an encoded slash",
        ),
        ("/api/%5c..%5chealthz", "400", "", "400 Bad Request"),
        ("/api/a%zz", "400", "", "400 Bad Request"),
    ];
    tokio::task::block_in_place(|| {
        for version in ["--http1.1", "--http2"] {
            for (path, status, rule, body) in cases {
                let (got_status, got_rule, got_body) = fetch(port, &pki, version, path);
                assert_eq!(
                    (got_status.as_str(), got_rule.as_str()),
                    (*status, *rule),
                    "{version} {path}: {got_body}"
                );
                assert!(got_body.starts_with(body), "{version} {path}: {got_body:?}");
            }
        }
    });
    // The app saw the normalised path with the prefix stripped, never a `..`.
    let targets: Vec<String> = backend.received().into_iter().map(|r| r.target).collect();
    let expected = ["/hello?x=1", "/", "/x", "/users", "/x"];
    let twice: Vec<&str> = expected.iter().chain(&expected).copied().collect();
    assert_eq!(targets, twice);

    if available("chromium") {
        let url = format!("https://web.test:{port}/");
        let budget = ["--virtual-time-budget=10000"];
        let dom = tokio::task::block_in_place(|| chromium_dom(&cert.cert_path, &url, &budget));
        assert!(
            dom.contains("<p id=\"out\">app saw /hello?from=page</p>"),
            "the page's call reached the app:\n{dom}"
        );
    }
}

#[test]
fn mistakes_in_rules_are_named_in_one_pass() {
    let pki = TestPki::new();
    pki.issue("web", &["web.test"]);
    std::fs::create_dir_all(pki.dir().join("www")).unwrap();
    let bad = pki.dir().join("bad.toml");
    std::fs::write(
        &bad,
        "[[server]]\nname = \"s\"\nlisten = \"127.0.0.1:0\"\n\
         certificates = [{ cert = \"web.pem\", key = \"web.key\" }]\n\
         [[server.path]]\nprefix = \"/api/\"\nhandler = { type = \"respond\" }\n\
         [[server.path]]\nprefix = \"/api/v2/\"\nhandler = { type = \"respond\" }\n\
         [[server.path]]\nprefix = \"/a/../b\"\nhandler = { type = \"respond\" }\n\
         [[server.path]]\nexact = \"/x\"\nstrip_prefix = true\nhandler = { type = \"respond\" }\n\
         [[server.path]]\nprefix = \"/f/\"\nhandler = { type = \"forward\", backend = \"127.0.0.1:1\" }\n\
         [[server.path]]\nprefix = \"/n/\"\n\
         [[server.path]]\nhandler = { type = \"respond\" }\n\
         [[server.path]]\nprefix = \"/s/\"\nhandler = { type = \"static\", root = \"www\", access = { allow = [\"ten\"] } }\n\
         [[server]]\nname = \"t\"\nlisten = \"127.0.0.1:0\"\n\
         certificates = [{ cert = \"web.pem\", key = \"web.key\" }]\n\
         handler = { type = \"forward\", backend = \"127.0.0.1:1\" }\n\
         [[server.path]]\nprefix = \"/a/\"\nhandler = { type = \"respond\" }\n\
         [[server.route]]\nnames = [\"web.test\"]\n\
         [[server.route.path]]\nexact = \"/\"\nhandler = { type = \"respond\" }\n\
         [[server.route.path]]\nexact = \"/\"\nhandler = { type = \"respond\" }\n",
    )
    .unwrap();
    let check = tlsplex(&["check", "-c", bad.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&check.stderr).into_owned()
        + &String::from_utf8_lossy(&check.stdout);
    assert!(!check.status.success());
    for expected in [
        "server \"s\": path[1].prefix: unreachable: path[0] (prefix /api/) comes first and takes every request this rule would",
        "server \"s\": path[2].prefix: \"/a/../b\" is not a normalised path",
        "server \"s\": path[3].strip_prefix: only a prefix rule has a prefix to strip",
        "server \"s\": path[4].handler.type: a path rule answers requests: use static, respond or proxy (forward is a whole connection's)",
        "server \"s\": path[5].handler: a path rule needs a handler: static, respond or proxy",
        "server \"s\": path[6].prefix: a path rule needs exact = \"/path\" or prefix = \"/path/\"",
        "server \"s\": path[7].handler.access.allow[0]: \"ten\"",
        "server \"t\": path: path rules need an HTTP handler to sit in front of: forward takes whole connections",
        "server \"t\": route[0].path[1].exact: unreachable: path[0] (exact /) comes first",
    ] {
        assert!(said.contains(expected), "{expected}\nnot in:\n{said}");
    }
}
