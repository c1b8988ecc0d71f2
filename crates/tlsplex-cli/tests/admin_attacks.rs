//! The admin endpoint as an attacker reaches it: a page on another origin in the operator's
//! browser (a `no-cors` POST adding a server that serves `/etc`, a stop, a read), DNS rebinding
//! (a foreign `Host`), and idle partial requests under a low descriptor limit.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use common::admin::{http, login_link, send, start, start_limited};
use common::{available, chromium, chromium_in, free_port};
use tlsplex_testkit::TestPki;

/// Serves `page` at `http://127.0.0.1:PORT/attack.html` (the attacker's origin) until dropped.
fn attacker_origin(page: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(20) {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    port
}

#[test]
fn a_page_on_another_origin_cannot_drive_the_admin_api() {
    if !available("chromium") {
        return;
    }
    let pki = TestPki::new();
    let (_daemon, admin, _) = start(&pki, "");
    let evil_port = free_port();
    let table = format!(
        "name = \"evil\"\nlisten = \"0.0.0.0:{evil_port}\"\n\
         certificates = [{{ cert = \"a.pem\", key = \"a.key\" }}]\n\
         handler = {{ type = \"static\", root = \"/etc\" }}\n"
    );
    // As a JavaScript string literal.
    let table = serde_json::to_string(&table).unwrap();
    let page = format!(
        r#"<html><body><script>
const admin = "http://127.0.0.1:{admin}";
const simple = {{method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}}}};
Promise.allSettled([
  fetch(admin + "/api/servers", {{...simple, body: {table}}}),
  fetch(admin + "/api/servers/b/stop", simple),
  fetch(admin + "/api/reload", {{method: "POST", mode: "no-cors"}}),
  // What the dashboard's buttons send, with the session cookie: CORS mode needs a preflight.
  fetch(admin + "/api/servers/a/stop", {{method: "POST", credentials: "include", headers: {{"Content-Type": "application/json"}}}}),
  fetch(admin + "/api/reload", {{method: "POST", credentials: "include", headers: {{"Content-Type": "application/json"}}}}),
  fetch(admin + "/api/servers/b", {{method: "DELETE", credentials: "include", headers: {{"Content-Type": "application/json"}}}}),
  fetch(admin + "/api/servers").then(r => r.text())
    .then(t => {{ document.body.dataset.read = t; }}, () => {{ document.body.dataset.read = "blocked"; }}),
]).then(() => {{ document.title = "attack sent"; }});
</script></body></html>"#
    );
    let origin = attacker_origin(page);
    // The operator's browser is logged in to the dashboard: its session cookie goes with
    // requests from the same site (another port of 127.0.0.1), so only the guard stands between
    // the page and the API.
    let profile = tempfile::tempdir().unwrap();
    let budget = "--virtual-time-budget=3000".to_owned();
    let dashboard = chromium_in(
        profile.path(),
        &login_link(admin),
        &[budget, "--dump-dom".to_owned()],
    );
    assert!(dashboard.contains("<td>a</td>"), "logged in:\n{dashboard}");
    let dom = chromium_in(
        profile.path(),
        &format!("http://127.0.0.1:{origin}/attack.html"),
        &[
            "--virtual-time-budget=5000".to_owned(),
            "--dump-dom".to_owned(),
        ],
    );
    assert!(
        dom.contains("<title>attack sent</title>"),
        "the page ran:\n{dom}"
    );
    assert!(
        dom.contains("data-read=\"blocked\""),
        "nothing was read:\n{dom}"
    );
    assert_eq!(
        common::admin::server_states(admin),
        [
            ("a".to_owned(), "serving".to_owned()),
            ("b".to_owned(), "serving".to_owned())
        ],
        "no server added, stopped or removed"
    );
    let (_, metrics) = http(admin, "GET", "/metrics", None);
    assert!(
        !metrics.contains("tlsplex_reloads_total{"),
        "no reload:\n{metrics}"
    );
    assert!(TcpStream::connect(("127.0.0.1", evil_port)).is_err());
    // The same requests from the same origin, as the dashboard or ctl send them, work.
    let json = "Content-Type: application/json\r\n";
    assert_eq!(send(admin, "POST", "/api/servers/b/stop", json, "").0, 202);
}

#[test]
fn a_rebound_name_reads_nothing() {
    let pki = TestPki::new();
    let (_daemon, admin, _) = start(&pki, "");
    // curl's view: a foreign Host is refused, whatever the path.
    for path in ["/api/servers", "/metrics", "/"] {
        let mut stream = TcpStream::connect(("127.0.0.1", admin)).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: rebound.example:{admin}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 421"), "{path}: {response}");
        assert!(!response.contains("\"name\""), "{path} leaked: {response}");
    }
    // A browser whose DNS answers 127.0.0.1 for the attacker's name.
    if available("chromium") {
        let dom = chromium(
            &format!("http://rebound.test:{admin}/api/servers"),
            &[
                "--host-resolver-rules=MAP rebound.test 127.0.0.1".to_owned(),
                "--dump-dom".to_owned(),
            ],
        );
        assert!(dom.contains("unknown Host"), "{dom}");
        assert!(!dom.contains("\"name\""), "{dom}");
    }
}

#[test]
fn idle_partial_requests_cannot_starve_the_process() {
    // 260 idle partial requests against a process allowed 200 descriptors: the admin endpoint
    // holds at most its cap, the TLS servers still accept, and the partial requests time out.
    let pki = TestPki::new();
    let (daemon, admin, [a, _]) = start_limited(&pki, "", Some(200));
    let fds_before = daemon.open_fds();
    let mut held = Vec::new();
    for _ in 0..260 {
        let mut stream = TcpStream::connect(("127.0.0.1", admin)).unwrap();
        stream
            .write_all(b"GET /api/servers HTTP/1.1\r\nHo")
            .unwrap();
        held.push(stream);
    }
    std::thread::sleep(Duration::from_millis(500));
    let fds_held = daemon.open_fds();
    eprintln!("admin flood: daemon fds {fds_before} -> {fds_held} with 260 partial requests");
    assert!(
        fds_held <= fds_before + tlsplex::admin::MAX_ADMIN_CONNECTIONS + 2,
        "{fds_held} descriptors"
    );
    let probe = common::tlsplex(&["probe", &format!("127.0.0.1:{a}"), "--insecure"]);
    assert!(probe.status.success(), "the TLS server must still accept");

    // Every accepted partial request is closed by the header timeout (then the next ones in
    // the backlog are accepted, and so on).
    std::thread::sleep(tlsplex::admin::ADMIN_HEADER_TIMEOUT + Duration::from_secs(1));
    let mut closed = 0;
    for stream in &mut held {
        stream.set_nonblocking(true).unwrap();
        match stream.read(&mut [0u8; 512]) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            _ => closed += 1, // end of stream, or reset
        }
    }
    eprintln!("admin flood: {closed} partial requests closed by the header timeout");
    assert!(
        closed >= tlsplex::admin::MAX_ADMIN_CONNECTIONS,
        "{closed} closed"
    );
}
