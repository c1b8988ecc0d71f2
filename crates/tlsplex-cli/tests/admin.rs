//! The admin endpoint: every route, bearer-token auth, the loopback rule, and the dashboard in a
//! real browser.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::admin::{anonymous, dashboard_dom, http, login_link, send, send_as, start};
use common::{available, chromium, free_port, tlsplex};
use tlsplex_testkit::TestPki;

#[test]
fn every_route_answers() {
    let pki = TestPki::new();
    let (_daemon, admin, [a, b]) = start(&pki, "");
    assert!(tlsplex(&["probe", &format!("127.0.0.1:{a}"), "--insecure"])
        .status
        .success());

    assert_eq!(
        http(admin, "GET", "/healthz", None),
        (200, "ok\n".to_owned())
    );
    assert_eq!(http(admin, "GET", "/readyz", None).0, 200);
    let (status, body) = http(admin, "GET", "/api/servers", None);
    assert_eq!(status, 200);
    let servers: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(servers[0]["name"], "a");
    assert_eq!(servers[0]["state"], "serving");
    assert_eq!(servers[0]["handshakes"], 1);
    assert_eq!(servers[0]["certificate_subject"], "CN=a.test");
    assert!(servers[0]["certificate_days_left"].as_i64().unwrap() > 300);
    assert_eq!(servers[1]["name"], "b");

    let (status, metrics) = http(admin, "GET", "/metrics", None);
    assert_eq!(status, 200);
    assert!(
        metrics.contains("tlsplex_handshakes_total{server=\"a\"} 1"),
        "{metrics}"
    );
    // The process's own series, as Prometheus' client libraries name them, and the build.
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in\n{metrics}"))
    };
    assert!(value("process_resident_memory_bytes") > 1_000_000.0);
    assert!(value("process_open_fds") >= 3.0);
    assert!(value("process_cpu_seconds_total") > 0.0);
    let started = value("process_start_time_seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        started <= now && started > now - 120.0,
        "{started} vs {now}"
    );
    assert!(
        metrics.contains("tlsplex_build_info{version=\""),
        "{metrics}"
    );

    let (status, report) = http(admin, "POST", "/api/reload", None);
    assert_eq!(status, 200, "{report}");
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    // Nothing changed: both servers are left as they are.
    assert_eq!(report["updated"], serde_json::json!([]));
    assert_eq!(report["unchanged"], serde_json::json!(["a", "b"]));

    assert_eq!(http(admin, "POST", "/api/servers/b/stop", None).0, 202);
    assert!(
        TcpStream::connect(("127.0.0.1", b)).is_err(),
        "stopped: b's port closed"
    );
    assert_eq!(http(admin, "POST", "/api/servers/b/start", None).0, 201);
    assert!(
        TcpStream::connect(("127.0.0.1", b)).is_ok(),
        "started again from the config"
    );
    assert_eq!(
        http(admin, "POST", "/api/servers/b/start", None).0,
        409,
        "already running"
    );
    assert_eq!(
        http(admin, "POST", "/api/servers/zz/start", None).0,
        409,
        "not configured"
    );
    assert_eq!(http(admin, "DELETE", "/api/servers/b", None).0, 202);
    assert!(
        TcpStream::connect(("127.0.0.1", b)).is_err(),
        "b's port closed"
    );
    let (_, body) = http(admin, "GET", "/api/servers", None);
    let servers: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(servers.as_array().unwrap().len(), 1);
    assert_eq!(http(admin, "DELETE", "/api/servers/nope", None).0, 404);
    assert_eq!(http(admin, "GET", "/nowhere", None).0, 404);
    assert_eq!(http(admin, "PUT", "/api/servers", None).0, 405);
}

