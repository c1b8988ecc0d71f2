//! One `:443` for several services, from a config file, through the binary: curl reaches a
//! forwarded pool, a static wildcard route and a passthrough route by name; the admin API, the
//! access log and the dashboard (in Chromium) show routes and backends; `check` warns of a route
//! name no certificate covers.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;

use common::admin::http;
use common::{available, chromium, free_port, tlsplex, Daemon};
use tlsplex_testkit::TestPki;

/// A plaintext HTTP/1.1 backend answering every request with `name`.
fn http_backend(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}",
                    name.len()
                );
            });
        }
    });
    addr
}

fn curl(port: u16, name: &str, path: &str, ca: &Path) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--http1.1", "--max-time", "5", "--cacert"])
        .arg(ca)
        .args(["--resolve", &format!("{name}:{port}:127.0.0.1")])
        .arg(format!("https://{name}:{port}{path}"))
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn one_port_serves_a_pool_a_static_site_and_a_passthrough_by_name() {
    if !available("curl") {
        return;
    }
    let pki = TestPki::new();
    let inner_pki = TestPki::new();
    pki.issue("edge", &["app.test", "*.apps.test", "spare.test"]);
    let inner = inner_pki.issue("inner", &["legacy.test"]);
    std::fs::create_dir(pki.dir().join("site")).unwrap();
    std::fs::write(pki.dir().join("site/index.html"), "static apps\n").unwrap();
    let live = http_backend("from the app pool");
    let dead = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let (edge, inner_port, admin) = (free_port(), free_port(), free_port());
    let text = format!(
        r#"[admin]
listen = "127.0.0.1:{admin}"

[[server]]
name = "edge"
listen = "127.0.0.1:{edge}"
certificates = [{{ cert = "edge.pem", key = "edge.key" }}]
access_log = true

[[server.route]]
name = "app"
names = ["app.test"]
handler = {{ type = "forward", backends = ["{dead}", "{live}"], balance = "first" }}

[[server.route]]
names = ["*.apps.test"]
handler = {{ type = "static", root = "site" }}

[[server.route]]
name = "legacy"
names = ["legacy.test"]
handler = {{ type = "passthrough", backend = "127.0.0.1:{inner_port}" }}

[[server]]
name = "inner"
listen = "127.0.0.1:{inner_port}"
certificates = [{{ cert = "{}", key = "{}" }}]
"#,
        inner.cert_path.display(),
        inner.key_path.display()
    );
    let config = pki.dir().join("tlsplex.toml");
    common::admin::register(admin, &pki.dir().join("admin.token"));
    std::fs::write(&config, text).unwrap();
    let check = tlsplex(&["check", "-c", config.to_str().unwrap()]);
    assert!(check.status.success(), "{check:?}");
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(stdout.contains("passthrough legacy"), "{stdout}");

    let mut daemon = Daemon::start(&[
        "run",
        "-c",
        config.to_str().unwrap(),
        "--log-format",
        "json",
    ]);
    daemon.wait_listening(&[
        ([127, 0, 0, 1], edge).into(),
        ([127, 0, 0, 1], admin).into(),
    ]);
    let ca = pki.ca_file();
    assert_eq!(curl(edge, "app.test", "/", &ca), "from the app pool");
    assert_eq!(curl(edge, "www.apps.test", "/", &ca), "static apps\n");
    // A name no route takes, on a server with no handler of its own: a plain 404, not the
    // status page (TLS details, the client's address).
    assert_eq!(
        curl(edge, "spare.test", "/", &ca),
        "no site is served under this name here\n"
    );
    // Passthrough: curl trusts only the inner server's CA, and is served by it.
    let page = curl(edge, "legacy.test", "/?format=json", &inner_pki.ca_file());
    let page: serde_json::Value = serde_json::from_str(&page).unwrap_or_else(|_| panic!("{page}"));
    assert_eq!(page["server"], "inner");

    let (status, body) = http(admin, "GET", "/api/backends", None);
    assert_eq!(status, 200);
    let backends: serde_json::Value = serde_json::from_str(&body).unwrap();
    let row = |address: String| {
        backends
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["address"] == address.as_str())
            .cloned()
            .unwrap_or_else(|| panic!("{address} in {body}"))
    };
    assert_eq!(row(dead.to_string())["health"], "suspect", "{body}");
    assert_eq!(row(dead.to_string())["pool"], "app");
    assert_eq!(row(live.to_string())["connections_total"], 1, "{body}");
    assert_eq!(row(format!("127.0.0.1:{inner_port}"))["pool"], "legacy");
    let ctl = tlsplex(&["ctl", "-c", config.to_str().unwrap(), "--json", "backends"]);
    assert!(ctl.status.success(), "{ctl:?}");
    let listed: serde_json::Value = serde_json::from_slice(&ctl.stdout).unwrap();
    // The same backends (open-connection counts may have moved in between).
    let backend_ids = |list: &serde_json::Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|b| format!("{} {} {}", b["server"], b["pool"], b["address"]))
            .collect()
    };
    assert_eq!(
        backend_ids(&listed),
        backend_ids(&backends),
        "tlsplex ctl backends prints what the API says"
    );
    // The static route's answer is counted under its route.
    let (_, metrics) = http(admin, "GET", "/metrics", None);
    assert!(
        metrics.contains(
            "tlsplex_route_http_requests_total{server=\"edge\",route=\"*.apps.test\",class=\"2xx\"} 1"
        ),
        "{metrics}"
    );
    let (_, servers) = http(admin, "GET", "/api/servers", None);
    let servers: serde_json::Value = serde_json::from_str(&servers).unwrap();
    let routes = serde_json::json!(["app", "*.apps.test", "legacy"]);
    assert_eq!(servers[0]["routes"], routes, "{servers}");

    if available("chromium") {
        let dom = chromium(
            &common::admin::login_link(admin),
            &[
                "--virtual-time-budget=5000".to_owned(),
                "--dump-dom".to_owned(),
            ],
        );
        // Its health is `suspect` for 10 s after the failed connect, `up` after: either, as
        // the browser may take that long to start.
        let row = format!("<td>app</td><td>{dead}</td><td class=\"");
        assert!(dom.contains(&row), "{row} in the dashboard:\n{dom}");
    }

    daemon.signal("TERM");
    assert!(daemon
        .wait_exit(std::time::Duration::from_secs(10))
        .unwrap()
        .success());
    let logs = daemon.stderr_text();
    let routes: Vec<String> = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["target"] == "tlsplex::access")
        .map(|event| format!("{} {}", event["route"], event["tls.sni"]))
        .collect();
    for expected in [
        r#""app" "app.test""#,
        r#""*.apps.test" "www.apps.test""#,
        r#""legacy" "legacy.test""#,
    ] {
        assert!(
            routes.iter().any(|r| r == expected),
            "{expected} in {routes:?}"
        );
    }
}
