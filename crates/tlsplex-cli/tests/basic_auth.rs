//! `access = { basic_auth = "htpasswd" }`: users from a file `htpasswd -B` wrote. Without a
//! user and password, or with a wrong one, `401` with `WWW-Authenticate` (HTTP/1.1 and HTTP/2)
//! and the backend sees nothing; with the right one the request goes through without its
//! `Authorization`. A flood of wrong passwords queues behind the bcrypt checks, never in front
//! of a user already let in. A plain-text or MD5 line is refused at load, named with its file
//! and line.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{available, free_port, tlsplex, Daemon};
use tlsplex_testkit::http_backend::HttpBackend;
use tlsplex_testkit::TestPki;

/// Status and `WWW-Authenticate` curl got for `path`, as `user` (`user:password`) if given.
fn get(
    port: u16,
    pki: &TestPki,
    version: &str,
    path: &str,
    user: Option<&str>,
) -> (String, String) {
    let mut command = Command::new("curl");
    command
        .args(["-s", "-o", "/dev/null", "-D", "-", version, "--cacert"])
        .arg(pki.ca_file())
        .args(["--resolve", &format!("web.test:{port}:127.0.0.1")]);
    if let Some(user) = user {
        command.args(["-u", user]);
    }
    let out = command
        .arg(format!("https://web.test:{port}{path}"))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = head.split(' ').nth(1).unwrap_or("none").to_owned();
    let challenge = head
        .lines()
        .find_map(|l| l.strip_prefix("www-authenticate: ").map(str::to_owned))
        .unwrap_or_default();
    (status, challenge)
}

