//! Handlers through the binary: forward to a backend with openssl s_client and PROXY headers,
//! the backend-down log line, static files over curl --http2, fixed responses, and config errors
//! for handler keys.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{available, free_port, tlsplex, Daemon};
use tlsplex_testkit::TestPki;

/// A plaintext backend that upper-cases what it reads, one connection at a time.
fn upper_case_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            std::thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buffer) {
                    if n == 0 || stream.write_all(&buffer[..n].to_ascii_uppercase()).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

fn config(pki: &TestPki, port: u16, handler: &str) -> String {
    pki.issue("web", &["web.test"]);
    let path = pki.dir().join("tlsplex.toml");
    let text = format!(
        "[[server]]\nname = \"fwd\"\nlisten = \"127.0.0.1:{port}\"\ncertificates = [{{ cert = \"web.pem\", key = \"web.key\" }}]\nhandler = {handler}\n"
    );
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn openssl_s_client_reaches_the_backend_through_tlsplex() {
    if !available("openssl") {
        return;
    }
    let pki = TestPki::new();
    let backend = upper_case_backend();
    let port = free_port();
    let config = config(
        &pki,
        port,
        &format!("{{ type = \"forward\", backend = \"{backend}\" }}"),
    );
    let mut daemon = Daemon::start(&["run", "-c", &config]);
    daemon.wait_listening(&[([127, 0, 0, 1], port).into()]);
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            "-no_ign_eof",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "web.test",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"hello through tls\n").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "HELLO THROUGH TLS\n");
}

#[test]
fn an_unreachable_backend_is_logged_with_server_and_backend_once_per_interval() {
    let pki = TestPki::new();
    let closed = free_port();
    let port = free_port();
    let config = config(
        &pki,
        port,
        &format!("{{ type = \"forward\", backend = \"127.0.0.1:{closed}\" }}"),
    );
    let mut daemon = Daemon::start(&["run", "-c", &config, "--log-format", "json"]);
    daemon.wait_listening(&[([127, 0, 0, 1], port).into()]);
    // Twenty clients in a row: one warning, not twenty (any client could write the log).
    for _ in 0..20 {
        let probe = tlsplex(&["probe", &format!("127.0.0.1:{port}"), "--insecure"]);
        assert!(
            probe.status.success(),
            "the handshake itself succeeds: {probe:?}\n{}",
            daemon.stderr_text()
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    daemon.signal("TERM");
    assert!(daemon.wait_exit(Duration::from_secs(10)).unwrap().success());
    let logs = daemon.stderr_text();
    let warnings = logs.matches("backend unreachable").count();
    assert_eq!(warnings, 1, "one warning per interval:\n{logs}");
    let event: serde_json::Value = logs
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .find(|e: &serde_json::Value| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("backend unreachable"))
        })
        .expect(&logs);
    assert_eq!(event["level"], "WARN");
    assert_eq!(event["server"], "fwd");
    assert_eq!(event["backend"], format!("127.0.0.1:{closed}"));
    assert!(
        event["reason"].as_str().unwrap().contains("refused"),
        "{event}"
    );
}

#[test]
fn static_files_over_curl_http2_with_response_headers() {
    if !available("curl") {
        return;
    }
    let pki = TestPki::new();
    let www = pki.dir().join("www");
    std::fs::create_dir(&www).unwrap();
    std::fs::write(www.join("index.html"), "<p>static</p>").unwrap();
    let port = free_port();
    let handler = "{ type = \"static\", root = \"www\", response_headers = { set = { strict-transport-security = \"max-age=63072000\" }, add = { cache-control = \"public, max-age=60\" }, remove = [\"last-modified\"] } }";
    let config = config(&pki, port, handler);
    let mut daemon = Daemon::start(&["run", "-c", &config]);
    daemon.wait_listening(&[([127, 0, 0, 1], port).into()]);
    let ca = pki.ca_file();
    let curl = |version: &str, path: &str| {
        let out = Command::new("curl")
            .args(["-s", "-i", version, "-w", "\n%{http_version}", "--cacert"])
            .arg(&ca)
            .arg("--resolve")
            .arg(format!("web.test:{port}:127.0.0.1"))
            .arg(format!("https://web.test:{port}{path}"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).replace('\r', "")
    };
    for (version, shown) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let page = curl(version, "/");
        assert!(page.ends_with(&format!("<p>static</p>\n{shown}")), "{page}");
        assert!(
            page.contains("strict-transport-security: max-age=63072000\n"),
            "{page}"
        );
        assert!(
            page.contains("cache-control: public, max-age=60\n"),
            "{page}"
        );
        assert!(!page.contains("last-modified"), "{page}");
        // Every answer of the handler, a 404 too (nginx's `add_header … always`).
        let missing = curl(version, "/missing");
        assert!(missing.contains(" 404"), "{missing}");
        assert!(
            missing.contains("strict-transport-security: max-age=63072000\n"),
            "{missing}"
        );
    }
}

