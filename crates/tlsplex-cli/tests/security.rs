//! Security defaults: private keys readable by others are flagged (or refused), and no key
//! material, ticket secret or admin token ever reaches the logs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use common::{free_port, tlsplex, Daemon, BIN};
use tlsplex_testkit::TestPki;

fn write_config(pki: &TestPki, global: &str, port: u16) -> String {
    pki.issue("web", &["web.test"]);
    let path = pki.dir().join("tlsplex.toml");
    let text = format!(
        "[global]\n{global}\n[[server]]\nname = \"web\"\nlisten = \"127.0.0.1:{port}\"\ncertificates = [{{ cert = \"web.pem\", key = \"web.key\" }}]\n"
    );
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn chmod(path: &std::path::Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn keys_readable_by_others_are_flagged_or_refused() {
    let pki = TestPki::new();
    let config = write_config(&pki, "", 0);
    let key = pki.dir().join("web.key");
    chmod(&key, 0o644);
    let out = tlsplex(&["check", "-c", &config]);
    assert!(out.status.success());
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(
        logs.contains("is readable by group or others (mode 644)") && logs.contains("web.key"),
        "{logs}"
    );

    chmod(&key, 0o600);
    let out = tlsplex(&["check", "-c", &config]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("readable by group"));

    let strict = write_config(&pki, "strict_key_permissions = true", 0); // issues a new key
    chmod(&key, 0o640);
    let out = tlsplex(&["check", "-c", &strict]);
    assert_eq!(out.status.code(), Some(1));
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(
        errors.contains("server \"web\": certificates[0].key: private key")
            && errors.contains("(mode 640): chmod 600 it"),
        "{errors}"
    );
}

#[test]
fn no_secret_reaches_the_logs_even_at_trace_level() {
    let pki = TestPki::new();
    let ticket = tlsplex(&["ticket-key", "new"]).stdout;
    std::fs::write(pki.dir().join("ticket.key"), &ticket).unwrap();
    std::fs::write(pki.dir().join("admin.token"), "very-secret-admin-token\n").unwrap();
    let (port, admin) = (free_port(), free_port());
    let global = format!("ticket_key_file = \"ticket.key\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\ntoken_file = \"admin.token\"");
    let config = write_config(&pki, &global, port);
    let mut daemon = Daemon::start_program(BIN, &["run", "-c", &config], &[("RUST_LOG", "trace")]);
    daemon.wait_listening(&[([127, 0, 0, 1], port).into()]);
    for _ in 0..3 {
        let probe = tlsplex(&[
            "probe",
            &format!("127.0.0.1:{port}"),
            "--servername",
            "web.test",
            "--insecure",
        ]);
        assert!(probe.status.success());
    }
    daemon.signal("HUP");
    std::thread::sleep(Duration::from_millis(300));
    daemon.signal("TERM");
    assert!(daemon.wait_exit(Duration::from_secs(10)).unwrap().success());
    let logs = daemon.stderr_text();
    assert!(logs.len() > 1000, "trace logging was on");

    let key_pem = std::fs::read_to_string(pki.dir().join("web.key")).unwrap();
    let ticket = String::from_utf8_lossy(&ticket).into_owned();
    let secrets = key_pem
        .lines()
        .filter(|line| !line.starts_with("-----") && line.len() > 16)
        .map(str::to_owned)
        .chain(
            ticket
                .lines()
                .filter(|l| !l.starts_with('#'))
                .map(str::to_owned),
        )
        .chain(["very-secret-admin-token".to_owned()]);
    for secret in secrets {
        assert!(
            !logs.contains(&secret),
            "a secret reached the log: {secret}"
        );
    }
}
