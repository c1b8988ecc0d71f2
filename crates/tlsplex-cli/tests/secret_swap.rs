//! Certificates mounted the way the kubelet writes a Kubernetes secret: each version in a new
//! timestamped folder, `..data` a symlink swapped to it in one rename, `tls.crt` and `tls.key`
//! links through `..data`. Under `reload_check_interval`, a new secret is served; a swap to an
//! identical secret (new folder, new times, same bytes) does not reload; no reload sees half a
//! pair.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{free_port, tlsplex, Daemon};
use tlsplex_testkit::TestPki;

/// Writes `cert`/`key` as the secret's version `version` and points `..data` at it, atomically.
fn publish(secret: &Path, version: &str, cert: &[u8], key: &[u8]) {
    let folder = secret.join(format!("..{version}"));
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("tls.crt"), cert).unwrap();
    std::fs::write(folder.join("tls.key"), key).unwrap();
    let staged = secret.join("..data_tmp");
    std::os::unix::fs::symlink(format!("..{version}"), &staged).unwrap();
    std::fs::rename(&staged, secret.join("..data")).unwrap();
    for name in ["tls.crt", "tls.key"] {
        let link = secret.join(name);
        if link.symlink_metadata().is_err() {
            std::os::unix::fs::symlink(format!("..data/{name}"), link).unwrap();
        }
    }
}

fn served_fingerprint(port: u16) -> String {
    let address = format!("127.0.0.1:{port}");
    let out = tlsplex(&["probe", &address, "--insecure", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    report[0]["sha256_fingerprint"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn a_swapped_secret_is_served_and_an_identical_one_reloads_nothing() {
    let pki = TestPki::new();
    let secret = pki.dir().join("secret");
    std::fs::create_dir_all(&secret).unwrap();
    let first = pki.issue("v1", &["web.test"]);
    publish(
        &secret,
        "2026_01_01_v1",
        first.cert_pem.as_bytes(),
        first.key_pem.as_bytes(),
    );
    let port = free_port();
    let config = pki.dir().join("tlsplex.toml");
    std::fs::write(
        &config,
        format!(
            "[global]\nreload_check_interval = \"200ms\"\n[[server]]\nname = \"web\"\n\
             listen = \"127.0.0.1:{port}\"\n\
             certificates = [{{ cert = \"secret/tls.crt\", key = \"secret/tls.key\" }}]\n"
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start(&["run", "-c", config.to_str().unwrap()]);
    daemon.wait_listening(&[SocketAddr::from(([127, 0, 0, 1], port))]);
    let fingerprint =
        |cert: &tlsplex_testkit::TestCert| tlsplex::tls::sha256_fingerprint(&cert.cert_der);
    assert_eq!(served_fingerprint(port), fingerprint(&first));

    // The same secret again, a second later (new folder, new modification times).
    std::thread::sleep(Duration::from_millis(1100));
    publish(
        &secret,
        "2026_01_02_v2",
        first.cert_pem.as_bytes(),
        first.key_pem.as_bytes(),
    );
    std::fs::remove_dir_all(secret.join("..2026_01_01_v1")).unwrap();
    assert!(
        !daemon.wait_log("reloading", Duration::from_millis(1500)),
        "an identical secret must not reload"
    );

    // A new certificate and key.
    let second = pki.issue("v2", &["web.test"]);
    publish(
        &secret,
        "2026_01_03_v3",
        second.cert_pem.as_bytes(),
        second.key_pem.as_bytes(),
    );
    std::fs::remove_dir_all(secret.join("..2026_01_02_v2")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while served_fingerprint(port) != fingerprint(&second) {
        assert!(Instant::now() < deadline, "the new secret was never served");
        std::thread::sleep(Duration::from_millis(100));
    }
    daemon.signal("TERM");
    assert!(daemon.wait_exit(Duration::from_secs(10)).unwrap().success());
    let log = daemon.stderr_text();
    assert!(
        !log.contains("reload refused"),
        "a reload saw half a pair:\n{log}"
    );
}