#[test]
fn a_fixed_response_over_http1_http2_and_head_and_a_redirect_route() {
    if !available("curl") {
        return;
    }
    let pki = TestPki::new();
    pki.issue("old", &["old.test"]);
    let port = free_port();
    let config = config(
        &pki,
        port,
        "{ type = \"respond\", status = 503, body = \"down for maintenance\\n\", headers = { retry-after = \"120\" } }\ncertificates = [{ cert = \"web.pem\", key = \"web.key\" }, { cert = \"old.pem\", key = \"old.key\" }]\n[[server.route]]\nnames = [\"old.test\"]\nhandler = { type = \"respond\", status = 308, headers = { location = \"https://web.test/\" } }",
    );
    let text = std::fs::read_to_string(&config).unwrap();
    // The base config's own certificates line is replaced by the one with both.
    let text = text.replacen(
        "certificates = [{ cert = \"web.pem\", key = \"web.key\" }]\n",
        "",
        1,
    );
    std::fs::write(&config, text).unwrap();
    let mut daemon = Daemon::start(&["run", "-c", &config]);
    daemon.wait_listening(&[([127, 0, 0, 1], port).into()]);
    let ca = pki.ca_file();
    let curl = |name: &str, extra: &[&str]| {
        let out = Command::new("curl")
            .args(["-s", "-i", "--cacert", ca.to_str().unwrap(), "--resolve"])
            .arg(format!("{name}:{port}:127.0.0.1"))
            .args(extra)
            .arg(format!("https://{name}:{port}/any/path"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).replace('\r', "")
    };
    for version in ["--http1.1", "--http2"] {
        let page = curl("web.test", &[version]);
        assert!(page.contains(" 503"), "{version}: {page}");
        assert!(page.contains("retry-after: 120"), "{page}");
        assert!(
            page.contains("content-type: text/plain; charset=utf-8"),
            "{page}"
        );
        assert!(page.ends_with("\n\ndown for maintenance\n"), "{page}");
    }
    // HEAD: the length a GET would get, no body (over HTTP/2 too, where hyper would send it).
    for version in ["--http1.1", "--http2"] {
        let head = curl("web.test", &[version, "--head"]);
        assert!(
            head.contains("content-length: 21") && head.ends_with("\n\n"),
            "{version}: {head}"
        );
    }
    let moved = curl("old.test", &[]);
    assert!(
        moved.contains(" 308") && moved.contains("location: https://web.test/"),
        "{moved}"
    );
}

#[test]
fn handler_keys_are_checked() {
    let pki = TestPki::new();
    let port = free_port();
    for (handler, expected) in [
        (
            "{ type = \"forward\", backend = \"nowhere\" }",
            "handler.backend: \"nowhere\" is not HOST:PORT or unix:PATH",
        ),
        (
            "{ type = \"forward\", backend = \"127.0.0.1:80\", proxy_protocol = \"v3\" }",
            "unknown variant `v3`, expected `v1` or `v2`",
        ),
        (
            "{ type = \"forward\", backend = \"127.0.0.1:80\", connect_timeout = \"soon\" }",
            "handler.connect_timeout: invalid duration \"soon\"",
        ),
        ("{ type = \"forward\" }", "missing field `backend`"),
        (
            "{ type = \"static\", root = \"no-such-folder\" }",
            "handler.root: cannot serve",
        ),
        (
            "{ type = \"static\", root = \"www\", autoindex = true }",
            "unknown field `autoindex`",
        ),
        (
            "{ type = \"respond\", status = 42 }",
            "handler.status: 42 is not a status code from 200 to 599",
        ),
        (
            "{ type = \"respond\", headers = { content-length = \"3\" } }",
            "handler.headers: header \"content-length\" is set by the server",
        ),
        (
            "{ type = \"respond\", headers = { \"bad name\" = \"x\" } }",
            "handler.headers: header \"bad name\": not a valid HTTP header name and value",
        ),
    ] {
        let config = config(&pki, port, handler);
        let out = tlsplex(&["check", "-c", &config]);
        let errors = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{handler}");
        assert!(
            errors.contains("server \"fwd\"") && errors.contains(expected),
            "{handler}:\n{errors}"
        );
    }
}
