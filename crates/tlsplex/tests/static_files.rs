//! The `static` handler: content types, index.html, HEAD, Range, ETag, 404, and no way out of
//! the folder.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

use std::net::SocketAddr;

use tlsplex::handler::{FileCacheOptions, StaticHandler};
use tlsplex::{Context, ServerOptions};
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
    std::fs::write(root.join("large.bin"), large_contents()).unwrap();
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

/// A file past the small-file path's 64 KiB, sent in eight 64 KiB pieces (the last one
/// short), no two lines alike.
fn large_contents() -> String {
    (0..70_000).map(|i| format!("{i:06}\n")).collect()
}

#[tokio::test]
async fn a_large_file_comes_whole_and_in_ranges() {
    let site = site();
    let contents = large_contents();
    let full = site.send("GET", "/large.bin", "").await;
    assert_eq!(full.status, 200);
    assert_eq!(
        full.header("content-length"),
        Some(contents.len().to_string().as_str())
    );
    assert!(full.body == contents, "the body differs from the file");
    let head = site.send("HEAD", "/large.bin", "").await;
    assert_eq!(head.header("content-length"), full.header("content-length"));
    assert!(head.body.is_empty());
    let range = site
        .send("GET", "/large.bin", "Range: bytes=299999-300005\r\n")
        .await;
    assert_eq!(range.status, 206);
    assert_eq!(range.body, "042857\n");
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

/// A site with the hazards an attacker looks for: dotfiles, an index that links out, a FIFO.
fn hazards(dotfiles: bool) -> (tempfile::TempDir, TestPki, std::net::SocketAddr) {
    hazards_cached(dotfiles, None)
}

/// [`hazards`], with the open-file cache when given.
fn hazards_cached(
    dotfiles: bool,
    cache: Option<FileCacheOptions>,
) -> (tempfile::TempDir, TestPki, std::net::SocketAddr) {
    let pki = TestPki::new();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("passwd"), "root:x:0:0").unwrap();
    std::fs::write(outside.path().join("big"), "s".repeat(100_000)).unwrap();
    let root = outside.path().join("www");
    for dir in ["small", "large", ".git", ".well-known", "docs"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::write(root.join(".env"), "SECRET=1").unwrap();
    std::fs::write(root.join(".git/config"), "[core]").unwrap();
    std::fs::write(root.join(".well-known/security.txt"), "Contact: x").unwrap();
    std::fs::write(root.join("docs/index.html"), "docs").unwrap();
    let link = |target: &str, at: &str| {
        std::os::unix::fs::symlink(outside.path().join(target), root.join(at)).unwrap();
    };
    link("passwd", "small/index.html");
    link("big", "large/index.html");
    let fifo = root.join("pipe");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let ctx = Context::builder().build();
    let cert = pki.issue("files", &["files.test"]);
    let files = StaticHandler::new(&root).unwrap().serve_dotfiles(dotfiles);
    let files = match cache {
        Some(options) => files.cache(options),
        None => files,
    };
    let addr = start(
        &ctx,
        ServerOptions::new("files", any_port(), cert.store()).static_files(files),
    );
    (outside, pki, addr)
}

async fn send_to(pki: &TestPki, addr: std::net::SocketAddr, head: &str) -> Response {
    let raw = format!("{head}Connection: close\r\n\r\n");
    let client = pki.client(&["http/1.1"]);
    let answer = exchange(addr, "files.test", client, &raw, !head.starts_with("HEAD"));
    tokio::time::timeout(std::time::Duration::from_secs(5), answer)
        .await
        .expect("answered in time")
        .unwrap()
}

#[tokio::test]
async fn an_index_that_links_out_fifos_and_dotfiles_are_not_served() {
    let (_dir, pki, addr) = hazards(false);
    let host = "Host: files.test\r\n";
    for (path, extra) in [
        ("/small/", ""),
        ("/large/", ""),
        ("/large/", "Range: bytes=0-9\r\n"),
        ("/pipe", ""),
        ("/.env", ""),
        ("/.git/config", ""),
    ] {
        let response = send_to(&pki, addr, &format!("GET {path} HTTP/1.1\r\n{host}{extra}")).await;
        assert_eq!(response.status, 404, "{path} {extra}");
        assert!(!response.body.contains("root:x") && !response.body.starts_with("sss"));
    }
    let long = format!("/{}", "a".repeat(300));
    let response = send_to(&pki, addr, &format!("GET {long} HTTP/1.1\r\n{host}")).await;
    assert_eq!(response.status, 404, "a name over 255 bytes");
    let known = send_to(
        &pki,
        addr,
        &format!("GET /.well-known/security.txt HTTP/1.1\r\n{host}"),
    )
    .await;
    assert_eq!((known.status, known.body.as_str()), (200, "Contact: x"));
    // The FIFO froze every server before; the server still answers at once.
    let docs = send_to(&pki, addr, &format!("GET /docs/ HTTP/1.1\r\n{host}")).await;
    assert_eq!(docs.body, "docs");
}

#[tokio::test]
async fn the_file_cache_keeps_the_rules_and_sees_changes_once_it_revalidates() {
    let mut options = FileCacheOptions::default();
    options.revalidate = std::time::Duration::from_millis(300);
    let (dir, pki, addr) = hazards_cached(false, Some(options));
    let host = "Host: files.test\r\n";
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\n{host}");
    // Twice each: the second answer may come from the cache, and must be the same.
    for _ in 0..2 {
        for path in ["/small/", "/large/", "/pipe", "/.env", "/.git/config"] {
            let response = send_to(&pki, addr, &get(path)).await;
            assert_eq!(response.status, 404, "{path}");
        }
        let docs = send_to(&pki, addr, &get("/docs/")).await;
        assert_eq!((docs.status, docs.body.as_str()), (200, "docs"));
    }
    let head = send_to(&pki, addr, &format!("HEAD /docs/ HTTP/1.1\r\n{host}")).await;
    assert_eq!(head.status, 200);
    let length = head
        .headers
        .iter()
        .find(|(name, _)| name == "content-length");
    assert_eq!(length.map(|(_, value)| value.as_str()), Some("4"));
    let etag = docs_etag(&pki, addr).await;
    let not_modified = send_to(
        &pki,
        addr,
        &format!("GET /docs/ HTTP/1.1\r\n{host}If-None-Match: {etag}\r\n"),
    )
    .await;
    assert_eq!(not_modified.status, 304, "validators work on cached files");

    // A change is seen once the entry is due for a look (the window is nginx's trade too).
    let index = dir.path().join("www/docs/index.html");
    std::fs::write(&index, "docs, second edition").unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let docs = send_to(&pki, addr, &get("/docs/")).await;
    assert_eq!(docs.body, "docs, second edition");
    // Swapped for a link that leads out: refused at the next look, as without the cache.
    std::fs::remove_file(&index).unwrap();
    std::os::unix::fs::symlink(dir.path().join("passwd"), &index).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let docs = send_to(&pki, addr, &get("/docs/")).await;
    assert_eq!(docs.status, 404);
    assert!(!docs.body.contains("root:x"));
}

async fn docs_etag(pki: &TestPki, addr: std::net::SocketAddr) -> String {
    let response = send_to(pki, addr, "GET /docs/ HTTP/1.1\r\nHost: files.test\r\n").await;
    response.header("etag").expect("an etag").to_owned()
}

#[tokio::test]
async fn dotfiles_can_be_allowed() {
    let (_dir, pki, addr) = hazards(true);
    let response = send_to(&pki, addr, "GET /.env HTTP/1.1\r\nHost: files.test\r\n").await;
    assert_eq!((response.status, response.body.as_str()), (200, "SECRET=1"));
}

#[tokio::test]
async fn a_folder_redirect_names_the_path_only() {
    let (_dir, pki, addr) = hazards(false);
    // An absolute-form target (as HTTP/2's :authority arrives): the Location must not echo it.
    for target in ["https://evil.example/docs", "/docs", "/docs?x=1"] {
        let head = format!("GET {target} HTTP/1.1\r\nHost: files.test\r\n");
        let response = send_to(&pki, addr, &head).await;
        assert_eq!(response.status, 307, "{target}");
        let location = response.header("location").unwrap();
        assert!(
            location == "/docs/" || location == "/docs/?x=1",
            "{target}: {location}"
        );
    }
}
