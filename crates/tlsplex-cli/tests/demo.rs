//! The quick start, as a user runs it: `tlsplex` with no arguments serves the seed's two HTTPS
//! servers on 1440 and 1441; the seed's `lsof` check, `tlsplex probe`, curl, openssl s_client and
//! a real browser all see them; SIGTERM exits 0.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{available, chromium, spki_pin, tlsplex, Daemon};

const PORTS: [u16; 2] = [1440, 1441];

#[test]
fn the_demo_serves_both_ports_to_every_kind_of_client() {
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_str().unwrap();
    let mut demo = Daemon::start(&["--state-dir", state_dir]);
    let addrs: Vec<SocketAddr> = PORTS.iter().map(|p| ([127, 0, 0, 1], *p).into()).collect();
    demo.wait_listening(&addrs);

    // The seed's validation: lsof shows both ports LISTENing.
    if available("lsof") {
        for port in PORTS {
            let out = Command::new("lsof")
                .args(["-nP", &format!("-i4TCP:{port}")])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.lines()
                    .any(|l| l.contains("LISTEN") && l.starts_with("tlsplex")),
                "lsof shows tlsplex listening on {port}:\n{text}"
            );
        }
    }

    // tlsplex probe: a real handshake on each port.
    let probe = tlsplex(&["probe", "127.0.0.1:1440", "127.0.0.1:1441", "--insecure"]);
    let table = String::from_utf8_lossy(&probe.stdout);
    assert!(probe.status.success(), "probe failed:\n{table}");
    assert_eq!(
        table
            .lines()
            .filter(|l| l.contains(" ok ") && l.contains("TLSv1.3"))
            .count(),
        2,
        "{table}"
    );

    // The stdout banner names both URLs and the fingerprint.
    let cert_pem = std::fs::read(state.path().join("demo-cert.pem")).unwrap();
    let cert_der = rustls::pki_types::pem::PemObject::from_pem_slice(&cert_pem)
        .map(|c: rustls::pki_types::CertificateDer<'static>| c.to_vec())
        .unwrap();
    let banner = demo.stdout_text();
    assert!(banner.contains("https://localhost:1440/"), "{banner}");
    assert!(banner.contains("https://localhost:1441/"), "{banner}");
    assert!(
        banner.contains(&tlsplex::tls::sha256_fingerprint(&cert_der)),
        "{banner}"
    );

    curl_sees_the_status_page();
    openssl_completes_a_handshake();
    chromium_shows_the_page(&cert_der);

    demo.signal("TERM");
    let status = demo
        .wait_exit(Duration::from_secs(15))
        .expect("exits after SIGTERM");
    assert!(
        status.success(),
        "SIGTERM exits 0, got {status}: {}",
        demo.stderr_text()
    );

    // A restart keeps the certificate, so a browser exception survives it.
    let mut again = Daemon::start(&["--state-dir", state_dir]);
    again.wait_listening(&addrs);
    assert_eq!(
        std::fs::read(state.path().join("demo-cert.pem")).unwrap(),
        cert_pem
    );
    again.signal("INT");
    assert!(again.wait_exit(Duration::from_secs(15)).unwrap().success());
}

fn curl_sees_the_status_page() {
    if !available("curl") {
        return;
    }
    for (port, http) in [(1441, "--http1.1"), (1440, "--http2")] {
        let out = Command::new("curl")
            .args(["-sk", "--max-time", "10", http])
            .arg(format!("https://localhost:{port}/?format=json"))
            .output()
            .unwrap();
        let page: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(page["server"], format!("demo-{port}"));
        assert_eq!(page["tls_version"], "TLSv1.3");
        let expected = if http == "--http2" {
            "HTTP/2.0"
        } else {
            "HTTP/1.1"
        };
        assert_eq!(page["http_version"], expected);
    }
}

fn openssl_completes_a_handshake() {
    if !available("openssl") {
        return;
    }
    for port in PORTS {
        let out = Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &format!("127.0.0.1:{port}"),
                "-servername",
                "localhost",
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("New, TLSv1.3"),
            "openssl s_client on {port}:\n{text}"
        );
    }
}

fn chromium_shows_the_page(cert_der: &[u8]) {
    if !available("chromium") {
        return;
    }
    let pin = spki_pin(cert_der);
    for port in PORTS {
        let extra = [
            format!("--ignore-certificate-errors-spki-list={pin}"),
            "--dump-dom".to_owned(),
        ];
        let dom = chromium(&format!("https://localhost:{port}/"), &extra);
        assert!(
            dom.contains(&format!("<span id=\"server\">demo-{port}</span>")),
            "Chromium shows demo-{port}:\n{dom}"
        );
        assert!(
            dom.contains("<td>TLSv1.3</td>"),
            "Chromium negotiated TLS 1.3:\n{dom}"
        );
    }
}

#[test]
fn the_demo_runs_on_other_ports_and_its_options_are_its_own() {
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_str().unwrap();
    let (a, b, admin) = (
        common::free_port(),
        common::free_port(),
        common::free_port(),
    );
    let ports = format!("{a},{b}");
    let admin_port = admin.to_string();
    let args = [
        "demo",
        "--state-dir",
        state_dir,
        "--ports",
        &ports,
        "--admin-port",
        &admin_port,
    ];
    let mut demo = Daemon::start(&args);
    let addrs: Vec<SocketAddr> = [a, b, admin]
        .iter()
        .map(|p| ([127, 0, 0, 1], *p).into())
        .collect();
    demo.wait_listening(&addrs);
    let probe = tlsplex(&[
        "probe",
        &format!("127.0.0.1:{a}"),
        &format!("127.0.0.1:{b}"),
        "--insecure",
    ]);
    assert!(probe.status.success(), "{probe:?}");
    let ctl = tlsplex(&[
        "ctl",
        "--admin",
        &format!("127.0.0.1:{admin}"),
        "--state-dir",
        state_dir,
        "servers",
    ]);
    let table = String::from_utf8_lossy(&ctl.stdout).into_owned();
    assert!(table.contains(&format!("demo-{a} ")), "{ctl:?}");
    demo.signal("TERM");
    assert!(demo.wait_exit(Duration::from_secs(15)).unwrap().success());

    // Only the demo takes them, and no other command's help shows them.
    let misplaced = tlsplex(&["--ports", "1,2", "check", "-c", "x.toml"]);
    assert_eq!(misplaced.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&misplaced.stderr).contains("are the demo's"));
    for command in ["run", "check", "probe", "ctl"] {
        let help = tlsplex(&[command, "--help"]);
        let help = String::from_utf8_lossy(&help.stdout).into_owned();
        assert!(!help.contains("--ports"), "{command}: {help}");
        assert_eq!(
            help.contains("--state-dir"),
            command == "ctl",
            "{command}: {help}"
        );
    }
}
