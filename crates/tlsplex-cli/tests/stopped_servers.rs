//! A server stopped through the admin API stays listed and can start again (added through the
//! API or not); one removed is gone, with its metric series; readiness says what it counts.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

mod common;

use std::net::TcpStream;

use common::admin::{http, send, server_states, start};
use common::{free_port, tlsplex};
use tlsplex_testkit::TestPki;

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(n, s)| ((*n).to_owned(), (*s).to_owned()))
        .collect()
}

/// The `/metrics` lines that name `server`.
fn series_of(admin: u16, server: &str) -> Vec<String> {
    let (status, metrics) = http(admin, "GET", "/metrics", None);
    assert_eq!(status, 200);
    let label = format!("server=\"{server}\"");
    metrics
        .lines()
        .filter(|l| l.contains(&label))
        .map(str::to_owned)
        .collect()
}

fn handshake(port: u16) {
    let address = format!("127.0.0.1:{port}");
    let probe = tlsplex(&["probe", &address, "--insecure", "--servername", "a.test"]);
    assert!(probe.status.success(), "{probe:?}");
}

#[test]
fn a_stopped_server_stays_listed_and_starts_again_and_a_removed_one_leaves_no_series() {
    let pki = TestPki::new();
    let (_daemon, admin, [a, b]) = start(&pki, "");
    handshake(b);
    let expiry = "tlsplex_certificate_expiry_timestamp_seconds{server=\"b\"";
    assert!(series_of(admin, "b").iter().any(|l| l.starts_with(expiry)));

    // Stopped: listed as such, port closed, no series (no expiry alert for what does not serve).
    assert_eq!(http(admin, "POST", "/api/servers/b/stop", None).0, 202);
    assert!(TcpStream::connect(("127.0.0.1", b)).is_err());
    assert_eq!(
        server_states(admin),
        pairs(&[("a", "serving"), ("b", "stopped")])
    );
    assert_eq!(series_of(admin, "b"), Vec::<String>::new());
    assert_eq!(
        http(admin, "GET", "/readyz", None),
        (200, "ready: 1 server serving\n".to_owned()),
        "a stopped server is the operator's choice, not unreadiness"
    );
    let table = tlsplex(&[
        "ctl",
        "-c",
        pki.dir().join("tlsplex.toml").to_str().unwrap(),
        "servers",
    ]);
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("b ") && l.contains("stopped")),
        "{table}"
    );
    assert_eq!(
        http(admin, "POST", "/api/servers/b/stop", None).0,
        404,
        "stopping a stopped server"
    );

    // Started again: serving on its port, counting from zero.
    assert_eq!(http(admin, "POST", "/api/servers/b/start", None).0, 201);
    handshake(b);
    assert_eq!(
        server_states(admin),
        pairs(&[("a", "serving"), ("b", "serving")])
    );
    assert!(series_of(admin, "b")
        .iter()
        .any(|l| l == "tlsplex_handshakes_total{server=\"b\"} 1"));

    // A server added through the API: stopped, it can be started again from what was sent.
    let extra = free_port();
    let table = format!("name = \"extra\"\nlisten = \"127.0.0.1:{extra}\"\ncertificates = [{{ cert = \"a.pem\", key = \"a.key\" }}]\n[[route]]\nname = \"all\"\nnames = [\"a.test\"]\nhandler = {{ type = \"status\" }}\n");
    let (status, body) = send(admin, "POST", "/api/servers", "", &table);
    assert_eq!(status, 201, "{body}");
    handshake(extra);
    assert!(series_of(admin, "extra")
        .iter()
        .any(|l| l.starts_with("tlsplex_route_connections_total{server=\"extra\",route=\"all\"}")));
    assert_eq!(http(admin, "POST", "/api/servers/extra/stop", None).0, 202);
    let (status, body) = send(admin, "POST", "/api/servers", "", &table);
    assert_eq!(status, 422, "a stopped name is not taken twice: {body}");
    assert!(body.contains("is stopped"), "{body}");
    let (status, body) = http(admin, "POST", "/api/servers/extra/start", None);
    assert_eq!(status, 201, "{body}");
    handshake(extra);

    // Removed: gone from the list and from /metrics, running or stopped.
    assert_eq!(http(admin, "DELETE", "/api/servers/extra", None).0, 202);
    assert_eq!(http(admin, "POST", "/api/servers/b/stop", None).0, 202);
    assert_eq!(http(admin, "DELETE", "/api/servers/b", None).0, 202);
    assert_eq!(server_states(admin), pairs(&[("a", "serving")]));
    assert_eq!(series_of(admin, "extra"), Vec::<String>::new());
    assert_eq!(series_of(admin, "b"), Vec::<String>::new());
    assert_eq!(http(admin, "DELETE", "/api/servers/b", None).0, 404);

    // Nothing serving: not ready, saying why.
    assert_eq!(http(admin, "POST", "/api/servers/a/stop", None).0, 202);
    assert_eq!(
        http(admin, "GET", "/readyz", None),
        (503, "not ready: no server is serving\n".to_owned())
    );

    // A reload applies the file: both its servers serve; what the API added is not in it, and
    // its series go with it.
    let later = table
        .replace("extra", "later")
        .replace(&extra.to_string(), "0");
    assert_eq!(send(admin, "POST", "/api/servers", "", &later).0, 201);
    assert!(!series_of(admin, "later").is_empty());
    let (status, report) = http(admin, "POST", "/api/reload", None);
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        server_states(admin),
        pairs(&[("a", "serving"), ("b", "serving")])
    );
    assert_eq!(series_of(admin, "later"), Vec::<String>::new());
    handshake(a);
    handshake(b);
    assert_eq!(
        http(admin, "POST", "/api/servers/extra/start", None).0,
        409,
        "removed, and not in the file"
    );
}
