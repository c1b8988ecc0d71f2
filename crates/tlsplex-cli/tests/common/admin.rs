//! Talking to a daemon's admin endpoint in tests, as its operator: with the token the daemon
//! wrote (see [`register`]) unless a request says otherwise.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tlsplex_testkit::TestPki;

use super::{free_port, Daemon, BIN};

/// Each admin port's token file.
static TOKEN_FILES: Mutex<Option<HashMap<u16, PathBuf>>> = Mutex::new(None);

/// The admin endpoint on `port` keeps its token in `file` (by default `admin.token` beside the
/// config, written by the daemon when it binds).
pub fn register(port: u16, file: &Path) {
    TOKEN_FILES
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .insert(port, file.to_owned());
}

/// The operator's token for the endpoint on `port`.
pub fn token(port: u16) -> String {
    let file = TOKEN_FILES
        .lock()
        .unwrap()
        .as_ref()
        .and_then(|files| files.get(&port).cloned())
        .expect("register the admin port's token file first");
    std::fs::read_to_string(file).unwrap().trim().to_owned()
}

/// One plain HTTP/1.1 request to the admin endpoint: (status, body). `None`: the operator's
/// token; `Some(token)`: that one.
pub fn http(port: u16, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let token = token.map_or_else(|| self::token(port), str::to_owned);
    let auth = format!("Authorization: Bearer {token}\r\n");
    send_as(port, method, path, &auth, "")
}

/// A request without any credential: (status, body).
pub fn anonymous(port: u16, method: &str, path: &str) -> (u16, String) {
    send_as(port, method, path, "", "")
}

/// `(name, state)` of every server `GET /api/servers` lists, in its order.
pub fn server_states(port: u16) -> Vec<(String, String)> {
    let (status, body) = http(port, "GET", "/api/servers", None);
    assert_eq!(status, 200, "{body}");
    let servers: serde_json::Value = serde_json::from_str(&body).unwrap();
    let field = |s: &serde_json::Value, key: &str| s[key].as_str().unwrap().to_owned();
    let servers = servers.as_array().unwrap().iter();
    servers
        .map(|s| (field(s, "name"), field(s, "state")))
        .collect()
}

/// A one-time dashboard login link, as `tlsplex ctl dashboard` prints it.
pub fn login_link(port: u16) -> String {
    let (status, body) = http(port, "POST", "/api/login", None);
    assert_eq!(status, 200, "{body}");
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    value["url"].as_str().unwrap().to_owned()
}

/// The dashboard as headless Chromium renders it, logged in through a one-time link.
pub fn dashboard_dom(port: u16) -> String {
    let flags = ["--virtual-time-budget=5000", "--dump-dom"].map(str::to_owned);
    super::chromium(&login_link(port), &flags)
}

/// A request with `headers` (each ending in CRLF) and `body`, with the operator's token:
/// (status, body).
pub fn send(port: u16, method: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
    let auth = format!("Authorization: Bearer {}\r\n{headers}", token(port));
    send_as(port, method, path, &auth, body)
}

/// A request with exactly `headers` (each ending in CRLF) and `body`: (status, body).
pub fn send_as(port: u16, method: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let length = body.len();
    // As `tlsplex ctl` does: mutations name their content type (browsers cannot send these
    // cross-origin without a preflight).
    let content_type = if method != "GET" && !headers.to_ascii_lowercase().contains("content-type")
    {
        "Content-Type: application/toml\r\n"
    } else {
        ""
    };
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}{content_type}Content-Length: {length}\r\nConnection: close\r\n\r\n{body}"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split(' ').nth(1).unwrap().parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Two servers and an admin endpoint; returns (daemon, admin port, [port a, port b]).
pub fn start(pki: &TestPki, admin_extra: &str) -> (Daemon, u16, [u16; 2]) {
    start_limited(pki, admin_extra, None)
}

/// [`start`], under `ulimit -n OPEN_FILES` when given.
pub fn start_limited(
    pki: &TestPki,
    admin_extra: &str,
    open_files: Option<u32>,
) -> (Daemon, u16, [u16; 2]) {
    pki.issue("a", &["a.test"]);
    pki.issue("b", &["b.test"]);
    let (admin, a, b) = (free_port(), free_port(), free_port());
    let text = format!(
        "[admin]\nlisten = \"127.0.0.1:{admin}\"\n{admin_extra}\n\
         [[server]]\nname = \"a\"\nlisten = \"127.0.0.1:{a}\"\ncertificates = [{{ cert = \"a.pem\", key = \"a.key\" }}]\n\
         [[server]]\nname = \"b\"\nlisten = \"127.0.0.1:{b}\"\ncertificates = [{{ cert = \"b.pem\", key = \"b.key\" }}]\n"
    );
    let path = pki.dir().join("tlsplex.toml");
    std::fs::write(&path, text).unwrap();
    let token_file = if admin_extra.contains("token_file") {
        "admin.token.given"
    } else {
        "admin.token"
    };
    register(admin, &pki.dir().join(token_file));
    let config = path.to_str().unwrap();
    let mut daemon = match open_files {
        None => Daemon::start(&["run", "-c", config]),
        Some(limit) => Daemon::start_program(
            "sh",
            &[
                "-c",
                &format!("ulimit -n {limit} && exec \"$0\" \"$@\""),
                BIN,
                "run",
                "-c",
                config,
            ],
            &[],
        ),
    };
    let addrs: Vec<SocketAddr> = [admin, a, b]
        .iter()
        .map(|p| ([127, 0, 0, 1], *p).into())
        .collect();
    daemon.wait_listening(&addrs);
    (daemon, admin, [a, b])
}
