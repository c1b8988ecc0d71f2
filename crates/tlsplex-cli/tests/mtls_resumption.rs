//! `openssl s_client -sess_out/-sess_in` against a daemon: a session saved before a reload that
//! requires client certificates, or before a CRL revokes the client's certificate, is not
//! resumed after it (rustls alone would resume both).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::{available, free_port, s_client, Daemon};
use tlsplex_testkit::TestPki;

fn write_config(dir: &Path, port: u16, mode: &str, ca: &Path, crl: &Path) -> String {
    let path = dir.join("tlsplex.toml");
    std::fs::write(
        &path,
        format!(
            "[[server]]\nname = \"web\"\nlisten = \"127.0.0.1:{port}\"\n\
             certificates = [{{ cert = \"web.pem\", key = \"web.key\" }}]\n\
             [server.tls]\nclient_auth = {{ ca = {ca:?}, mode = \"{mode}\", crl = [{crl:?}] }}\n"
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

fn reload(daemon: &Daemon) {
    daemon.signal("HUP");
    assert!(
        daemon.wait_log("reloaded", Duration::from_secs(10)),
        "no reload"
    );
}

fn served(out: &str) -> bool {
    out.contains("HTTP/1.1 200")
}

#[test]
fn sessions_do_not_outlive_the_client_auth_policy() {
    if !available("openssl") {
        return;
    }
    let pki = TestPki::new();
    let clients = TestPki::new();
    pki.issue("web", &["web.test"]);
    let alice = clients.issue_client("alice", "alice", 7);
    let crl = clients.crl("clients", &[]);
    let ca = clients.ca_file();
    let port = free_port();
    let config = write_config(pki.dir(), port, "optional", &ca, &crl);
    let mut daemon = Daemon::start(&["run", "-c", &config]);
    daemon.wait_listening(&[SocketAddr::from(([127, 0, 0, 1], port))]);
    let dir = pki.dir();
    let session = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let as_alice = [
        "-cert",
        alice.cert_path.to_str().unwrap(),
        "-key",
        alice.key_path.to_str().unwrap(),
    ];

    for version in ["-tls1_3", "-tls1_2"] {
        let (anonymous, signed) = (
            session(&format!("anon{version}")),
            session(&format!("alice{version}")),
        );
        let first = s_client(port, "web.test", version, &["-sess_out", &anonymous]);
        assert!(
            first.contains("New, TLSv1.") && served(&first),
            "{version}:\n{first}"
        );
        let again = s_client(port, "web.test", version, &["-sess_in", &anonymous]);
        assert!(
            again.contains("Reused, TLSv1."),
            "{version}: resumes under optional:\n{again}"
        );
        let with_cert = [&as_alice[..], &["-sess_out", &signed]].concat();
        let first = s_client(port, "web.test", version, &with_cert);
        assert!(served(&first), "{version}:\n{first}");

        // Certificates become required: the anonymous session is not resumed.
        write_config(dir, port, "required", &ca, &crl);
        reload(&daemon);
        let after = s_client(port, "web.test", version, &["-sess_in", &anonymous]);
        assert!(
            !after.contains("Reused,") && !served(&after),
            "{version}:\n{after}"
        );

        // Alice's certificate is revoked: her session is not resumed either.
        clients.crl("clients", &[7]);
        reload(&daemon);
        let resumed = [&as_alice[..], &["-sess_in", &signed]].concat();
        let after = s_client(port, "web.test", version, &resumed);
        assert!(
            !after.contains("Reused,") && !served(&after),
            "{version}:\n{after}"
        );

        // Back to the start for the next version.
        clients.crl("clients", &[]);
        write_config(dir, port, "optional", &ca, &crl);
        reload(&daemon);
    }
}