#[test]
fn servers_can_be_added_as_toml_or_json() {
    let pki = TestPki::new();
    let (_daemon, admin, _) = start(&pki, "");
    let (c, d) = (free_port(), free_port());
    let toml = format!("name = \"c\"\nlisten = \"127.0.0.1:{c}\"\ncertificates = [{{ cert = \"a.pem\", key = \"a.key\" }}]\n");
    let (status, body) = send(
        admin,
        "POST",
        "/api/servers",
        "Content-Type: application/toml\r\n",
        &toml,
    );
    assert_eq!(status, 201, "{body}");
    let added: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(added["name"], "c");
    assert_eq!(added["listen"], format!("127.0.0.1:{c}"));

    let json = serde_json::json!({
        "name": "d",
        "listen": format!("127.0.0.1:{d}"),
        "certificates": [{ "cert": "b.pem", "key": "b.key" }],
        "handler": { "type": "status" },
    });
    let (status, body) = send(
        admin,
        "POST",
        "/api/servers",
        "Content-Type: application/json\r\n",
        &json.to_string(),
    );
    assert_eq!(status, 201, "{body}");
    for port in [c, d] {
        let probe = tlsplex(&["probe", &format!("127.0.0.1:{port}"), "--insecure"]);
        assert!(probe.status.success(), "the added server on {port} serves");
    }

    let (status, body) = send(admin, "POST", "/api/servers", "", "name = \"a\"\nlisten = \"127.0.0.1:0\"\ncertificates = [{ cert = \"a.pem\", key = \"a.key\" }]\n");
    assert_eq!(status, 422, "a name already running is refused: {body}");
    assert!(body.contains("already exists"), "{body}");
    let (status, body) = send(admin, "POST", "/api/servers", "", "name = \"e\"\nlisten = \"127.0.0.1:0\"\ncertificates = [{ cert = \"missing.pem\", key = \"a.key\" }]\n");
    assert_eq!(status, 422);
    assert!(
        body.contains("server \\\"e\\\": certificates[0].cert: cannot read"),
        "{body}"
    );
}

#[test]
fn a_token_is_required_when_configured() {
    let pki = TestPki::new();
    std::fs::write(pki.dir().join("admin.token.given"), "s3cret-token\n").unwrap();
    let (mut daemon, admin, _) = start(&pki, "token_file = \"admin.token.given\"");
    assert_eq!(anonymous(admin, "GET", "/api/servers").0, 401);
    assert!(
        !pki.dir().join("admin.token").exists(),
        "no token is generated when one is given"
    );
    assert_eq!(http(admin, "GET", "/api/servers", Some("wrong")).0, 401);
    assert_eq!(
        http(admin, "GET", "/api/servers", Some("s3cret-token")).0,
        200
    );
    daemon.signal("TERM");
    assert!(daemon.wait_exit(Duration::from_secs(10)).unwrap().success());
    assert!(
        !daemon.stderr_text().contains("s3cret-token"),
        "the token never reaches the log"
    );
    assert!(
        !daemon.stderr_text().contains('\u{1b}'),
        "no colour codes when standard error is not a terminal"
    );
}

