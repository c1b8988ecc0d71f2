//! The `proxy` handler against a live daemon, driven by curl over HTTP/1.1 and HTTP/2, in front
//! of a backend that records what it received: forwarded headers set by tlsplex (a client's
//! spoofed ones dropped), hop-by-hop headers gone, header edits, kept-alive backend connections,
//! and the error answers for a dead, stalling and non-HTTP backend.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{available, free_port, Daemon};
use tlsplex_testkit::http_backend::{HttpBackend, Recorded};
use tlsplex_testkit::TestPki;

struct Edge {
    pki: TestPki,
    port: u16,
    dead_port: u16,
    admin: u16,
    daemon: Daemon,
}

fn start(backend: SocketAddr) -> Edge {
    let pki = TestPki::new();
    pki.issue("app", &["app.test", "dead.test"]);
    let (port, dead_port, nowhere, admin) = (free_port(), free_port(), free_port(), free_port());
    let config = pki.dir().join("tlsplex.toml");
    std::fs::write(
        &config,
        format!(
            r#"[admin]
listen = "127.0.0.1:{admin}"

[[server]]
name = "app"
listen = "127.0.0.1:{port}"
certificates = [{{ cert = "app.pem", key = "app.key" }}]
access_log = true
[server.handler]
type = "proxy"
backends = ["{backend}"]
response_header_timeout = "1s"
request_headers = {{ set = {{ x-from = "tlsplex" }}, remove = ["x-remove-me"] }}
response_headers = {{ set = {{ strict-transport-security = "max-age=60" }} }}

[[server]]
name = "dead"
listen = "127.0.0.1:{dead_port}"
certificates = [{{ cert = "app.pem", key = "app.key" }}]
handler = {{ type = "proxy", backends = ["127.0.0.1:{nowhere}"], connect_timeout = "1s" }}
"#
        ),
    )
    .unwrap();
    common::admin::register(admin, &pki.dir().join("admin.token"));
    let config = config.to_str().unwrap();
    let mut daemon = Daemon::start(&["run", "-c", config, "--log-format", "json"]);
    daemon.wait_listening(&[
        ([127, 0, 0, 1], port).into(),
        ([127, 0, 0, 1], dead_port).into(),
        ([127, 0, 0, 1], admin).into(),
    ]);
    Edge {
        pki,
        port,
        dead_port,
        admin,
        daemon,
    }
}

/// curl `args` to `https://app.test:PORT{paths…}` (several paths: one connection, in order):
/// (status of the last, stdout).
fn curl(edge: &Edge, port: u16, protocol: &str, args: &[&str], paths: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", protocol, "--max-time", "10", "--cacert"])
        .arg(edge.pki.ca_file())
        .args(["--resolve", &format!("app.test:{port}:127.0.0.1")])
        .args(["-w", "\n%{http_code}"])
        .args(args)
        .args(paths.iter().map(|p| format!("https://app.test:{port}{p}")))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (status.trim().parse().unwrap_or(0), body.to_owned())
}

