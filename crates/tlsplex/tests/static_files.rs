//! The `static` handler: content types, index.html, HEAD, Range, ETag, 404, and no way out of
//! the folder.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

use std::net::SocketAddr;

use tlsplex::{Context, ServerOptions, StaticHandler};
use tlsplex_testkit::{any_port, exchange, start, Response, TestPki};

struct Site {
    pki: TestPki,
    addr: SocketAddr,
    _outside: tempfile::TempDir,
}

/// A folder with a few files, an index, a symlink leading out, and a secret next to it.
fn site() -> Site {
    let pki = TestPki::new();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "outside the root").unwrap();
    let root = outside.path().join("www");
    std::fs::create_dir_all(root.join("docs")).unwrap();
    std::fs::write(root.join("index.html"), "<h1>home</h1>").unwrap();
    std::fs::write(root.join("style.css"), "body{}").unwrap();
    std::fs::write(root.join("data.json"), "{\"a\":1}").unwrap();
    std::fs::write(root.join("docs/index.html"), "<h1>docs</h1>").unwrap();
    std::fs::write(root.join("digits.txt"), "0123456789").unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.txt"), root.join("leak.txt")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("up")).unwrap();
    let ctx = Context::builder().build();
    let cert = pki.issue("files", &["files.test"]);
    let files = StaticHandler::new(&root).unwrap();
    let addr = start(
        &ctx,
        ServerOptions::new("files", any_port(), cert.store()).static_files(files),
    );
    Site {
        pki,
        addr,
        _outside: outside,
    }
}

impl Site {
    async fn send(&self, method: &str, path: &str, headers: &str) -> Response {
        let raw = format!(
            "{method} {path} HTTP/1.1\r\nHost: files.test\r\n{headers}Connection: close\r\n\r\n"
        );
        let has_body = method != "HEAD";
        let response = exchange(
            self.addr,
            "files.test",
            self.pki.client(&["http/1.1"]),
            &raw,
            has_body,
        )
        .await
        .unwrap();
        if response.status == 304 {
            assert!(response.body.is_empty());
        }
        response
    }
}

#[tokio::test]
async fn files_come_with_their_content_types_and_indexes() {
    let site = site();
    for (path, body, content_type) in [
        ("/", "<h1>home</h1>", "text/html"),
        ("/docs/", "<h1>docs</h1>", "text/html"),
        ("/style.css", "body{}", "text/css"),
        ("/data.json", "{\"a\":1}", "application/json"),
    ] {
        let response = site.send("GET", path, "").await;
        assert_eq!(response.status, 200, "{path}");
        assert_eq!(response.body, body, "{path}");
        assert!(
            response
                .header("content-type")
                .unwrap()
                .starts_with(content_type),
            "{path}"
        );
        assert!(response.header("last-modified").is_some(), "{path}");
    }
    assert_eq!(site.send("GET", "/missing.txt", "").await.status, 404);
}

#[tokio::test]
async fn head_range_and_etag() {
    let site = site();
    let head = site.send("HEAD", "/digits.txt", "").await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("10"));
    assert!(head.body.is_empty());

    let range = site
        .send("GET", "/digits.txt", "Range: bytes=2-4\r\n")
        .await;
    assert_eq!(range.status, 206);
    assert_eq!(range.body, "234");
    assert_eq!(range.header("content-range"), Some("bytes 2-4/10"));

    let full = site.send("GET", "/digits.txt", "").await;
    let etag = full.header("etag").expect("an ETag").to_owned();
    assert!(etag.starts_with("W/\""), "{etag}");
    assert_eq!(
        range.header("etag"),
        Some(etag.as_str()),
        "same file, same tag"
    );
    let cached = site
        .send("GET", "/digits.txt", &format!("If-None-Match: {etag}\r\n"))
        .await;
    assert_eq!(cached.status, 304);
    assert_eq!(cached.header("etag"), Some(etag.as_str()));
    let stale = site
        .send("GET", "/digits.txt", "If-None-Match: \"other\"\r\n")
        .await;
    assert_eq!(stale.status, 200);
}

#[tokio::test]
async fn nothing_outside_the_root_is_reachable() {
    let site = site();
    let hostile = [
        "/../secret.txt",
        "/docs/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/docs/%2e%2e%2f%2e%2e%2fsecret.txt",
        "/..%2fsecret.txt",
        "/leak.txt",
        "/up/secret.txt",
        "//etc/passwd",
        "/%2fetc%2fpasswd",
        "/docs/..%5c..%5csecret.txt",
    ];
    for path in hostile {
        let response = site.send("GET", path, "").await;
        assert!(
            response.status == 404 || response.status == 400,
            "{path} answered {}: {}",
            response.status,
            response.body
        );
        assert!(!response.body.contains("outside the root"), "{path} leaked");
    }
}

#[test]
fn a_root_that_is_not_a_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert!(StaticHandler::new(dir.path().join("missing")).is_err());
    std::fs::write(dir.path().join("file"), "x").unwrap();
    let error = StaticHandler::new(dir.path().join("file")).unwrap_err();
    assert!(error.to_string().contains("is not a folder"));
}
