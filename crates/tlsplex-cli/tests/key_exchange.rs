//! What each handshake's key exchange was, where a person sees it: the status page in Chromium
//! (which offers the post-quantum hybrid X25519MLKEM768 first), `tlsplex probe`, and
//! `probe --min-days` for certificates about to expire.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

mod common;

use std::net::SocketAddr;

use common::{available, chromium, free_port, spki_pin, tlsplex, Daemon};
use tlsplex_testkit::TestPki;

/// Two servers: `pq` with the default groups, `classic` with X25519 only.
fn start(pki: &TestPki) -> (Daemon, u16, u16) {
    pki.issue("pq", &["localhost"]);
    pki.issue("classic", &["localhost"]);
    let (pq, classic) = (free_port(), free_port());
    let path = pki.dir().join("tlsplex.toml");
    std::fs::write(
        &path,
        format!(
            "[[server]]\nname = \"pq\"\nlisten = \"127.0.0.1:{pq}\"\n\
             certificates = [{{ cert = \"pq.pem\", key = \"pq.key\" }}]\n\n\
             [[server]]\nname = \"classic\"\nlisten = \"127.0.0.1:{classic}\"\n\
             certificates = [{{ cert = \"classic.pem\", key = \"classic.key\" }}]\n\
             [server.tls]\ngroups = [\"X25519\"]\n"
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start(&["run", "-c", path.to_str().unwrap()]);
    let addrs = [pq, classic].map(|port| SocketAddr::from(([127, 0, 0, 1], port)));
    daemon.wait_listening(&addrs);
    (daemon, pq, classic)
}

#[test]
fn the_probe_shows_the_group_and_watches_expiry() {
    let pki = TestPki::new();
    let (_daemon, pq, classic) = start(&pki);
    for (port, group) in [(pq, "X25519MLKEM768"), (classic, "X25519")] {
        let out = tlsplex(&[
            "probe",
            &format!("127.0.0.1:{port}"),
            "--insecure",
            "--json",
        ]);
        assert!(out.status.success());
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report[0]["key_exchange_group"], group, "{report}");
        let table = tlsplex(&["probe", &format!("127.0.0.1:{port}"), "--insecure"]);
        let text = String::from_utf8_lossy(&table.stdout);
        assert!(text.contains("GROUP") && text.contains(group), "{text}");
    }
    // The test certificates are valid for about 2,000 years: fine for 30 days, not for 10,000,000.
    let address = format!("127.0.0.1:{pq}");
    let fine = tlsplex(&["probe", &address, "--insecure", "--min-days", "30"]);
    assert!(fine.status.success());
    let soon = tlsplex(&["probe", &address, "--insecure", "--min-days", "10000000"]);
    assert!(!soon.status.success());
    let said = String::from_utf8_lossy(&soon.stderr);
    assert!(
        said.contains(&address) && said.contains("under --min-days 10000000"),
        "{said}"
    );
}

#[test]
fn chromium_negotiates_the_post_quantum_hybrid() {
    if !available("chromium") {
        return;
    }
    let pki = TestPki::new();
    let (_daemon, pq, classic) = start(&pki);
    for (port, name, group) in [(pq, "pq", "X25519MLKEM768"), (classic, "classic", "X25519")] {
        let cert = std::fs::read(pki.dir().join(format!("{name}.pem"))).unwrap();
        let der = rustls::pki_types::pem::PemObject::from_pem_slice(&cert)
            .map(|c: rustls::pki_types::CertificateDer<'static>| c.to_vec())
            .unwrap();
        let extra = [
            format!("--ignore-certificate-errors-spki-list={}", spki_pin(&der)),
            "--dump-dom".to_owned(),
        ];
        let dom = chromium(&format!("https://localhost:{port}/"), &extra);
        assert!(
            dom.contains(&format!("<td>{group}</td>")),
            "{name}: {group}:\n{dom}"
        );
    }
}
