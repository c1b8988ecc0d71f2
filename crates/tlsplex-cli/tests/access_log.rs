//! `access_log = true`: one JSON event per connection, for served and refused connections alike.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

mod common;

use std::io::Write;
use std::time::Duration;

use common::{free_port, tlsplex, Daemon};
use tlsplex_testkit::TestPki;

#[test]
fn each_connection_gets_one_access_log_event() {
    let pki = TestPki::new();
    pki.issue("web", &["web.test"]);
    let port = free_port();
    let path = pki.dir().join("tlsplex.toml");
    let text = format!(
        "[[server]]\nname = \"web\"\nlisten = \"127.0.0.1:{port}\"\naccess_log = true\ncertificates = [{{ cert = \"web.pem\", key = \"web.key\" }}]\n"
    );
    std::fs::write(&path, text).unwrap();
    let mut daemon = Daemon::start(&["run", "-c", path.to_str().unwrap(), "--log-format", "json"]);
    daemon.wait_listening(&[([127, 0, 0, 1], port).into()]);
    let probe = tlsplex(&[
        "probe",
        &format!("127.0.0.1:{port}"),
        "--servername",
        "web.test",
        "--insecure",
    ]);
    assert!(probe.status.success());
    // An HTTP/2 client that ends by closing its socket (no GOAWAY, no close_notify), as
    // browsers and curl often do: the client went away, not a handler error.
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let name = rustls::pki_types::ServerName::try_from("web.test").unwrap();
    let mut tls = rustls::ClientConnection::new(pki.client(&["h2"]), name).unwrap();
    let mut h2 = rustls::Stream::new(&mut tls, &mut tcp);
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .unwrap();
    h2.flush().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drop(tcp);
    let mut garbage = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    garbage.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    daemon.signal("TERM");
    assert!(daemon.wait_exit(Duration::from_secs(10)).unwrap().success());

    let logs = daemon.stderr_text();
    let events: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .filter(|e: &serde_json::Value| e["target"] == "tlsplex::access")
        .collect();
    // Four connections: the readiness check's bare TCP connect, the probe, the h2 client, the
    // garbage.
    assert_eq!(events.len(), 4, "one per connection:\n{logs}");
    assert!(!logs.contains("handler error"), "{logs}");
    // The probe ends the same way once it has seen the handshake, or with its close_notify
    // when that reaches the server first (CI saw both): never as an error.
    let gone = events.iter().filter(|e| e["close"] == "client went away");
    let ended = |e: &&serde_json::Value| e["close"] == "client went away" || e["close"] == "closed";
    let served_both = events.iter().filter(|e| e["tls.sni"] == "web.test");
    assert!(gone.count() >= 1, "{logs}");
    assert_eq!(served_both.filter(ended).count(), 2, "{logs}");
    let served = events
        .iter()
        .find(|e| e["tls.sni"] == "web.test")
        .expect(&logs);
    assert_eq!(served["level"], "INFO");
    assert_eq!(served["server"], "web");
    assert_eq!(served["tls.sni"], "web.test");
    assert_eq!(served["tls.version"], "TLSv1.3");
    assert_eq!(served["tls.alpn"], "h2");
    assert!(served["bytes.received"].as_u64().unwrap() > 100);
    assert!(served["bytes.sent"].as_u64().unwrap() > 100);
    assert!(served["client.addr"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    let refused = events
        .iter()
        .find(|e| e["close"].as_str().unwrap().contains("plain HTTP"))
        .expect(&logs);
    assert!(
        refused["close"]
            .as_str()
            .unwrap()
            .starts_with("handshake failed"),
        "{refused}"
    );
}
