//! Config files that would hang or exhaust a naive reader: a FIFO as a certificate, /dev/zero as
//! a key, both missing at once. `check` says what each is, at once; a reload with them keeps the
//! old certificate serving, and signals still work.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{free_port, tlsplex, Daemon};
use tlsplex_testkit::TestPki;

fn config(dir: &Path, port: u16, cert: &str, key: &str) -> String {
    let path = dir.join("tlsplex.toml");
    std::fs::write(
        &path,
        format!(
            "[[server]]\nname = \"web\"\nlisten = \"127.0.0.1:{port}\"\n\
             certificates = [{{ cert = {cert:?}, key = {key:?} }}]\n"
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

fn mkfifo(path: &Path) {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(made.success());
}

#[test]
fn check_names_fifos_devices_and_every_missing_file_at_once() {
    let pki = TestPki::new();
    let fifo = pki.dir().join("cert.fifo");
    mkfifo(&fifo);
    let started = Instant::now();
    let file = config(pki.dir(), 1, fifo.to_str().unwrap(), "/dev/zero");
    let out = tlsplex(&["check", "-c", &file]);
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "check waited on a file"
    );
    assert!(
        text.contains("certificates[0].cert") && text.contains("a FIFO"),
        "{text}"
    );
    assert!(
        text.contains("certificates[0].key") && text.contains("a character device"),
        "{text}"
    );

    let file = config(pki.dir(), 1, "missing.pem", "missing.key");
    let out = tlsplex(&["check", "-c", &file]);
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("missing.pem") && text.contains("missing.key"),
        "both named:\n{text}"
    );
}

#[test]
fn a_reload_onto_a_fifo_keeps_serving_and_signals_still_work() {
    let pki = TestPki::new();
    pki.issue("web", &["web.test"]);
    let port = free_port();
    let file = config(pki.dir(), port, "web.pem", "web.key");
    let mut daemon = Daemon::start(&["run", "-c", &file]);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    daemon.wait_listening(&[addr]);

    let fifo = pki.dir().join("cert.fifo");
    mkfifo(&fifo);
    config(pki.dir(), port, fifo.to_str().unwrap(), "/dev/zero");
    daemon.signal("HUP");
    assert!(
        daemon.wait_log("reload refused", Duration::from_secs(5)),
        "the reload must fail at once, naming the problem"
    );
    let probe = tlsplex(&["probe", &addr.to_string(), "--insecure"]);
    assert!(probe.status.success(), "the old certificate still serves");
    daemon.signal("TERM");
    let exited = daemon.wait_exit(Duration::from_secs(10));
    assert!(
        exited.is_some_and(|status| status.success()),
        "SIGTERM still works"
    );
}
