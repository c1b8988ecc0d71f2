//! `access = { allow, deny }` on HTTP handlers: a refused client address gets 403 to every
//! request, over HTTP/1.1 and HTTP/2, and a proxy's backend sees none of its requests; a block
//! that does not parse is named with its server, key and index.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

mod common;

use std::process::Command;

use common::{available, free_port, tlsplex, Daemon};
use tlsplex_testkit::http_backend::HttpBackend;
use tlsplex_testkit::TestPki;

/// The status curl gets for `https://web.test:PORT/`.
fn status(port: u16, pki: &TestPki, version: &str) -> String {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            version,
            "--cacert",
        ])
        .arg(pki.ca_file())
        .args(["--resolve", &format!("web.test:{port}:127.0.0.1")])
        .arg(format!("https://web.test:{port}/"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_addresses_get_403_and_reach_nothing() {
    if !available("curl") {
        return;
    }
    let backend = HttpBackend::start().await;
    let pki = TestPki::new();
    pki.issue("web", &["web.test"]);
    std::fs::create_dir(pki.dir().join("www")).unwrap();
    std::fs::write(pki.dir().join("www/index.html"), "hi\n").unwrap();
    let ports: Vec<u16> = (0..5).map(|_| free_port()).collect();
    let handlers = [
        "{ type = \"static\", root = \"www\", access = { deny = [\"127.0.0.0/8\"] } }".to_owned(),
        "{ type = \"respond\", body = \"ok\", access = { allow = [\"10.0.0.0/8\", \"::1\"] } }".to_owned(),
        "{ type = \"respond\", body = \"ok\", access = { allow = [\"127.0.0.1\"], deny = [\"10.0.0.0/8\"] } }".to_owned(),
        format!("{{ type = \"proxy\", backends = [\"{}\"], access = {{ deny = [\"0.0.0.0/0\"] }} }}", backend.addr),
        "{ type = \"status\", compress = true, response_headers = { set = { x-page = \"status\" } }, access = { deny = [\"127.0.0.1\"] } }".to_owned(),
    ];
    let mut text = String::new();
    for (i, (port, handler)) in ports.iter().zip(&handlers).enumerate() {
        text += &format!(
            "[[server]]\nname = \"s{i}\"\nlisten = \"127.0.0.1:{port}\"\n\
             certificates = [{{ cert = \"web.pem\", key = \"web.key\" }}]\nhandler = {handler}\n"
        );
    }
    let config = pki.dir().join("tlsplex.toml");
    std::fs::write(&config, text).unwrap();
    let mut daemon = Daemon::start(&["run", "-c", config.to_str().unwrap()]);
    let addrs: Vec<_> = ports.iter().map(|p| ([127, 0, 0, 1], *p).into()).collect();
    daemon.wait_listening(&addrs);
    tokio::task::block_in_place(|| {
        for version in ["--http1.1", "--http2"] {
            let got: Vec<String> = ports.iter().map(|p| status(*p, &pki, version)).collect();
            assert_eq!(got, ["403", "403", "200", "403", "403"], "{version}");
        }
    });
    assert!(
        backend.received().is_empty(),
        "the proxy's backend saw no request"
    );

    // A block that does not parse: named with the server, key and index, all in one pass.
    let bad = pki.dir().join("bad.toml");
    std::fs::write(
        &bad,
        "[[server]]\nname = \"s\"\nlisten = \"127.0.0.1:0\"\n\
         certificates = [{ cert = \"web.pem\", key = \"web.key\" }]\n\
         handler = { type = \"static\", root = \"www\", access = { allow = [\"10.0.0.0/33\"], deny = [\"ten\"] } }\n",
    )
    .unwrap();
    let check = tlsplex(&["check", "-c", bad.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&check.stderr).into_owned()
        + &String::from_utf8_lossy(&check.stdout);
    assert!(!check.status.success());
    assert!(
        said.contains("server \"s\": handler.access.allow[0]: \"10.0.0.0/33\": the prefix length must be 0 to 32"),
        "{said}"
    );
    assert!(
        said.contains(
            "server \"s\": handler.access.deny[0]: \"ten\" is not an IP address or CIDR block"
        ),
        "{said}"
    );
}
