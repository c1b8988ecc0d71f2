//! `contrib/tlsplex.service` as shipped: `systemd-analyze verify` finds nothing to say, and the
//! daemon, run the way the unit runs it (its user, its one capability, no new privileges, its
//! `ExecStartPre` and `ExecStart`, a config folder it cannot write, `$STATE_DIRECTORY`), gets an
//! ACME certificate from Pebble over HTTP-01 on privileged ports. Without systemd as PID 1 the
//! unit's mount sandbox is not reproduced; unwritable folders stand in for `ProtectSystem`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

mod common;
#[path = "common/pebble.rs"]
mod pebble;

use std::net::SocketAddr;
use std::os::unix::fs::{chown, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{available, free_port, Daemon, BIN};
use pebble::{Pebble, ISSUED};
use tlsplex_testkit::TestPki;

const UNIT: &str = include_str!("../../../contrib/tlsplex.service");
const SOCKET: &str = include_str!("../../../contrib/tlsplex.socket");
const SYSUSERS: &str = include_str!("../../../contrib/tlsplex.sysusers");

/// An id no account has, standing in for the user systemd-sysusers makes.
const TLSPLEX_UID: u32 = 64_321;

/// The values of `key` in the unit's `[Service]`, in order.
fn service(key: &str) -> Vec<&'static str> {
    let prefix = format!("{key}=");
    UNIT.lines()
        .skip_while(|l| *l != "[Service]")
        .take_while(|l| !l.starts_with("[Install]"))
        .filter_map(|l| l.strip_prefix(&prefix))
        .collect()
}

fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
}

fn tools_present() -> bool {
    let ci = std::env::var("CI").as_deref() == Ok("true");
    let tools = [
        "systemd-analyze",
        "setpriv",
        "pebble",
        "pebble-challtestsrv",
    ];
    let present = tools.iter().all(|tool| available(tool));
    if !is_root() {
        assert!(!ci, "CI runs as root");
        eprintln!("skipping: running as another user needs root");
        return false;
    }
    present
}

#[test]
fn the_unit_and_socket_verify_cleanly() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // verify checks that ExecStart's program exists: point it at this build.
    for (name, text) in [("tlsplex.service", UNIT), ("tlsplex.socket", SOCKET)] {
        let text = text.replace("/usr/local/bin/tlsplex", BIN);
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.path().join("tlsplex.service"))
        .arg(dir.path().join("tlsplex.socket"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
    assert_eq!(service("User"), ["tlsplex"]);
    assert!(
        SYSUSERS.lines().any(|l| l.starts_with("u tlsplex ")),
        "the sysusers file makes the unit's user"
    );
}

/// A folder owned by `uid` (`None`: root, group `TLSPLEX_UID`) with `mode`.
fn folder(path: &Path, uid: Option<u32>, mode: u32) -> PathBuf {
    std::fs::create_dir_all(path).unwrap();
    match uid {
        Some(uid) => chown(path, Some(uid), Some(uid)).unwrap(),
        None => chown(path, Some(0), Some(TLSPLEX_UID)).unwrap(),
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    path.to_owned()
}

/// Root's file, readable by the group `TLSPLEX_UID` (`install -m 0640 -g tlsplex`).
fn config_file(path: &Path, contents: &[u8]) {
    std::fs::write(path, contents).unwrap();
    chown(path, Some(0), Some(TLSPLEX_UID)).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o640)).unwrap();
}

/// `setpriv` arguments that run a program as the unit does: its user, only its ambient
/// capabilities, no new privileges.
fn as_the_unit() -> Vec<String> {
    let caps: Vec<String> = service("AmbientCapabilities")
        .iter()
        .flat_map(|v| v.split_whitespace())
        .map(|cap| cap.trim_start_matches("CAP_").to_ascii_lowercase())
        .collect();
    assert_eq!(caps, ["net_bind_service"], "the unit's capabilities");
    assert_eq!(service("CapabilityBoundingSet"), ["CAP_NET_BIND_SERVICE"]);
    assert_eq!(service("NoNewPrivileges"), ["yes"]);
    let caps: Vec<String> = caps.iter().map(|c| format!("+{c}")).collect();
    vec![
        format!("--reuid={TLSPLEX_UID}"),
        format!("--regid={TLSPLEX_UID}"),
        "--clear-groups".to_owned(),
        format!("--inh-caps=-all,{}", caps.join(",")),
        format!("--ambient-caps={}", caps.join(",")),
        format!("--bounding-set=-all,{}", caps.join(",")),
        "--no-new-privs".to_owned(),
    ]
}

