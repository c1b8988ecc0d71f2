//! The examples build (cargo test builds them) and work against a real client.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use tlsplex_testkit::{connect, exchange, TestPki};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

/// A running example, killed when dropped.
struct Example(Child);

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `target/<profile>/examples/<name>` with `args` and a certificate for `localhost`;
/// returns it with the addresses it printed.
fn run_example(
    name: &str,
    args: &[&str],
    pki: &TestPki,
    expected: usize,
) -> (Example, Vec<SocketAddr>) {
    let cert = pki.issue("localhost", &["localhost"]);
    // target/<profile>/deps/<this test> → target/<profile>/examples/<name>
    let exe = std::env::current_exe().unwrap();
    let binary: PathBuf = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        binary.exists(),
        "{} is missing: `cargo test` builds the examples",
        binary.display()
    );
    let mut child = Command::new(binary)
        .args(args)
        .env("TLSPLEX_CERT", &cert.cert_path)
        .env("TLSPLEX_KEY", &cert.key_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let addrs = stdout
        .lines()
        .take(expected)
        .map(|line| line.unwrap().rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    (Example(child), addrs)
}

#[tokio::test]
async fn the_echo_example_answers_on_both_ports() {
    let pki = TestPki::new();
    let (_example, addrs) = run_example("echo", &["0", "0"], &pki, 2);
    for (i, addr) in addrs.into_iter().enumerate() {
        let stream = connect(addr, "localhost", pki.client(&[])).await.unwrap();
        let mut stream = tokio::io::BufReader::new(stream);
        for word in ["hello", "again"] {
            stream
                .write_all(format!("{word}\n").as_bytes())
                .await
                .unwrap();
            let mut line = String::new();
            stream.read_line(&mut line).await.unwrap();
            assert_eq!(line, format!("echo-{i}: {word}\n"));
        }
    }
}

#[tokio::test]
async fn the_axum_example_serves_its_routes_with_the_connection_facts() {
    let pki = TestPki::new();
    let (_example, addrs) = run_example("axum_app", &["0"], &pki, 1);
    let get =
        |path: &str| format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let client = pki.client(&["http/1.1"]);
    let hello = exchange(addrs[0], "localhost", client.clone(), &get("/hello"), true)
        .await
        .unwrap();
    assert_eq!(hello.status, 200);
    assert_eq!(hello.body, "hello from axum, through tlsplex\n");
    let tls = exchange(addrs[0], "localhost", client, &get("/tls"), true)
        .await
        .unwrap();
    let info = tls.json();
    assert_eq!(info["server"], "axum");
    assert_eq!(info["tls_version"], "TLSv1.3");
    assert_eq!(info["alpn"], "http/1.1");
}
