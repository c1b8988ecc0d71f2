//! TLS features end to end against the binary: SIGHUP and polled reloads, resumption across two
//! processes sharing a ticket key file (openssl s_client), mTLS with curl and openssl, OCSP
//! stapling seen by `openssl s_client -status`, what `tlsplex probe` reports of each, and how many
//! TLS 1.3 tickets a handshake sends.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{available, free_port, s_client, tlsplex, Daemon};
use tlsplex_testkit::TestPki;

fn write_config(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn localhost(port: u16) -> SocketAddr {
    ([127, 0, 0, 1], port).into()
}

/// `tlsplex probe ADDR --servername NAME --json EXTRA…`, parsed.
fn probe(port: u16, name: &str, extra: &[&str]) -> serde_json::Value {
    let address = format!("127.0.0.1:{port}");
    let mut args = vec!["probe", &address, "--servername", name, "--json"];
    args.extend_from_slice(extra);
    let out = tlsplex(&args);
    let results: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    results[0].clone()
}

fn fingerprint(pki: &TestPki, stem: &str) -> String {
    let pem = std::fs::read(pki.dir().join(format!("{stem}.pem"))).unwrap();
    let der: rustls::pki_types::CertificateDer<'static> =
        rustls::pki_types::pem::PemObject::from_pem_slice(&pem).unwrap();
    tlsplex::tls::sha256_fingerprint(&der)
}

#[test]
fn sighup_serves_new_certificates_and_keeps_the_old_ones_when_the_new_are_broken() {
    let pki = TestPki::new();
    pki.issue("web", &["web.test"]);
    let ca = pki.ca_file();
    let ca = ca.to_str().unwrap();
    let port = free_port();
    let config = write_config(
        pki.dir(),
        "tlsplex.toml",
        &format!("[[server]]\nname = \"web\"\nlisten = \"127.0.0.1:{port}\"\ncertificates = [{{ cert = \"web.pem\", key = \"web.key\" }}]\n"),
    );
    let mut daemon = Daemon::start(&["run", "-c", &config]);
    daemon.wait_listening(&[localhost(port)]);
    let first = probe(port, "web.test", &["--ca", ca]);
    assert_eq!(first["ok"], true, "{first}");

    pki.issue("web", &["web.test"]); // new certificate and key, same files
    let renewed = fingerprint(&pki, "web");
    daemon.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while served_fingerprint(port) != renewed {
        assert!(
            Instant::now() < deadline,
            "the renewed certificate is served after SIGHUP"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Broken material: the reload is refused, the last good certificate keeps serving.
    std::fs::write(pki.dir().join("web.pem"), "garbage").unwrap();
    daemon.signal("HUP");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(served_fingerprint(port), renewed);
    assert!(probe(port, "web.test", &["--ca", ca])["ok"] == true);
    daemon.signal("TERM");
    assert!(daemon.wait_exit(Duration::from_secs(15)).unwrap().success());
    let logs = daemon.stderr_text();
    assert!(
        logs.contains("reload refused")
            && logs.contains("server \"web\": certificates[0].cert")
            && logs.contains("web.pem contains no PEM certificate"),
        "the log names the server and the file:\n{logs}"
    );
}

/// The SHA-256 fingerprint of the certificate the server on `port` presents, per `tlsplex probe`.
fn served_fingerprint(port: u16) -> String {
    let result = probe(port, "web.test", &["--insecure"]);
    result["sha256_fingerprint"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn reload_check_interval_picks_up_changed_files_without_a_signal() {
    let pki = TestPki::new();
    pki.issue("web", &["web.test"]);
    let port = free_port();
    let config = write_config(
        pki.dir(),
        "tlsplex.toml",
        &format!("[global]\nreload_check_interval = \"200ms\"\n[[server]]\nname = \"web\"\nlisten = \"127.0.0.1:{port}\"\ncertificates = [{{ cert = \"web.pem\", key = \"web.key\" }}]\n"),
    );
    let mut daemon = Daemon::start(&["run", "-c", &config]);
    daemon.wait_listening(&[localhost(port)]);
    let before = served_fingerprint(port);
    std::thread::sleep(Duration::from_millis(1100)); // a new mtime, whatever the file system's granularity
    pki.issue("web", &["web.test"]);
    let renewed = fingerprint(&pki, "web");
    assert_ne!(before, renewed);
    let deadline = Instant::now() + Duration::from_secs(10);
    while served_fingerprint(port) != renewed {
        assert!(
            Instant::now() < deadline,
            "the changed files were never reloaded"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn openssl_resumes_across_two_processes_sharing_a_ticket_key_file() {
    if !available("openssl") {
        return;
    }
    let pki = TestPki::new();
    pki.issue("web", &["web.test"]);
    let key = tlsplex(&["ticket-key", "new"]);
    assert!(key.status.success());
    std::fs::write(pki.dir().join("ticket.key"), &key.stdout).unwrap();
    let ports = [free_port(), free_port()];
    let mut daemons: Vec<Daemon> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| {
            let config = write_config(
                pki.dir(),
                &format!("process{i}.toml"),
                &format!("[global]\nticket_key_file = \"ticket.key\"\n[[server]]\nname = \"web\"\nlisten = \"127.0.0.1:{port}\"\ncertificates = [{{ cert = \"web.pem\", key = \"web.key\" }}]\n[server.tls]\nsession_cache_size = 0\n"),
            );
            Daemon::start(&["run", "-c", &config])
        })
        .collect();
    for (daemon, port) in daemons.iter_mut().zip(ports) {
        daemon.wait_listening(&[localhost(port)]);
    }
    for version in ["-tls1_3", "-tls1_2"] {
        let session = pki.dir().join(format!("session{version}.pem"));
        let session = session.to_str().unwrap();
        let first = s_client(ports[0], "web.test", version, &["-sess_out", session]);
        assert!(first.contains("New, TLSv1."), "{version} first:\n{first}");
        let second = s_client(ports[1], "web.test", version, &["-sess_in", session]);
        assert!(
            second.contains("Reused, TLSv1."),
            "{version}: the other process resumes:\n{second}"
        );
    }
}

#[test]
fn mtls_with_curl_openssl_and_probe() {
    let server_pki = TestPki::new();
    let clients = TestPki::new();
    server_pki.issue("web", &["web.test"]);
    let alice = clients.issue_client("alice", "alice", 7);
    let mallory = clients.issue_client("mallory", "mallory", 666);
    let crl = clients.crl("clients", &[666]);
    let client_ca = clients.ca_file();
    let port = free_port();
    let config = write_config(
        server_pki.dir(),
        "tlsplex.toml",
        &format!(
            "[[server]]\nname = \"web\"\nlisten = \"127.0.0.1:{port}\"\ncertificates = [{{ cert = \"web.pem\", key = \"web.key\" }}]\n\
             [server.tls]\nclient_auth = {{ ca = \"{}\", mode = \"required\", crl = [\"{}\"] }}\n",
            client_ca.display(),
            crl.display()
        ),
    );
    let mut daemon = Daemon::start(&["run", "-c", &config]);
    daemon.wait_listening(&[localhost(port)]);
    let ca = server_pki.ca_file();
    let (ca, alice_cert, alice_key) = (
        ca.to_str().unwrap(),
        alice.cert_path.to_str().unwrap(),
        alice.key_path.to_str().unwrap(),
    );

    let anonymous = probe(port, "web.test", &["--ca", ca]);
    assert_eq!(anonymous["ok"], false, "{anonymous}");
    assert_eq!(anonymous["client_cert_requested"], true);
    let with_cert = probe(
        port,
        "web.test",
        &["--ca", ca, "--cert", alice_cert, "--key", alice_key],
    );
    assert_eq!(with_cert["ok"], true, "{with_cert}");

    if available("curl") {
        let url = format!("https://web.test:{port}/?format=json");
        let resolve = format!("web.test:{port}:127.0.0.1");
        let curl = |extra: &[&str]| {
            Command::new("curl")
                .args([
                    "-s",
                    "--max-time",
                    "10",
                    "--resolve",
                    &resolve,
                    "--cacert",
                    ca,
                ])
                .args(extra)
                .arg(&url)
                .output()
                .unwrap()
        };
        assert!(
            !curl(&[]).status.success(),
            "curl without --cert is refused"
        );
        for http in ["--http1.1", "--http2"] {
            let out = curl(&[http, "--cert", alice_cert, "--key", alice_key]);
            let page: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(page["client_cert"]["subject"], "CN=alice", "{http}");
        }
        let revoked = curl(&[
            "--cert",
            mallory.cert_path.to_str().unwrap(),
            "--key",
            mallory.key_path.to_str().unwrap(),
        ]);
        assert!(
            !revoked.status.success(),
            "a revoked certificate is refused"
        );
    }
    if available("openssl") {
        let out = s_client(
            port,
            "web.test",
            "-tls1_3",
            &["-CAfile", ca, "-cert", alice_cert, "-key", alice_key],
        );
        assert!(
            out.contains("Verify return code: 0 (ok)") && out.contains("CN=alice"),
            "{out}"
        );
    }
    daemon.signal("TERM");
    assert!(daemon.wait_exit(Duration::from_secs(15)).unwrap().success());
    assert!(
        daemon.stderr_text().contains("handshake refused"),
        "refusals are logged with their reason"
    );
}

#[test]
fn ocsp_responses_are_stapled() {
    if !available("openssl") {
        return;
    }
    let pki = TestPki::new();
    let leaf = pki.issue("web", &["web.test"]);
    let dir = pki.dir();
    let (ca, ca_key) = (pki.ca_file(), pki.ca_key_file());
    // An openssl CA database naming the leaf as valid, then a response good for a day.
    let serial = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(&leaf.cert_path)
        .output()
        .unwrap();
    let serial = String::from_utf8_lossy(&serial.stdout)
        .trim()
        .trim_start_matches("serial=")
        .to_owned();
    std::fs::write(
        dir.join("index.txt"),
        format!("V\t351231000000Z\t\t{serial}\tunknown\t/CN=web.test\n"),
    )
    .unwrap();
    let made = Command::new("openssl")
        .current_dir(dir)
        .args(["ocsp", "-index", "index.txt", "-rsigner"])
        .arg(&ca)
        .arg("-rkey")
        .arg(&ca_key)
        .arg("-CA")
        .arg(&ca)
        .arg("-issuer")
        .arg(&ca)
        .arg("-cert")
        .arg(&leaf.cert_path)
        .args(["-ndays", "1", "-respout", "web.ocsp.der"])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );

    let port = free_port();
    let config = write_config(
        dir,
        "tlsplex.toml",
        &format!("[[server]]\nname = \"web\"\nlisten = \"127.0.0.1:{port}\"\ncertificates = [{{ cert = \"web.pem\", key = \"web.key\", ocsp = \"web.ocsp.der\" }}]\n"),
    );
    let check = tlsplex(&["check", "-c", &config]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let mut daemon = Daemon::start(&["run", "-c", &config]);
    daemon.wait_listening(&[localhost(port)]);
    let out = s_client(port, "web.test", "-tls1_3", &["-status"]);
    assert!(out.contains("OCSP Response Status: successful"), "{out}");
    assert!(out.contains("Cert Status: good"), "{out}");
    assert_eq!(
        probe(port, "web.test", &["--insecure"])["ocsp_stapled"],
        true
    );

    std::fs::write(dir.join("web.ocsp.der"), b"not der").unwrap();
    let check = tlsplex(&["check", "-c", &config]);
    let errors = String::from_utf8_lossy(&check.stderr);
    assert!(
        errors.contains("certificates[0].ocsp")
            && errors.contains("not a successful DER-encoded OCSP response"),
        "{errors}"
    );
}

#[test]
fn sni_and_versions_with_curl_and_openssl() {
    let pki = TestPki::new();
    let a = pki.issue("a", &["a.test"]);
    let b = pki.issue("b", &["b.test"]);
    let port = free_port();
    let config = write_config(
        pki.dir(),
        "tlsplex.toml",
        &format!(
            "[[server]]\nname = \"web\"\nlisten = \"127.0.0.1:{port}\"\n\
             certificates = [{{ cert = \"a.pem\", key = \"a.key\" }}, {{ cert = \"b.pem\", key = \"b.key\" }}]\n\
             [server.tls]\nversions = [\"TLSv1.3\"]\nstrict_sni = true\n"
        ),
    );
    let mut daemon = Daemon::start(&["run", "-c", &config]);
    daemon.wait_listening(&[localhost(port)]);
    let ca = pki.ca_file();
    let ca = ca.to_str().unwrap();
    if available("curl") {
        for name in ["a.test", "b.test"] {
            for http in ["--http1.1", "--http2"] {
                let out = Command::new("curl")
                    .args(["-s", "--max-time", "10", http, "--cacert", ca, "--resolve"])
                    .arg(format!("{name}:{port}:127.0.0.1"))
                    .arg(format!("https://{name}:{port}/?format=json"))
                    .output()
                    .unwrap();
                let page: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                assert_eq!(page["sni"], name, "{http}");
                let expected = if http == "--http2" {
                    "HTTP/2.0"
                } else {
                    "HTTP/1.1"
                };
                assert_eq!(page["http_version"], expected);
            }
        }
    }
    if available("openssl") {
        let served = |name: &str, version: &str| {
            let out = Command::new("openssl")
                .args([
                    "s_client",
                    "-connect",
                    &format!("127.0.0.1:{port}"),
                    "-servername",
                    name,
                    version,
                ])
                .stdin(Stdio::null())
                .output()
                .unwrap();
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        };
        assert!(served("b.test", "-tls1_3").contains("subject=CN = b.test"));
        assert!(
            served("b.test", "-tls1_2").contains("alert protocol version"),
            "TLS 1.2 is refused"
        );
        assert!(
            served("other.test", "-tls1_3").contains("unrecognized name"),
            "strict SNI"
        );
    }
    for cert in [&a, &b] {
        let name = if std::ptr::eq(cert, &a) {
            "a.test"
        } else {
            "b.test"
        };
        let fingerprint = tlsplex::tls::sha256_fingerprint(&cert.cert_der);
        assert_eq!(
            probe(port, name, &["--ca", ca])["sha256_fingerprint"],
            fingerprint.as_str()
        );
    }
}

#[test]
fn tls13_tickets_sets_how_many_tickets_a_full_handshake_sends() {
    if !available("openssl") {
        return;
    }
    let pki = TestPki::new();
    pki.issue("web", &["web.test"]);
    let ports = [free_port(), free_port()];
    let config = write_config(
        pki.dir(),
        "tickets.toml",
        &format!(
            "[[server]]\nname = \"two\"\nlisten = \"127.0.0.1:{}\"\ncertificates = [{{ cert = \"web.pem\", key = \"web.key\" }}]\n\
             [[server]]\nname = \"one\"\nlisten = \"127.0.0.1:{}\"\ncertificates = [{{ cert = \"web.pem\", key = \"web.key\" }}]\n[server.tls]\ntls13_tickets = 1\n",
            ports[0], ports[1]
        ),
    );
    let mut daemon = Daemon::start(&["run", "-c", &config]);
    daemon.wait_listening(&[localhost(ports[0]), localhost(ports[1])]);
    let tickets = |port: u16| {
        s_client(port, "web.test", "-tls1_3", &[])
            .matches("Post-Handshake New Session Ticket arrived")
            .count()
    };
    assert_eq!(tickets(ports[0]), 2, "rustls' and OpenSSL's default");
    assert_eq!(tickets(ports[1]), 1);

    let too_many = write_config(
        pki.dir(),
        "too-many.toml",
        "[[server]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\ncertificates = [{ cert = \"web.pem\", key = \"web.key\" }]\n[server.tls]\ntls13_tickets = 100\n",
    );
    let out = tlsplex(&["check", "-c", &too_many]);
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(
        errors.contains("tls.tls13_tickets: 100 is more than 8"),
        "{errors}"
    );
}
