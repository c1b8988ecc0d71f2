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

/// `tlsplex ARGS` as `nobody`, from a copy of the binary anyone may run (the build folder may be
/// private to root).
fn as_nobody(folder: &std::path::Path, args: &[&str]) -> std::process::Output {
    use std::os::unix::fs::PermissionsExt as _;
    let bin = folder.join("tlsplex");
    if !bin.exists() {
        std::fs::copy(common::BIN, &bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn ctl_and_probe_read_a_config_whose_keys_only_root_may_read() {
    use std::os::unix::fs::PermissionsExt as _;
    if !is_root() || !common::available("setpriv") {
        return;
    }
    let pki = TestPki::new();
    let (port, admin) = (free_port(), free_port());
    pki.issue("web", &["web.test"]);
    let ca = pki.ca_file();
    let path = pki.dir().join("tlsplex.toml");
    std::fs::write(
        &path,
        format!(
            "[admin]\nlisten = \"127.0.0.1:{admin}\"\ntoken_file = \"ops.token\"\n[[server]]\nname = \"web\"\nlisten = \"127.0.0.1:{port}\"\ncertificates = [{{ cert = \"web.pem\", key = \"web.key\" }}]\n"
        ),
    )
    .unwrap();
    let mode = |file: &std::path::Path, mode| {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    mode(pki.dir(), 0o755);
    // The operators are given the admin token (a group's file, here everyone's); not the key.
    std::fs::write(pki.dir().join("ops.token"), "ops-token\n").unwrap();
    for file in [
        path.as_path(),
        &ca,
        &pki.dir().join("web.pem"),
        &pki.dir().join("ops.token"),
    ] {
        mode(file, 0o644);
    }
    mode(&pki.dir().join("web.key"), 0o600); // root's alone
    let config = path.to_str().unwrap();
    let mut daemon = Daemon::start(&["run", "-c", config]);
    daemon.wait_listening(&[
        ([127, 0, 0, 1], port).into(),
        ([127, 0, 0, 1], admin).into(),
    ]);
    let tools = tempfile::tempdir().unwrap();
    mode(tools.path(), 0o755);

    let check = as_nobody(tools.path(), &["check", "-c", config]);
    assert!(
        !check.status.success() && String::from_utf8_lossy(&check.stderr).contains("web.key"),
        "nobody really cannot read the key: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let servers = as_nobody(tools.path(), &["ctl", "-c", config, "--json", "servers"]);
    assert!(
        servers.status.success(),
        "ctl -c as nobody: {}",
        String::from_utf8_lossy(&servers.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&servers.stdout).unwrap();
    assert_eq!(listed[0]["name"], "web");
    let probe = as_nobody(
        tools.path(),
        &["probe", "-c", config, "--ca", ca.to_str().unwrap()],
    );
    let report = String::from_utf8_lossy(&probe.stdout);
    assert!(
        probe.status.success() && report.contains("web.test"),
        "probe -c as nobody, with the SNI from the certificate:\n{report}{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    drop(daemon);
}

#[test]
fn another_local_user_cannot_use_the_admin_endpoint() {
    use std::os::unix::fs::PermissionsExt as _;
    // The daemon runs as root, as in the attack (a static server rooted at /etc, added by
    // `nobody` through the admin API, then served /etc/shadow).
    if !is_root() || !common::available("setpriv") {
        return;
    }
    let pki = TestPki::new();
    let (_daemon, admin, _) = common::admin::start(&pki, "");
    let dir = pki.dir();
    // Let nobody into the folder, as into a shared /etc/tlsplex.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mode = std::fs::metadata(dir.join("admin.token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the generated token is the daemon's user's only"
    );
    let config = dir.join("tlsplex.toml");
    let config = config.to_str().unwrap();
    let tools = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tools.path(), std::fs::Permissions::from_mode(0o755)).unwrap();

    // nobody's ctl cannot read the token.
    let out = as_nobody(tools.path(), &["ctl", "-c", config, "servers"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot read the admin token"), "{stderr}");

    // nobody's own request for a server rooted at /etc is refused, and nothing is added.
    let port = free_port();
    let table = format!(
        "name = \"etc\"\nlisten = \"127.0.0.1:{port}\"\ncertificates = [{{ cert = \"a.pem\", key = \"a.key\" }}]\nhandler = {{ type = \"static\", root = \"/etc\" }}\n"
    );
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "curl",
            "-s",
        ])
        .args(["-o", "/dev/null", "-w", "%{http_code}"])
        .args([
            "-H",
            "Content-Type: application/toml",
            "--data-binary",
            &table,
        ])
        .arg(format!("http://127.0.0.1:{admin}/api/servers"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "401");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    let (_, servers) = common::admin::http(admin, "GET", "/api/servers", None);
    assert!(!servers.contains("\"etc\""), "{servers}");

    // The daemon's own user (root here) drives it.
    let out = tlsplex(&["ctl", "-c", config, "servers"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