#[test]
fn a_non_loopback_admin_address_needs_a_token() {
    let pki = TestPki::new();
    pki.issue("a", &["a.test"]);
    let text = format!(
        "[admin]\nlisten = \"0.0.0.0:{}\"\n[[server]]\nname = \"a\"\nlisten = \"127.0.0.1:0\"\ncertificates = [{{ cert = \"a.pem\", key = \"a.key\" }}]\n",
        free_port()
    );
    let path = pki.dir().join("tlsplex.toml");
    std::fs::write(&path, text).unwrap();
    let out = tlsplex(&["check", "-c", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(
        errors.contains("admin.listen: 0.0.0.0:") && errors.contains("set token_file"),
        "{errors}"
    );
}

#[test]
fn the_dashboard_shows_every_server_in_a_browser() {
    if !available("chromium") {
        return;
    }
    let pki = TestPki::new();
    let (_daemon, admin, _) = start(&pki, "");
    let folder = tempfile::tempdir().unwrap();
    let shot = folder.path().join("dashboard.png");
    let url = login_link(admin);
    let budget = "--virtual-time-budget=5000".to_owned();
    let dom = chromium(&url, &[budget.clone(), "--dump-dom".to_owned()]);
    assert!(
        dom.contains("<td>a</td>") && dom.contains("<td>b</td>"),
        "one row per server:\n{dom}"
    );
    assert!(dom.contains("class=\"serving\""), "{dom}");
    assert!(dom.contains("<polyline"), "the chart is drawn:\n{dom}");
    chromium(
        &login_link(admin),
        &[budget, format!("--screenshot={}", shot.display())],
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 5000,
        "a real screenshot"
    );
}

#[test]
fn ctl_drives_the_admin_api() {
    let pki = TestPki::new();
    std::fs::write(pki.dir().join("admin.token.given"), "ctl-token\n").unwrap();
    let (_daemon, _admin, [_, b]) = start(&pki, "token_file = \"admin.token.given\"");
    let config = pki.dir().join("tlsplex.toml");
    let config = config.to_str().unwrap();
    let out = tlsplex(&["ctl", "-c", config, "--json", "servers"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let servers: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(servers.as_array().unwrap().len(), 2);
    let out = tlsplex(&["ctl", "-c", config, "--json", "certificates"]);
    let certificates: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(certificates.as_array().unwrap().len(), 2, "{certificates}");
    // By default, tables: a header and a line per server or certificate.
    let table = String::from_utf8(tlsplex(&["ctl", "-c", config, "servers"]).stdout).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("STATE"),
        "{table}"
    );
    assert!(
        lines[1].starts_with("a ") && lines[2].starts_with("b "),
        "{table}"
    );
    let table = String::from_utf8(tlsplex(&["ctl", "-c", config, "certificates"]).stdout).unwrap();
    assert!(
        table.contains("a.test") && table.contains("b.test"),
        "{table}"
    );
    let out = tlsplex(&["ctl", "-c", config, "reload"]);
    assert!(out.status.success());
    // A reload rebuilds only what changed: here nothing, and the report says so in a line.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "unchanged: 2 server(s)"
    );
    // Stop and start, as the API has them.
    let stop = tlsplex(&["ctl", "-c", config, "stop", "b"]);
    assert!(stop.status.success(), "{stop:?}");
    assert_eq!(String::from_utf8_lossy(&stop.stdout).trim(), "b: draining");
    assert!(tlsplex(&["ctl", "-c", config, "start", "b"])
        .status
        .success());
    assert!(TcpStream::connect(("127.0.0.1", b)).is_ok());
    // A refusal is lines on standard error.
    let refused = tlsplex(&["ctl", "-c", config, "start", "b"]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.lines().all(|l| l.starts_with("tlsplex ctl: ")) && !stderr.contains("\\n"),
        "{stderr}"
    );
    assert!(tlsplex(&["ctl", "-c", config, "remove", "b"])
        .status
        .success());
    assert!(TcpStream::connect(("127.0.0.1", b)).is_err());
    let missing = tlsplex(&["ctl", "-c", config, "remove", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    let table = pki.dir().join("c.toml");
    let c = free_port();
    std::fs::write(&table, format!("name = \"c\"\nlisten = \"127.0.0.1:{c}\"\ncertificates = [{{ cert = \"a.pem\", key = \"a.key\" }}]\n")).unwrap();
    assert!(
        tlsplex(&["ctl", "-c", config, "add", table.to_str().unwrap()])
            .status
            .success()
    );
    assert!(TcpStream::connect(("127.0.0.1", c)).is_ok());
}

#[test]
fn every_certificate_is_listed_and_the_dashboard_shows_the_soonest_expiry() {
    let pki = TestPki::new();
    let (_daemon, admin, _) = start(&pki, "");
    // Server a gains an SNI certificate; b's certificate is replaced by one with 12 days left.
    pki.issue("a-extra", &["extra.a.test"]);
    pki.issue_for_days("b", &["b.test"], 12);
    let config = pki.dir().join("tlsplex.toml");
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        "{ cert = \"a.pem\", key = \"a.key\" }",
        "{ cert = \"a.pem\", key = \"a.key\" }, { cert = \"a-extra.pem\", key = \"a-extra.key\" }",
        1,
    );
    std::fs::write(&config, text).unwrap();
    assert_eq!(http(admin, "POST", "/api/reload", None).0, 200);

    let (status, body) = http(admin, "GET", "/api/certificates", None);
    assert_eq!(status, 200);
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    let rows: Vec<(String, String, bool, i64)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["server"].as_str().unwrap().to_owned(),
                c["dns_names"][0].as_str().unwrap().to_owned(),
                c["default"].as_bool().unwrap(),
                c["days_left"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows.len(), 3, "{body}");
    assert_eq!(
        rows[0],
        ("b".to_owned(), "b.test".to_owned(), true, 11),
        "the soonest first, with its days left: {body}"
    );
    assert!(rows.contains(&("a".to_owned(), "extra.a.test".to_owned(), false, rows[2].3)));
    assert!(
        listed[0]["issuer"].as_str().unwrap().contains("CN="),
        "{body}"
    );
    assert!(
        listed[0]["not_after"].as_str().unwrap().contains('T'),
        "{body}"
    );

    let (_, metrics) = http(admin, "GET", "/metrics", None);
    assert!(
        metrics.contains(
            "tlsplex_certificate_expiry_timestamp_seconds{server=\"a\",name=\"extra.a.test\"}"
        ),
        "{metrics}"
    );

    if !available("chromium") {
        return;
    }
    let dom = dashboard_dom(admin);
    assert!(
        dom.contains("Soonest certificate expiry: <strong>b.test</strong> on server b")
            && dom.contains("<span class=\"warn\">11</span> days"),
        "the soonest expiry, highlighted:\n{dom}"
    );
}

#[test]
fn the_dashboard_logs_in_once_per_link() {
    let pki = TestPki::new();
    let (_daemon, admin, _) = start(&pki, "");
    let (status, page) = anonymous(admin, "GET", "/");
    assert_eq!(status, 401);
    assert!(page.contains("tlsplex ctl dashboard"), "{page}");
    let link = login_link(admin);
    let path = link.split_once(&format!(":{admin}")).unwrap().1.to_owned();
    // The link sets a session cookie and sends to the dashboard.
    let mut tcp = TcpStream::connect(("127.0.0.1", admin)).unwrap();
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{admin}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 303"), "{answer}");
    let cookie = answer
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let session = cookie.split(';').next().unwrap();
    let cookie_header = format!("Cookie: {session}\r\n");
    assert_eq!(
        send_as(admin, "GET", "/api/servers", &cookie_header, "").0,
        200
    );
    // The same link again opens nothing: the one in the browser's history is spent.
    assert_eq!(anonymous(admin, "GET", &path).0, 403);
    assert_eq!(
        send_as(
            admin,
            "GET",
            "/api/servers",
            "Cookie: tlsplex_admin=forged\r\n",
            ""
        )
        .0,
        401
    );
}

#[test]
fn a_taken_admin_address_fails_the_start_before_any_server_serves() {
    let pki = TestPki::new();
    pki.issue("a", &["a.test"]);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let admin = taken.local_addr().unwrap();
    let port = free_port();
    let path = pki.dir().join("tlsplex.toml");
    std::fs::write(
        &path,
        format!(
            "[admin]\nlisten = \"{admin}\"\n[[server]]\nname = \"a\"\nlisten = \"127.0.0.1:{port}\"\n\
             certificates = [{{ cert = \"a.pem\", key = \"a.key\" }}]\n"
        ),
    )
    .unwrap();
    let mut daemon = common::Daemon::start(&["run", "-c", path.to_str().unwrap()]);
    let status = daemon.wait_exit(Duration::from_secs(10)).unwrap();
    assert_eq!(status.code(), Some(1));
    let log = daemon.stderr_text();
    assert!(log.contains("admin endpoint on"), "{log}");
    assert!(
        !log.contains("server started"),
        "a server served first:\n{log}"
    );
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}