fn htpasswd(file: &Path, user: &str, password: &str, cost: &str) {
    let mut args = vec!["-bB", "-C", cost];
    if !file.exists() {
        args.insert(0, "-c");
    }
    let status = Command::new("htpasswd")
        .args(&args)
        .arg(file)
        .args([user, password])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_of_the_file_pass_and_no_one_else_reaches_the_app() {
    if !available("curl") || !available("htpasswd") {
        return;
    }
    let backend = HttpBackend::start().await;
    let pki = TestPki::new();
    pki.issue("web", &["web.test"]);
    let dir = pki.dir();
    let users = dir.join("htpasswd");
    // Cost 9: each check tens of milliseconds (more in a debug build), so the flood below lasts.
    htpasswd(&users, "alice", "secret", "9");
    htpasswd(&users, "bob", "hunter2", "6");
    let (site, app) = (free_port(), free_port());
    let config = dir.join("tlsplex.toml");
    std::fs::write(
        &config,
        format!(
            "[[server]]\nname = \"site\"\nlisten = \"127.0.0.1:{site}\"\n\
             certificates = [{{ cert = \"web.pem\", key = \"web.key\" }}]\n\
             handler = {{ type = \"respond\", body = \"hello\\n\", access = {{ basic_auth = \"htpasswd\", realm = \"staff\" }} }}\n\
             [[server]]\nname = \"app\"\nlisten = \"127.0.0.1:{app}\"\n\
             certificates = [{{ cert = \"web.pem\", key = \"web.key\" }}]\n\
             handler = {{ type = \"respond\", body = \"public\\n\" }}\n\
             [[server.path]]\nprefix = \"/api/\"\n\
             handler = {{ type = \"proxy\", backend = \"{}\", access = {{ basic_auth = \"htpasswd\" }} }}\n",
            backend.addr
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start(&["run", "-c", config.to_str().unwrap()]);
    daemon.wait_listening(&[([127, 0, 0, 1], site).into(), ([127, 0, 0, 1], app).into()]);

    tokio::task::block_in_place(|| {
        for version in ["--http1.1", "--http2"] {
            let refused = (
                "401".to_owned(),
                "Basic realm=\"staff\", charset=\"UTF-8\"".to_owned(),
            );
            assert_eq!(get(site, &pki, version, "/", None), refused, "{version}");
            assert_eq!(get(site, &pki, version, "/", Some("alice:wrong")), refused);
            assert_eq!(get(site, &pki, version, "/", Some("carol:secret")), refused);
            assert_eq!(get(site, &pki, version, "/", Some("alice:secret")).0, "200");
            assert_eq!(get(site, &pki, version, "/", Some("bob:hunter2")).0, "200");
            // Under a path rule: only the rule asks.
            assert_eq!(get(app, &pki, version, "/", None).0, "200");
            let (status, challenge) = get(app, &pki, version, "/api/x", Some("bob:wrong"));
            assert_eq!(
                (status.as_str(), challenge.as_str()),
                ("401", "Basic realm=\"restricted\", charset=\"UTF-8\"")
            );
            assert_eq!(
                get(app, &pki, version, "/api/x", Some("bob:hunter2")).0,
                "200"
            );
        }
    });
    let received = backend.received();
    assert_eq!(received.len(), 2, "only the two let in reached the app");
    assert!(
        received
            .iter()
            .all(|r| r.header("authorization").is_empty()),
        "the password was for tlsplex, not passed on"
    );

    // A flood of wrong passwords (each a bcrypt check) while a user already let in asks again:
    // the flood waits for the checks, the user does not.
    let flood_urls: Vec<String> = (0..48)
        .map(|_| format!("https://web.test:{site}/"))
        .collect();
    let cpu_before = daemon.cpu_time();
    let flood = Command::new("curl")
        .args([
            "-s",
            "-Z",
            "--parallel-max",
            "48",
            "--http1.1",
            "-u",
            "alice:wrong",
            "--cacert",
        ])
        .arg(pki.ca_file())
        .args(["--resolve", &format!("web.test:{site}:127.0.0.1")])
        .args(
            flood_urls
                .iter()
                .flat_map(|u| ["-o", "/dev/null", u.as_str()]),
        )
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let (status, _) =
        tokio::task::block_in_place(|| get(site, &pki, "--http1.1", "/", Some("alice:secret")));
    let waited = started.elapsed();
    let flood = tokio::task::block_in_place(|| flood.wait_with_output().unwrap());
    let flood_took = started.elapsed();
    assert!(flood.status.success());
    let per_check = daemon.cpu_time().saturating_sub(cpu_before) / 48;
    eprintln!("a remembered user waited {waited:?} beside 48 wrong passwords ({flood_took:?} in all, {per_check:?} of CPU each)");
    assert_eq!(status, "200");
    assert!(
        waited * 3 < flood_took,
        "a user let in before does not queue behind the checks: {waited:?} of {flood_took:?}"
    );
}

#[test]
fn files_in_other_formats_are_named_with_their_line() {
    let pki = TestPki::new();
    pki.issue("web", &["web.test"]);
    for (line, expected) in [
        ("carol:secret", "line 2: user \"carol\": not a hash (plain text or crypt): only bcrypt hashes are accepted (htpasswd -B)"),
        ("carol:$apr1$x$y", "line 2: user \"carol\": an MD5 ($apr1$) hash"),
    ] {
        let file = pki.dir().join("users");
        std::fs::write(
            &file,
            format!("alice:$2y$04$uNguyCNK3KuS90Cp./.3pesfXRoTXtIgN5Z6EHxnyTwpnZR79IxOG\n{line}\n"),
        )
        .unwrap();
        let config = pki.dir().join("bad.toml");
        std::fs::write(
            &config,
            "[[server]]\nname = \"s\"\nlisten = \"127.0.0.1:0\"\n\
             certificates = [{ cert = \"web.pem\", key = \"web.key\" }]\n\
             handler = { type = \"respond\", access = { basic_auth = \"users\", allow = [\"ten\"] } }\n",
        )
        .unwrap();
        let check = tlsplex(&["check", "-c", config.to_str().unwrap()]);
        let said = String::from_utf8_lossy(&check.stderr).into_owned()
            + &String::from_utf8_lossy(&check.stdout);
        assert!(!check.status.success());
        let named = format!("server \"s\": handler.access.basic_auth: {}: {expected}", file.display());
        assert!(said.contains(&named), "{named}\nnot in:\n{said}");
        assert!(said.contains("handler.access.allow[0]"), "in the same pass:\n{said}");
    }
}
