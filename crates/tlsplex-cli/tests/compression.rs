//! `compress = true`: gzip and brotli by `Accept-Encoding` for `static` and `proxy` answers,
//! with `Vary`; nothing for images, ranges, clients that do not ask, or a backend's own
//! encoding. curl reads them (and decodes with `--compressed`); Chromium renders a page.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

mod common;

use std::path::Path;
use std::process::Command;

use common::{available, chromium, free_port, spki_pin, Daemon};
use tlsplex_testkit::http_backend::HttpBackend;
use tlsplex_testkit::TestPki;

/// curl `args` to `https://web.test:PORT/PATH`: (response head, lower-case; body bytes).
fn fetch(port: u16, ca: &Path, path: &str, args: &[&str]) -> (String, Vec<u8>) {
    let folder = tempfile::tempdir().unwrap();
    let head = folder.path().join("head");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-D"])
        .arg(&head)
        .arg("--cacert")
        .arg(ca)
        .args(["--resolve", &format!("web.test:{port}:127.0.0.1")])
        .args(args)
        .arg(format!("https://web.test:{port}{path}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let head = std::fs::read_to_string(head).unwrap().to_ascii_lowercase();
    (head.replace('\r', ""), out.stdout)
}

fn start(pki: &TestPki, handler: &str) -> (Daemon, u16) {
    pki.issue("web", &["web.test"]);
    let port = free_port();
    let config = pki.dir().join("tlsplex.toml");
    std::fs::write(
        &config,
        format!(
            "[[server]]\nname = \"web\"\nlisten = \"127.0.0.1:{port}\"\n\
             certificates = [{{ cert = \"web.pem\", key = \"web.key\" }}]\nhandler = {handler}\n"
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start(&["run", "-c", config.to_str().unwrap()]);
    daemon.wait_listening(&[([127, 0, 0, 1], port).into()]);
    (daemon, port)
}

#[test]
fn static_answers_are_compressed_as_the_client_asks() {
    if !available("curl") {
        return;
    }
    let pki = TestPki::new();
    let www = pki.dir().join("www");
    std::fs::create_dir(&www).unwrap();
    let text = "tlsplex compresses text. ".repeat(200) + "\n"; // 5,001 bytes
    std::fs::write(www.join("page.txt"), &text).unwrap();
    std::fs::write(
        www.join("index.html"),
        "<!doctype html><title>t</title><p id=\"p\">compressed page</p>".repeat(20),
    )
    .unwrap();
    std::fs::write(www.join("logo.png"), vec![7u8; 5000]).unwrap();
    let (_daemon, port) = start(
        &pki,
        "{ type = \"static\", root = \"www\", compress = true }",
    );
    let ca = pki.ca_file();

    for version in ["--http1.1", "--http2"] {
        let both = ["-H", "Accept-Encoding: gzip, br", version];
        let (head, body) = fetch(port, &ca, "/page.txt", &both);
        assert!(head.contains("content-encoding: br\n"), "{version}: {head}");
        assert!(head.contains("vary: accept-encoding"), "{head}");
        assert!(body.len() < 500, "5,001 bytes became {}", body.len());
        let (head, body) = fetch(
            port,
            &ca,
            "/page.txt",
            &["-H", "Accept-Encoding: gzip", version],
        );
        assert!(head.contains("content-encoding: gzip\n"), "{head}");
        assert!(body.starts_with(&[0x1f, 0x8b]), "a gzip stream");
        let (_, decoded) = fetch(port, &ca, "/page.txt", &["--compressed", version]);
        assert_eq!(decoded, text.as_bytes(), "curl decodes it to the file");

        // Not asked for, an image, a range: as they are.
        let (head, body) = fetch(port, &ca, "/page.txt", &[version]);
        assert!(!head.contains("content-encoding"), "{head}");
        assert_eq!(body.len(), 5001);
        let (head, body) = fetch(port, &ca, "/logo.png", &both);
        assert!(!head.contains("content-encoding"), "{head}");
        assert_eq!(body.len(), 5000);
        let ranged = [
            "-H",
            "Accept-Encoding: gzip, br",
            "-H",
            "Range: bytes=0-99",
            version,
        ];
        let (head, body) = fetch(port, &ca, "/page.txt", &ranged);
        assert!(
            head.contains(" 206") && !head.contains("content-encoding"),
            "{head}"
        );
        assert_eq!(body.len(), 100);
    }

    if available("chromium") {
        let cert = std::fs::read(pki.dir().join("web.pem")).unwrap();
        let der: rustls::pki_types::CertificateDer<'static> =
            rustls::pki_types::pem::PemObject::from_pem_slice(&cert).unwrap();
        let extra = [
            format!("--ignore-certificate-errors-spki-list={}", spki_pin(&der)),
            "--host-resolver-rules=MAP web.test 127.0.0.1".to_owned(),
            "--dump-dom".to_owned(),
        ];
        let dom = chromium(&format!("https://web.test:{port}/"), &extra);
        assert!(
            dom.contains("<p id=\"p\">compressed page</p>"),
            "Chromium renders it:\n{dom}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxied_answers_are_compressed_unless_the_backend_did() {
    if !available("curl") {
        return;
    }
    let backend = HttpBackend::start().await;
    let pki = TestPki::new();
    let handler = format!(
        "{{ type = \"proxy\", backends = [\"{}\"], compress = true }}",
        backend.addr
    );
    let (_daemon, port) = start(&pki, &handler);
    let ca = pki.ca_file();
    tokio::task::block_in_place(|| {
        for version in ["--http1.1", "--http2"] {
            let gzip = ["-H", "Accept-Encoding: gzip", version];
            let (head, body) = fetch(port, &ca, "/echo", &gzip);
            assert!(
                head.contains("content-encoding: gzip\n"),
                "{version}: {head}"
            );
            assert!(body.starts_with(&[0x1f, 0x8b]));
            // The backend's own encoding passes as it is, not encoded twice.
            let (head, body) = fetch(port, &ca, "/encoded", &gzip);
            assert_eq!(head.matches("content-encoding").count(), 1, "{head}");
            assert_eq!(body, b"gzip bytes, as the app made them");
        }
    });
}
