//! The dashboard's buttons, clicked in headless Chromium (over the DevTools protocol): stop and
//! start a server, reload the configuration, a refusal shown; per-route figures; no framing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::admin::{login_link, send, start, token};
use common::cdp::Browser;
use common::{available, free_port, tlsplex};
use tlsplex_testkit::TestPki;

/// The state `/api/servers` gives the server called `name`.
fn state_of(admin: u16, name: &str) -> String {
    let servers = common::admin::server_states(admin);
    let server = servers.into_iter().find(|(n, _)| n == name);
    server.map_or_else(|| "absent".to_owned(), |(_, state)| state)
}

#[test]
fn the_dashboard_stops_starts_and_reloads_and_shows_routes() {
    if !available("chromium") {
        return;
    }
    let pki = TestPki::new();
    let (_daemon, admin, [_, b]) = start(&pki, "");
    let routed = free_port();
    let table = format!("name = \"routed\"\nlisten = \"127.0.0.1:{routed}\"\ncertificates = [{{ cert = \"a.pem\", key = \"a.key\" }}]\n[[route]]\nname = \"app\"\nnames = [\"a.test\"]\nhandler = {{ type = \"status\" }}\n");
    assert_eq!(send(admin, "POST", "/api/servers", "", &table).0, 201);
    let address = format!("127.0.0.1:{routed}");
    let probe = tlsplex(&["probe", &address, "--insecure", "--servername", "a.test"]);
    assert!(probe.status.success(), "{probe:?}");

    let browser = Browser::start();
    let mut page = browser.open(&login_link(admin));
    page.wait_for("document.querySelectorAll('#servers tbody tr').length === 3");
    let routes = page
        .wait_for("[...document.querySelectorAll('#routes td')].map(t => t.textContent).join('|')");
    assert_eq!(routes, "routed|app|1|0|0", "the route's connection");

    // Stop b with its button: the API stops it, the row offers Start.
    page.eval("document.querySelector('button[data-action=stop][data-name=b]').click()");
    let message = page.wait_for(
        "document.getElementById('message').textContent.includes('b: stopped') && \
         document.getElementById('message').textContent",
    );
    assert_eq!(message, "b: stopped, its connections draining");
    assert_eq!(state_of(admin, "b"), "stopped");
    assert!(TcpStream::connect(("127.0.0.1", b)).is_err());
    page.wait_for("document.querySelector('button[data-action=start][data-name=b]') !== null");

    // Start it again.
    page.eval("document.querySelector('button[data-action=start][data-name=b]').click()");
    page.wait_for("document.getElementById('message').textContent === 'b: started'");
    assert_eq!(state_of(admin, "b"), "serving");
    assert!(TcpStream::connect(("127.0.0.1", b)).is_ok());

    // Reload: the file's servers stay, the one added through the API goes.
    page.eval("document.getElementById('reload').click()");
    let report = page.wait_for(
        "document.getElementById('message').textContent.startsWith('reloaded') && \
         document.getElementById('message').textContent",
    );
    let report = report.as_str().unwrap();
    assert!(report.contains("removed: routed"), "{report}");
    assert_eq!(state_of(admin, "routed"), "absent");
    page.wait_for("document.querySelectorAll('#servers tbody tr').length === 2");

    // A refusal is shown as the API words it (a server stopped elsewhere meanwhile).
    assert_eq!(send(admin, "POST", "/api/servers/a/stop", "", "").0, 202);
    page.eval("document.querySelector('button[data-action=stop][data-name=a]').click()");
    let refused = page.wait_for(
        "document.getElementById('message').textContent.startsWith('refused') && \
         document.getElementById('message').textContent",
    );
    assert_eq!(refused, "refused (404): no server named \"a\" is running");
}

#[test]
fn no_page_may_frame_the_dashboard() {
    let pki = TestPki::new();
    let (_daemon, admin, _) = start(&pki, "");
    let mut stream = TcpStream::connect(("127.0.0.1", admin)).unwrap();
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:{admin}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        token(admin)
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let head = answer
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("x-frame-options: deny"), "{head}");
    assert!(
        head.contains("content-security-policy: frame-ancestors 'none'"),
        "{head}"
    );
}
