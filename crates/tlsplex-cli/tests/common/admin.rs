//! Talking to a daemon's admin endpoint in tests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use tlsplex_testkit::TestPki;

use super::{free_port, Daemon, BIN};

/// One plain HTTP/1.1 request to the admin endpoint: (status, body).
pub fn http(port: u16, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    send(port, method, path, &auth, "")
}

/// A request with `headers` (each ending in CRLF) and `body`: (status, body).
pub fn send(port: u16, method: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
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
