//! ACME against Pebble (Debian's `pebble` and `pebble-challtestsrv`): two servers' names issued
//! by TLS-ALPN-01 and served, the stored certificate reused at restart with no new order, and a
//! renewal before expiry that keeps a long-lived connection; HTTP-01 on its own listener.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

mod common;
#[path = "common/pebble.rs"]
mod pebble;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::{available, free_port, Daemon};
use pebble::{client, leaf, refused, served_other_than, Pebble, ISSUED};
use tlsplex_testkit::TestPki;

/// One keep-alive HTTP/1.1 request on an open connection; its status.
fn request_on(tls: &mut rustls::ClientConnection, tcp: &mut std::net::TcpStream) -> u16 {
    use std::io::{Read, Write};
    let mut stream = rustls::Stream::new(tls, tcp);
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn config(dir: &Path, pebble: &Pebble, ca: &Path, ports: [u16; 3]) -> String {
    let [a, b, admin] = ports;
    let path = dir.join("tlsplex.toml");
    std::fs::write(
        &path,
        format!(
            r#"[admin]
listen = "127.0.0.1:{admin}"

[acme]
directory = "{}"
directory_ca = "{}"
contact = ["mailto:ops@example.test"]

[[server]]
name = "a"
listen = "127.0.0.1:{a}"
certificates = [{{ acme = ["a.test"] }}]

[[server]]
name = "b"
listen = "127.0.0.1:{b}"
certificates = [{{ acme = ["b.test", "www.b.test"] }}]

[[server]]
name = "c"
listen = "127.0.0.1:0"
certificates = [{{ acme = ["bad.test"] }}]
"#,
            pebble.directory,
            ca.display()
        ),
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn certificates_are_issued_served_reused_at_restart_and_renewed_without_dropping_a_connection() {
    if !available("pebble") || !available("pebble-challtestsrv") {
        return;
    }
    let pki = TestPki::new();
    let dir = pki.dir().to_owned();
    let (a, b, admin) = (free_port(), free_port(), free_port());
    // Short-lived certificates: a third of 30 s left comes 20 s after issuance.
    let mut pebble = Pebble::new(&dir, &pki, a, 30);
    let config = config(&dir, &pebble, &pki.ca_file(), [a, b, admin]);
    common::admin::register(admin, &dir.join("admin.token"));
    let addrs = [
        SocketAddr::from(([127, 0, 0, 1], a)),
        SocketAddr::from(([127, 0, 0, 1], b)),
    ];

    let check = common::tlsplex(&["check", "-c", &config]);
    let listed = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{check:?}");
    assert!(
        listed.contains("acme b.test, www.b.test") && listed.contains("not issued yet"),
        "{listed}"
    );
    // A server whose only certificate is still to come says so, not a stand-in's dates.
    assert!(
        listed.contains("certificate to come from ACME") && !listed.contains("days left"),
        "{listed}"
    );

    // The CA is down at start: the servers listen anyway, refuse the names they have no
    // certificate for, and the orders are retried.
    let mut daemon = Daemon::start(&["run", "-c", &config, "--log-format", "json"]);
    daemon.wait_listening(&addrs);
    let mut log = Vec::new();
    let failed = daemon.wait_log_keeping("ACME order failed", Duration::from_secs(20), &mut log);
    assert!(failed, "{}", log.join("\n"));
    let anyone = client(rustls::RootCertStore::from_iter(
        webpki_roots::TLS_SERVER_ROOTS.iter().cloned(),
    ));
    let error = refused(a, "a.test", &anyone);
    assert!(
        error.contains("InternalError"),
        "a name waiting for its certificate is refused: {error}"
    );

    pebble.start();
    let cpu_before = daemon.cpu_time();
    let started = std::time::Instant::now();
    for _ in 0..2 {
        let issued = daemon.wait_log_keeping(ISSUED, Duration::from_secs(60), &mut log);
        assert!(issued, "issued:\n{}", log.join("\n"));
    }
    println!(
        "first issuance of two certificates (3 names), CA up to both served: {:?}, daemon CPU {:?}",
        started.elapsed(),
        daemon.cpu_time() - cpu_before
    );
    let verify = client(pebble.root(&pki.ca_file()));
    let first_a = served_other_than(a, "a.test", &verify, None);
    let first_b = served_other_than(b, "www.b.test", &verify, None);
    assert_ne!(first_a, first_b);
    assert_eq!(pebble.issued(), 2);
    let stored = dir.join("acme/certificates/b.test/key.pem");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&stored).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "keys are the owner's only");

    // A name whose validation fails is logged with the CA's problem document, and retried.
    let is_problem = |line: &String| {
        line.contains("ACME order failed")
            && line.contains("bad.test")
            && line.contains("urn:ietf:params:acme:error")
    };
    let mut problem = log.iter().find(|line| is_problem(line)).cloned();
    for _ in 0..10 {
        if problem.is_some() {
            break;
        }
        let mut more = Vec::new();
        daemon.wait_log_keeping("bad.test", Duration::from_secs(20), &mut more);
        problem = more.into_iter().find(|line| is_problem(line));
    }
    let problem = problem.unwrap_or_default();
    assert!(problem.contains("urn:ietf:params:acme:error"), "{problem}");

    // The admin API and the metrics show each managed certificate and the orders.
    let (status, body) = common::admin::http(admin, "GET", "/api/acme", None);
    assert_eq!(status, 200);
    let managed: serde_json::Value = serde_json::from_str(&body).unwrap();
    let state = |names: &str| {
        managed
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["names"].as_array().unwrap()[0] == names)
            .cloned()
            .unwrap_or_else(|| panic!("{names} in {body}"))
    };
    assert_eq!(state("a.test")["state"], "valid", "{body}");
    assert!(state("a.test")["next_order"]
        .as_str()
        .unwrap()
        .contains('T'));
    assert_eq!(state("bad.test")["state"], "failing", "{body}");
    assert!(state("bad.test")["last_error"]
        .as_str()
        .unwrap()
        .contains("urn:ietf:params:acme:error"));
    if available("chromium") {
        let dom = common::admin::dashboard_dom(admin);
        assert!(
            dom.contains("<td>a.test</td><td class=\"valid\">valid</td>")
                && dom.contains("<td>bad.test</td><td class=\"failing\">failing</td>"),
            "each managed certificate on the dashboard:\n{dom}"
        );
    }
    let (_, metrics) = common::admin::http(admin, "GET", "/metrics", None);
    assert!(
        metrics.contains(
            r#"tlsplex_acme_orders_total{challenge="tls-alpn-01",result="ok",failed_step=""} 2"#
        ),
        "{metrics}"
    );

    // A restart reuses what is stored: no new order; a corrupted stored certificate is
    // reported and ordered again.
    daemon.signal("TERM");
    assert!(daemon.wait_exit(Duration::from_secs(10)).unwrap().success());
    std::fs::write(
        dir.join("acme/certificates/b.test/cert.pem"),
        "not a certificate",
    )
    .unwrap();
    let mut daemon = Daemon::start(&["run", "-c", &config, "--log-format", "json"]);
    daemon.wait_listening(&addrs);
    assert_eq!(
        leaf(a, "a.test", &verify),
        first_a,
        "the stored certificate is served again"
    );
    let mut log = Vec::new();
    let reissued = daemon.wait_log_keeping(ISSUED, Duration::from_secs(30), &mut log);
    assert!(reissued, "{}", log.join("\n"));
    assert!(
        log.iter()
            .any(|line| line.contains("stored ACME certificate is unusable")),
        "{}",
        log.join("\n")
    );
    assert!(log.iter().any(|line| line.contains("b.test")));
    served_other_than(b, "b.test", &verify, Some(&first_b));
    assert_eq!(
        pebble.issued(),
        3,
        "a was not ordered again at restart; b was"
    );

    // A connection opened now lives through the renewal.
    let server_name = rustls::pki_types::ServerName::try_from("a.test").unwrap();
    let mut long = rustls::ClientConnection::new(verify.clone(), server_name).unwrap();
    let mut long_tcp = std::net::TcpStream::connect(("127.0.0.1", a)).unwrap();
    while long.is_handshaking() {
        long.complete_io(&mut long_tcp).unwrap();
    }
    let cpu_before = daemon.cpu_time();
    let waited = std::time::Instant::now();
    let deadline = waited + Duration::from_secs(40);
    while leaf(a, "a.test", &verify) == first_a {
        // Keep-alive requests: the connection stays busy, as a long-lived client is.
        assert_eq!(request_on(&mut long, &mut long_tcp), 200);
        assert!(
            std::time::Instant::now() < deadline,
            "new handshakes get the renewed certificate:\n{}",
            daemon.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(pebble.issued() >= 4, "renewed by a new order");
    println!(
        "renewal wait {:?} (due 20 s after issuance), daemon CPU meanwhile {:?} (with ~4 handshakes/s of polling)",
        waited.elapsed(),
        daemon.cpu_time() - cpu_before
    );
    assert_eq!(
        request_on(&mut long, &mut long_tcp),
        200,
        "the connection opened before the renewal is still served"
    );
    daemon.signal("TERM");
    assert!(daemon.wait_exit(Duration::from_secs(10)).unwrap().success());
}

#[test]
fn http01_validates_on_its_own_listener_which_redirects_everything_else_to_https() {
    if !available("pebble") || !available("pebble-challtestsrv") || !available("curl") {
        return;
    }
    let pki = TestPki::new();
    let dir = pki.dir().to_owned();
    let (a, http) = (free_port(), free_port());
    // Pebble's TLS-ALPN-01 port has nothing on it: only HTTP-01 can succeed.
    let mut pebble = Pebble::with_http_port(&dir, &pki, free_port(), http, 3600);
    pebble.start();
    let config = dir.join("tlsplex.toml");
    std::fs::write(
        &config,
        format!(
            r#"[acme]
directory = "{}"
directory_ca = "{}"
http01_listen = "127.0.0.1:{http}"

[[server]]
name = "a"
listen = "127.0.0.1:{a}"
certificates = [{{ acme = ["a.test"] }}]
"#,
            pebble.directory,
            pki.ca_file().display()
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let mut daemon = Daemon::start(&["run", "-c", &config, "--log-format", "json"]);
    daemon.wait_listening(&[
        SocketAddr::from(([127, 0, 0, 1], a)),
        SocketAddr::from(([127, 0, 0, 1], http)),
    ]);
    let mut log = Vec::new();
    let issued = daemon.wait_log_keeping(ISSUED, Duration::from_secs(30), &mut log);
    assert!(issued, "{}", log.join("\n"));
    assert!(
        log.iter()
            .any(|line| line.contains("answered an ACME HTTP-01 validation")),
        "{}",
        log.join("\n")
    );
    let verify = client(pebble.root(&pki.ca_file()));
    served_other_than(a, "a.test", &verify, None);

    // Anything but a challenge is sent to https, on the same host and path.
    let curl = |args: &[&str]| {
        let out = std::process::Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{redirect_url}",
            ])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let base = format!("http://127.0.0.1:{http}");
    assert_eq!(
        curl(&["-H", "Host: a.test", &format!("{base}/docs/x?y=1")]),
        "308 https://a.test/docs/x?y=1"
    );
    assert_eq!(
        curl(&[
            "-H",
            "Host: a.test",
            &format!("{base}/.well-known/acme-challenge/none")
        ]),
        "404 "
    );

    // A client that never finishes its request head is cut off at the header timeout.
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", http)).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    std::io::Write::write_all(&mut slow, b"GET / HTTP/1.1\r\nHost: a.test\r\n").unwrap();
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut slow, &mut rest);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(12),
        "closed after {waited:?}"
    );
    daemon.signal("TERM");
    assert!(daemon.wait_exit(Duration::from_secs(10)).unwrap().success());
}