fn last(backend: &HttpBackend) -> Recorded {
    backend.received().pop().expect("the backend got a request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_reach_the_backend_with_the_headers_tlsplex_sets() {
    if !available("curl") {
        return;
    }
    let backend = HttpBackend::start().await;
    let edge = start(backend.addr);
    for protocol in ["--http1.1", "--http2"] {
        let spoofed = [
            "-H",
            "X-Forwarded-For: 6.6.6.6",
            "-H",
            "X-Forwarded-Proto: http",
            "-H",
            "Forwarded: for=6.6.6.6",
            "-H",
            "Client-Cert: :Zm9v:",
            "-H",
            "X-Remove-Me: 1",
            "-H",
            "Keep-Alive: timeout=99",
        ];
        let (status, body) = tokio::task::block_in_place(|| {
            curl(&edge, edge.port, protocol, &spoofed, &["/echo?x=1"])
        });
        assert_eq!(status, 200, "{protocol}: {body}");
        let got = last(&backend);
        assert_eq!(got.method, "GET");
        assert_eq!(got.target, "/echo?x=1");
        assert_eq!(got.header("x-forwarded-for"), ["127.0.0.1"], "{protocol}");
        assert_eq!(got.header("x-forwarded-proto"), ["https"]);
        assert_eq!(
            got.header("x-forwarded-host"),
            [format!("app.test:{}", edge.port)]
        );
        assert_eq!(got.header("host"), [format!("app.test:{}", edge.port)]);
        assert_eq!(got.header("x-from"), ["tlsplex"]);
        let id = got.header("x-request-id");
        assert!(
            id.len() == 1 && id[0].len() == 32,
            "a request id is made: {id:?}"
        );
        for gone in [
            "forwarded",
            "client-cert",
            "x-remove-me",
            "keep-alive",
            "te",
        ] {
            assert!(
                got.header(gone).is_empty(),
                "{protocol}: {gone} reached the backend"
            );
        }
    }
    // The response: the backend's, hop-by-hop headers gone, the edit applied.
    let out = tokio::task::block_in_place(|| {
        Command::new("curl")
            .args(["-sS", "-D", "-", "-o", "/dev/null", "--http1.1", "--cacert"])
            .arg(edge.pki.ca_file())
            .args(["--resolve", &format!("app.test:{}:127.0.0.1", edge.port)])
            .arg(format!("https://app.test:{}/echo", edge.port))
            .output()
            .unwrap()
    });
    let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(
        head.contains("strict-transport-security: max-age=60"),
        "{head}"
    );
    assert!(head.contains("x-backend:"), "{head}");
    assert!(!head.contains("keep-alive: timeout=30"), "{head}");

    // A client's request id is passed on; every request is one access-log event.
    let (status, _) = tokio::task::block_in_place(|| {
        curl(
            &edge,
            edge.port,
            "--http2",
            &["-H", "X-Request-Id: abc-123"],
            &["/echo"],
        )
    });
    assert_eq!(status, 200);
    assert_eq!(last(&backend).header("x-request-id"), ["abc-123"]);
    let log = edge.daemon.stderr_text();
    let event = log
        .lines()
        .find(|line| line.contains("abc-123"))
        .unwrap_or_else(|| panic!("no access-log event for the request:\n{log}"));
    for field in [
        "\"http.status\":200",
        "\"http.method\":\"GET\"",
        "\"http.target\":\"/echo\"",
        "\"bytes.sent\":",
        "\"duration_ms\":",
        "\"backend\":\"127.0.0.1:",
    ] {
        assert!(event.contains(field), "{field} in {event}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_connections_are_kept_alive_and_reused() {
    if !available("curl") {
        return;
    }
    let backend = HttpBackend::start().await;
    let edge = start(backend.addr);
    let paths: Vec<String> = (0..200).map(|i| format!("/echo/{i}")).collect();
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    for protocol in ["--http1.1", "--http2"] {
        let (status, _) =
            tokio::task::block_in_place(|| curl(&edge, edge.port, protocol, &[], &paths));
        assert_eq!(status, 200);
    }
    let received = backend.received();
    assert_eq!(received.len(), 400);
    eprintln!(
        "400 requests over 2 client connections: {} backend connections",
        backend.connections()
    );
    assert!(
        backend.connections() <= 2,
        "{} backend connections for 400 requests",
        backend.connections()
    );
    // A body streams through: 300 KB up over HTTP/2.
    let upload = vec![b'u'; 300_000];
    let file = edge.pki.dir().join("upload.bin");
    std::fs::write(&file, &upload).unwrap();
    let data = format!("@{}", file.display());
    let (status, _) = tokio::task::block_in_place(|| {
        curl(
            &edge,
            edge.port,
            "--http2",
            &["--data-binary", &data],
            &["/upload"],
        )
    });
    assert_eq!(status, 200);
    let got = last(&backend);
    assert_eq!((got.method.as_str(), got.body), ("POST", 300_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_backends_get_readable_answers() {
    if !available("curl") {
        return;
    }
    let backend = HttpBackend::start().await;
    let edge = start(backend.addr);
    for protocol in ["--http1.1", "--http2"] {
        let (status, body) =
            tokio::task::block_in_place(|| curl(&edge, edge.dead_port, protocol, &[], &["/"]));
        assert_eq!(status, 502, "dead backend, {protocol}: {body}");
        assert!(body.contains("502 Bad Gateway"), "{body}");

        let started = Instant::now();
        let (status, _) =
            tokio::task::block_in_place(|| curl(&edge, edge.port, protocol, &[], &["/stall"]));
        let waited = started.elapsed();
        assert_eq!(status, 504, "stalling backend, {protocol}");
        assert!(
            waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
            "{waited:?}"
        );

        let (status, head) = tokio::task::block_in_place(|| {
            curl(&edge, edge.port, protocol, &["-i"], &["/garbage"])
        });
        assert_eq!(status, 502, "non-HTTP backend, {protocol}");
        assert!(
            head.contains("strict-transport-security: max-age=60"),
            "response_headers apply to tlsplex's own answers too: {head}"
        );
        let (status, _) =
            tokio::task::block_in_place(|| curl(&edge, edge.port, protocol, &[], &["/huge-head"]));
        assert_eq!(status, 502, "a 1 MiB response head, {protocol}");
    }
    // The proxy still serves.
    let (status, _) =
        tokio::task::block_in_place(|| curl(&edge, edge.port, "--http2", &[], &["/echo"]));
    assert_eq!(status, 200);
    // Every answer is counted by status class.
    let (_, metrics) = common::admin::http(edge.admin, "GET", "/metrics", None);
    let count = |series: &str| -> u64 {
        metrics
            .lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{series} in\n{metrics}"))
    };
    assert_eq!(
        count("tlsplex_http_requests_total{server=\"dead\",class=\"5xx\"}"),
        2
    );
    assert_eq!(
        count("tlsplex_http_requests_total{server=\"app\",class=\"5xx\"}"),
        6
    );
    assert_eq!(
        count("tlsplex_http_requests_total{server=\"app\",class=\"2xx\"}"),
        1
    );
    assert!(metrics.contains("tlsplex_http_request_duration_seconds_bucket{"));
    // The backend's response times, for every response head it sent.
    let timed = format!(
        "tlsplex_backend_response_duration_seconds_count{{server=\"app\",pool=\"app\",backend=\"{}\"}}",
        backend.addr
    );
    assert!(count(&timed) >= 1, "{timed}");
    // The API (and so the dashboard) has them per server.
    let (_, servers) = common::admin::http(edge.admin, "GET", "/api/servers", None);
    let servers: serde_json::Value = serde_json::from_str(&servers).unwrap();
    let app = servers
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "app")
        .unwrap();
    assert_eq!(
        (
            app["http_requests"].as_u64(),
            app["http_responses_5xx"].as_u64()
        ),
        (Some(7), Some(6))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_upgrade_becomes_a_tunnel() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let backend = HttpBackend::start().await;
    let edge = start(backend.addr);
    let addr = SocketAddr::from(([127, 0, 0, 1], edge.port));
    let mut tls = tlsplex_testkit::connect(addr, "app.test", edge.pki.client(&["http/1.1"]))
        .await
        .unwrap();
    tls.write_all(
        b"GET /chat HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
          X-Raw-Tunnel: 1\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    // The backend's handshake answer passes through (RFC 6455's own example key).
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    let got = last(&backend);
    assert_eq!(got.header("upgrade"), ["websocket"]);
    assert_eq!(got.header("x-forwarded-for"), ["127.0.0.1"]);
    // Both ways, several times over the one tunnel.
    for message in [&b"hello"[..], b"over the tunnel", &[0u8, 255, 1, 2]] {
        tls.write_all(message).await.unwrap();
        let mut echoed = vec![0u8; message.len()];
        tls.read_exact(&mut echoed).await.unwrap();
        assert_eq!(echoed, message);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_certificate_reaches_the_backend_as_rfc_9440_says() {
    use base64::Engine as _;
    if !available("curl") {
        return;
    }
    let backend = HttpBackend::start().await;
    let pki = TestPki::new();
    let client = pki.issue_client("alice", "alice", 7);
    let handler = format!(
        "{{ type = \"proxy\", backends = [\"{}\"], client_cert = true }}",
        backend.addr
    );
    let tls = format!(
        "[server.tls]\nclient_auth = {{ ca = {:?}, mode = \"required\" }}\n",
        pki.ca_file()
    );
    let (_daemon, addr) = common::one_server(&pki, &handler, &tls);
    let port = addr.port();
    let out = tokio::task::block_in_place(|| {
        Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(pki.ca_file())
            .arg("--cert")
            .arg(&client.cert_path)
            .arg("--key")
            .arg(&client.key_path)
            .args(["-H", "Client-Cert: :c3Bvb2ZlZA==:"])
            .args(["--resolve", &format!("app.test:{port}:127.0.0.1")])
            .arg(format!("https://app.test:{port}/whoami"))
            .output()
            .unwrap()
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = last(&backend);
    let expected = format!(
        ":{}:",
        base64::engine::general_purpose::STANDARD.encode(client.cert_der.as_ref())
    );
    assert_eq!(got.header("client-cert"), [expected.as_str()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_health_check_takes_a_failing_backend_out() {
    if !available("curl") {
        return;
    }
    let healthy = HttpBackend::start().await;
    let failing = HttpBackend::with_healthz(503).await;
    let pki = TestPki::new();
    pki.issue("app", &["app.test"]);
    let (port, admin) = (free_port(), free_port());
    let config = pki.dir().join("tlsplex.toml");
    std::fs::write(
        &config,
        format!(
            "[admin]\nlisten = \"127.0.0.1:{admin}\"\n\
             [[server]]\nname = \"app\"\nlisten = \"127.0.0.1:{port}\"\n\
             certificates = [{{ cert = \"app.pem\", key = \"app.key\" }}]\n\
             [server.handler]\ntype = \"proxy\"\nbackends = [\"{}\", \"{}\"]\nkeepalive = 0\n\
             health_check = {{ interval = \"200ms\", path = \"/healthz\", expect = \"2xx\" }}\n",
            healthy.addr, failing.addr
        ),
    )
    .unwrap();
    common::admin::register(admin, &pki.dir().join("admin.token"));
    let mut daemon = Daemon::start(&["run", "-c", config.to_str().unwrap()]);
    daemon.wait_listening(&[
        ([127, 0, 0, 1], port).into(),
        ([127, 0, 0, 1], admin).into(),
    ]);
    // Two intervals for the verdict.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (_, backends) = common::admin::http(admin, "GET", "/api/backends", None);
    let backends: serde_json::Value = serde_json::from_str(&backends).unwrap();
    let health = |addr: SocketAddr| {
        backends
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["address"] == addr.to_string())
            .map(|b| b["health"].clone())
            .unwrap()
    };
    assert_eq!(health(failing.addr), "down", "{backends}");
    assert_eq!(health(healthy.addr), "up", "{backends}");
    let edge = Edge {
        pki,
        port,
        dead_port: 0,
        admin,
        daemon,
    };
    for i in 0..10 {
        let (status, _) = tokio::task::block_in_place(|| {
            curl(&edge, port, "--http1.1", &[], &[&format!("/echo/{i}")])
        });
        assert_eq!(status, 200);
    }
    let served = |backend: &HttpBackend| {
        backend
            .received()
            .iter()
            .filter(|r| r.target.starts_with("/echo"))
            .count()
    };
    assert_eq!((served(&healthy), served(&failing)), (10, 0));
    assert!(failing
        .received()
        .iter()
        .all(|r| r.header("user-agent") == ["tlsplex-health-check"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_loads_a_page_over_http2_and_opens_a_websocket_over_it_through_the_proxy() {
    if !available("chromium") {
        return;
    }
    let backend = HttpBackend::start().await;
    let edge = start(backend.addr);
    // A browser's first start on a loaded machine can dump the page before its WebSocket has
    // answered; a second look tells that apart from a proxy that never answers.
    let mut dom = String::new();
    for _ in 0..3 {
        dom = tokio::task::block_in_place(|| {
            common::chromium(
                &format!("https://app.test:{}/page.html", edge.port),
                &[
                    "--ignore-certificate-errors".to_owned(),
                    "--host-resolver-rules=MAP app.test 127.0.0.1".to_owned(),
                    "--virtual-time-budget=5000".to_owned(),
                    "--dump-dom".to_owned(),
                ],
            )
        });
        if dom.contains("<title>echo: ping through the proxy</title>") {
            break;
        }
        eprintln!("chromium's page, not echoed yet:\n{dom}");
    }
    assert!(
        dom.contains("<title>echo: ping through the proxy</title>"),
        "the page's WebSocket echoed through the proxy:\n{dom}"
    );
    let targets: Vec<String> = backend
        .received()
        .iter()
        .map(|r| r.target.clone())
        .collect();
    assert!(targets.contains(&"/page.html".to_owned()) && targets.contains(&"/ws".to_owned()));
    let log = edge.daemon.stderr_text();
    assert!(
        log.lines()
            .any(|l| l.contains("\"/page.html\"") && l.contains("HTTP/2.0")),
        "the page came over HTTP/2:\n{log}"
    );
    // Chromium opened the WebSocket on the same HTTP/2 connection (RFC 8441 extended CONNECT,
    // which the proxy offers), and the HTTP/1.1 backend got an Upgrade.
    assert!(
        log.lines()
            .any(|l| l.contains("\"/ws\"") && l.contains("\"CONNECT\"") && l.contains("HTTP/2.0")),
        "the WebSocket came over HTTP/2:\n{log}"
    );
    let ws = backend
        .received()
        .into_iter()
        .find(|r| r.target == "/ws")
        .unwrap();
    assert_eq!(
        (ws.method.as_str(), ws.header("upgrade")),
        ("GET", vec!["websocket"])
    );
    assert_eq!(ws.header("sec-websocket-key").len(), 1);
}
