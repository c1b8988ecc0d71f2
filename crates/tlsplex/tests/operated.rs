//! `examples/operated.rs`, driven over its admin API: the control plane works for an embedder
//! without the `tlsplex` binary.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

#[path = "../examples/operated.rs"]
#[allow(dead_code)] // its `main` is the example's, not the test's
mod operated;

use std::net::SocketAddr;

use tlsplex_testkit::{free_port, TestPki};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// The admin token the endpoint wrote beside the config (`dir/admin.token`).
static TOKEN_FILE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// One admin request with the token: (status, body).
async fn admin(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let token = std::fs::read_to_string(TOKEN_FILE.get().unwrap()).unwrap();
    let token = token.trim();
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/toml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.unwrap();
    let status = response.split(' ').nth(1).unwrap().parse().unwrap();
    let body = response.split_once("\r\n\r\n").unwrap().1.to_owned();
    (status, body)
}

fn config(servers: &[(&str, u16)], global: &str) -> String {
    let mut text = format!("[global]\n{global}\n[admin]\nlisten = \"127.0.0.1:0\"\n");
    for (name, port) in servers {
        text += &format!(
            "[[server]]\nname = \"{name}\"\nlisten = \"127.0.0.1:{port}\"\ncertificates = [{{ cert = \"web.pem\", key = \"web.key\" }}]\n"
        );
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedder_reloads_adds_stops_and_starts_through_the_admin_api() {
    let pki = TestPki::new();
    pki.issue("web", &["web.test"]);
    let path = pki.dir().join("tlsplex.toml");
    TOKEN_FILE.set(pki.dir().join("admin.token")).unwrap();
    let (a, b, c) = (free_port(), free_port(), free_port());
    std::fs::write(&path, config(&[("a", a)], "")).unwrap();

    let stop = CancellationToken::new();
    let (ready_tx, ready) = tokio::sync::oneshot::channel();
    let task = tokio::spawn({
        let (path, stop) = (path.clone(), stop.clone());
        async move {
            operated::operate(&path, stop, |addr| {
                let _ = ready_tx.send(addr);
            })
            .await
            .map_err(|e| e.to_string())
        }
    });
    let addr = ready.await.unwrap();

    let (status, body) = admin(addr, "GET", "/api/servers", "").await;
    assert_eq!(status, 200);
    let servers: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(servers[0]["name"], "a");
    assert_eq!(servers[0]["state"], "serving");

    // The file gains a server and a restart-only setting: one is applied, the other reported.
    std::fs::write(
        &path,
        config(&[("a", a), ("b", b)], "shutdown_grace = \"3s\""),
    )
    .unwrap();
    let (status, body) = admin(addr, "POST", "/api/reload", "").await;
    assert_eq!(status, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    // The example also polls its files every 2 s: that reload may apply the file first, and
    // this one then finds b running (CI saw it once).
    let by_poll = report["added"] == serde_json::json!([])
        && report["unchanged"] == serde_json::json!(["a", "b"]);
    let here = report["added"] == serde_json::json!(["b"])
        && report["updated"] == serde_json::json!(["a"]);
    assert!(here || by_poll, "{report}");
    assert_eq!(
        report["needs_restart"],
        serde_json::json!(["[global] shutdown_grace changed: restart to apply"])
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", b)).is_ok());

    // Stop and start b; start of a running or unknown server is refused.
    assert_eq!(admin(addr, "POST", "/api/servers/b/stop", "").await.0, 202);
    assert!(std::net::TcpStream::connect(("127.0.0.1", b)).is_err());
    assert_eq!(admin(addr, "POST", "/api/servers/b/start", "").await.0, 201);
    assert!(std::net::TcpStream::connect(("127.0.0.1", b)).is_ok());
    let (status, body) = admin(addr, "POST", "/api/servers/a/start", "").await;
    assert_eq!(
        (status, body.contains("already running")),
        (409, true),
        "{body}"
    );
    assert_eq!(
        admin(addr, "POST", "/api/servers/nope/stop", "").await.0,
        404
    );

    // A server added as a table, with paths against the config file's folder.
    let table = format!(
        "name = \"c\"\nlisten = \"127.0.0.1:{c}\"\ncertificates = [{{ cert = \"web.pem\", key = \"web.key\" }}]\n"
    );
    assert_eq!(admin(addr, "POST", "/api/servers", &table).await.0, 201);
    assert!(std::net::TcpStream::connect(("127.0.0.1", c)).is_ok());

    // A broken file is refused whole and counted; everything keeps serving.
    std::fs::write(&path, "[[server]]\nname = 1\n").unwrap();
    let (status, body) = admin(addr, "POST", "/api/reload", "").await;
    assert_eq!(status, 422, "{body}");
    let (_, metrics) = admin(addr, "GET", "/metrics", "").await;
    // The example's 2 s poll may have reloaded each file too (CI saw `ok 2`): counted, at least
    // once each.
    let count = |result: &str| {
        let series = format!("tlsplex_reloads_total{{result=\"{result}\"}} ");
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(series.as_str()))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert!((1..=2).contains(&count("failed")), "{metrics}");
    assert!((1..=2).contains(&count("ok")), "{metrics}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", a)).is_ok());

    stop.cancel();
    task.await.unwrap().unwrap();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", a)).is_err(),
        "shut down"
    );
}