/// `line` of the unit (`ExecStartPre=…`) with the installed paths replaced by the test's.
fn command_of(line: &str, config: &Path) -> Vec<String> {
    line.replace("/usr/local/bin/tlsplex", BIN)
        .replace("/etc/tlsplex/tlsplex.toml", config.to_str().unwrap())
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_daemon_as_the_unit_runs_it_gets_an_acme_certificate_on_privileged_ports() {
    if !tools_present() {
        return;
    }
    let pki = TestPki::new();
    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let etc = folder(&root.path().join("etc/tlsplex"), None, 0o750);
    assert_eq!(service("StateDirectory"), ["tlsplex"]);
    let state = folder(
        &root.path().join("var/lib/tlsplex"),
        Some(TLSPLEX_UID),
        0o700,
    );
    // Below 1024, where the capability is needed; Pebble validates HTTP-01 on `http`.
    let (https, http, admin) = (643, 680, free_port());
    let mut pebble = Pebble::with_http_port(pki.dir(), &pki, free_port(), http, 3600);
    pebble.start();
    config_file(&etc.join("pebble-ca.pem"), pki.ca_pem().as_bytes());
    let config = etc.join("tlsplex.toml");
    config_file(
        &config,
        format!(
            r#"[admin]
listen = "127.0.0.1:{admin}"

[acme]
directory = "{}"
directory_ca = "pebble-ca.pem"
http01_listen = "127.0.0.1:{http}"

[[server]]
name = "web"
listen = "127.0.0.1:{https}"
certificates = [{{ acme = ["a.test"] }}]
"#,
            pebble.directory
        )
        .as_bytes(),
    );
    let env = [("STATE_DIRECTORY", state.to_str().unwrap())];

    let check = command_of(service("ExecStartPre")[0], &config);
    let out = Command::new("setpriv")
        .args(as_the_unit())
        .args(&check)
        .envs(env)
        .output()
        .unwrap();
    assert!(out.status.success(), "ExecStartPre: {out:?}");

    let run = command_of(service("ExecStart")[0], &config);
    let args: Vec<String> = as_the_unit().into_iter().chain(run).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut daemon = Daemon::start_program("setpriv", &args, &env);
    daemon.wait_listening(&[
        SocketAddr::from(([127, 0, 0, 1], https)),
        SocketAddr::from(([127, 0, 0, 1], http)),
        SocketAddr::from(([127, 0, 0, 1], admin)),
    ]);
    let mut log = Vec::new();
    let issued = daemon.wait_log_keeping(ISSUED, Duration::from_secs(30), &mut log);
    assert!(issued, "{}", log.join("\n"));

    // What it runs as: the unit's user, with CAP_NET_BIND_SERVICE (bit 10) and nothing else.
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.pid())).unwrap();
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().to_owned()
    };
    assert_eq!(field("Uid:"), TLSPLEX_UID.to_string(), "{status}");
    assert_eq!(field("CapEff:"), format!("{:016x}", 1u64 << 10), "{status}");
    assert_eq!(field("NoNewPrivs:"), "1");

    // Its state went to $STATE_DIRECTORY; the config folder is as the operator left it.
    let written: Vec<String> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        written.contains(&"acme".to_owned()) && written.contains(&"admin.token".to_owned()),
        "{written:?}"
    );
    let mut config_folder: Vec<String> = std::fs::read_dir(&etc)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    config_folder.sort();
    assert_eq!(config_folder, ["pebble-ca.pem", "tlsplex.toml"]);

    // The operator (root) drives it with the token from the state folder.
    let token = state.join("admin.token");
    let ctl = common::tlsplex(&[
        "ctl",
        "--admin",
        &format!("127.0.0.1:{admin}"),
        "--token-file",
        token.to_str().unwrap(),
        "servers",
    ]);
    assert!(ctl.status.success(), "{ctl:?}");
    let table = String::from_utf8_lossy(&ctl.stdout).into_owned();
    assert!(
        table.contains("web ") && table.contains("serving"),
        "{table}"
    );

    daemon.signal("TERM");
    assert!(daemon.wait_exit(Duration::from_secs(10)).unwrap().success());
}
