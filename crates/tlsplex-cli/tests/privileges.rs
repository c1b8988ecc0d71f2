//! `[global] user`: bind as root, then run as that user; refuse to serve as root if the switch
//! cannot be made.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

mod common;

use std::time::Duration;

use common::{free_port, tlsplex, Daemon};
use tlsplex_testkit::TestPki;

fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let root = status
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    if !root {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI runs as root"
        );
        eprintln!("skipping: dropping privileges needs root");
    }
    root
}

fn config(pki: &TestPki, port: u16, user: &str) -> String {
    pki.issue("web", &["web.test"]);
    let path = pki.dir().join("tlsplex.toml");
    let text = format!(
        "[global]\nuser = \"{user}\"\n[[server]]\nname = \"web\"\nlisten = \"127.0.0.1:{port}\"\ncertificates = [{{ cert = \"web.pem\", key = \"web.key\" }}]\n"
    );
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn the_process_serves_as_nobody_after_binding() {
    if !is_root() {
        return;
    }
    let pki = TestPki::new();
    let port = free_port();
    let mut daemon = Daemon::start(&["run", "-c", &config(&pki, port, "nobody")]);
    daemon.wait_listening(&[([127, 0, 0, 1], port).into()]);
    std::thread::sleep(Duration::from_millis(200));
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.pid())).unwrap();
    let ids = |key: &str| -> Vec<String> {
        let line = status.lines().find(|l| l.starts_with(key)).unwrap();
        line.split_whitespace().skip(1).map(str::to_owned).collect()
    };
    assert_eq!(
        ids("Uid:"),
        ["65534"; 4],
        "real, effective, saved and fs uid:\n{status}"
    );
    assert!(ids("Gid:").iter().all(|g| g != "0"), "{status}");
    assert_eq!(
        ids("Groups:").iter().filter(|g| *g == "0").count(),
        0,
        "{status}"
    );
    let probe = tlsplex(&["probe", &format!("127.0.0.1:{port}"), "--insecure"]);
    assert!(probe.status.success(), "still serving");
    daemon.signal("TERM");
    assert!(daemon.wait_exit(Duration::from_secs(10)).unwrap().success());
}

#[test]
fn an_unknown_user_refuses_to_serve() {
    if !is_root() {
        return;
    }
    let pki = TestPki::new();
    let out = tlsplex(&[
        "run",
        "-c",
        &config(&pki, free_port(), "no-such-user-tlsplex"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(
        errors.contains("no such user: \"no-such-user-tlsplex\"; refusing to serve as root"),
        "{errors}"
    );
}
