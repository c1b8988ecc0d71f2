//! What a static site needs beyond files, against curl: index names tried in order (also for a
//! `Range` request), an opt-in listing whose names are escaped and whose links work, dotfiles
//! left out of it, a custom page for 404 (HEAD too), `.br`/`.gz` siblings by `Accept-Encoding`
//! (not one that links out of the root), all under a path rule that strips its prefix; and
//! their mistakes named in one pass.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

mod common;

use std::process::Command;

use common::{available, free_port, tlsplex, Daemon};
use tlsplex_testkit::TestPki;

/// curl's head and body for `path` (sent as it is), with `extra` arguments.
fn fetch(port: u16, pki: &TestPki, path: &str, extra: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-s", "--path-as-is", "-D", "-", "--cacert"])
        .arg(pki.ca_file())
        .args(["--resolve", &format!("web.test:{port}:127.0.0.1")])
        .args(extra)
        .arg(format!("https://web.test:{port}{path}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_ascii_lowercase(), body.to_owned())
}

fn status(head: &str) -> &str {
    head.split(' ').nth(1).unwrap_or("none")
}

#[test]
fn index_names_listings_and_error_pages() {
    if !available("curl") {
        return;
    }
    let pki = TestPki::new();
    pki.issue("web", &["web.test"]);
    let root = pki.dir().join("www");
    std::fs::create_dir_all(root.join("docs")).unwrap();
    std::fs::create_dir_all(root.join("files/sub")).unwrap();
    std::fs::write(root.join("docs/home.htm"), "home page\n").unwrap();
    std::fs::write(root.join("files/<b>x&y.txt"), "tricky\n").unwrap();
    std::fs::write(root.join("files/.secret"), "hidden\n").unwrap();
    std::fs::write(root.join("404.html"), "<h1>not here</h1>\n").unwrap();
    std::fs::write(root.join("app.js"), "plain js\n").unwrap();
    std::fs::write(root.join("app.js.br"), "brotli bytes").unwrap();
    std::fs::write(root.join("app.js.gz"), "gzip bytes").unwrap();
    std::fs::write(root.join("lib.js"), "lib\n").unwrap();
    std::fs::write(pki.dir().join("outside"), "secret").unwrap();
    std::os::unix::fs::symlink(pki.dir().join("outside"), root.join("lib.js.br")).unwrap();
    let port = free_port();
    let config = pki.dir().join("tlsplex.toml");
    std::fs::write(
        &config,
        format!(
            "[[server]]\nname = \"site\"\nlisten = \"127.0.0.1:{port}\"\n\
             certificates = [{{ cert = \"web.pem\", key = \"web.key\" }}]\n\
             [[server.path]]\nprefix = \"/site/\"\nstrip_prefix = true\n\
             handler = {{ type = \"static\", root = \"www\", index = [\"index.html\", \"home.htm\"], \
             listing = true, precompressed = true, error_pages = {{ 404 = \"404.html\" }} }}\n"
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start(&["run", "-c", config.to_str().unwrap()]);
    daemon.wait_listening(&[([127, 0, 0, 1], port).into()]);

    let (head, body) = fetch(port, &pki, "/site/docs/", &[]);
    assert_eq!(status(&head), "200", "{head}");
    assert_eq!(body, "home page\n", "the second index name");
    let (head, body) = fetch(port, &pki, "/site/docs/", &["-r", "0-3"]);
    assert_eq!(status(&head), "206", "{head}");
    assert_eq!(body, "home", "a range of the index file");

    let (head, listing) = fetch(port, &pki, "/site/files/", &[]);
    assert_eq!(status(&head), "200", "{head}");
    assert!(
        head.contains("content-type: text/html; charset=utf-8"),
        "{head}"
    );
    assert!(
        listing.contains("<title>Index of /site/files/</title>"),
        "{listing}"
    );
    assert!(
        listing.contains("<a href=\"./%3Cb%3Ex%26y.txt\">&lt;b&gt;x&amp;y.txt</a>"),
        "{listing}"
    );
    assert!(listing.contains("<a href=\"./sub/\">sub/</a>"), "{listing}");
    assert!(!listing.contains("secret"), "no dotfiles: {listing}");
    assert!(!listing.contains("<b>"), "{listing}");
    // The link works.
    let (head, body) = fetch(port, &pki, "/site/files/%3Cb%3Ex%26y.txt", &[]);
    assert_eq!(status(&head), "200", "{head}");
    assert_eq!(body, "tricky\n");
    let (head, _) = fetch(port, &pki, "/site/files/.secret", &[]);
    assert_eq!(status(&head), "404", "{head}");

    let (head, body) = fetch(port, &pki, "/site/nothing", &[]);
    assert_eq!(status(&head), "404", "{head}");
    assert!(head.contains("content-type: text/html"), "{head}");
    assert_eq!(body, "<h1>not here</h1>\n", "the site's own 404 page");
    let (head, body) = fetch(port, &pki, "/site/nothing", &["-I", "--http2"]);
    assert!(head.starts_with("http/2 404"), "{head}");
    assert!(head.contains("content-length: 18"), "{head}");
    assert!(body.trim().is_empty(), "HEAD: no body: {body:?}");

    for (accept, encoding, expected) in [
        ("gzip, br", "br", "brotli bytes"),
        ("gzip;q=1, br;q=0", "gzip", "gzip bytes"),
        ("identity", "", "plain js\n"),
    ] {
        let header = format!("Accept-Encoding: {accept}");
        let (head, body) = fetch(port, &pki, "/site/app.js", &["-H", &header]);
        assert_eq!(body, expected, "{accept}");
        assert!(head.contains("content-type: text/javascript"), "{head}");
        assert!(head.contains("vary: accept-encoding"), "{head}");
        assert_eq!(
            head.contains(&format!("content-encoding: {encoding}\r\n")),
            !encoding.is_empty(),
            "{head}"
        );
    }
    let (_, body) = fetch(port, &pki, "/site/lib.js", &["-H", "Accept-Encoding: br"]);
    assert_eq!(
        body, "lib\n",
        "a sibling that links out of the root is not served"
    );
}

#[test]
fn mistakes_are_named_in_one_pass() {
    let pki = TestPki::new();
    pki.issue("web", &["web.test"]);
    std::fs::create_dir_all(pki.dir().join("www")).unwrap();
    // One byte over the bound of what an error page may hold in memory.
    std::fs::write(pki.dir().join("www/big.html"), vec![b'x'; 1024 * 1024 + 1]).unwrap();
    let config = pki.dir().join("bad.toml");
    std::fs::write(
        &config,
        "[[server]]\nname = \"s\"\nlisten = \"127.0.0.1:0\"\n\
         certificates = [{ cert = \"web.pem\", key = \"web.key\" }]\n\
         handler = { type = \"static\", root = \"www\", error_pages = { 200 = \"ok.html\", abc = \"x\", 404 = \"missing.html\", 500 = \"big.html\" } }\n\
         [[server]]\nname = \"t\"\nlisten = \"127.0.0.1:0\"\n\
         certificates = [{ cert = \"web.pem\", key = \"web.key\" }]\n\
         handler = { type = \"static\", root = \"www\", index = [\"../index.html\"] }\n",
    )
    .unwrap();
    let check = tlsplex(&["check", "-c", config.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&check.stderr).into_owned()
        + &String::from_utf8_lossy(&check.stdout);
    assert!(!check.status.success());
    for expected in [
        "server \"s\": handler.error_pages.200: ok.html: 200 is not an error status (400 to 599)",
        "server \"s\": handler.error_pages.abc: not a status code",
        "server \"s\": handler.error_pages.404: missing.html: No such file",
        "server \"s\": handler.error_pages.500: big.html: the file is 1048577 bytes; at most 1048576 are read",
        "server \"t\": handler.index: \"../index.html\" is not a file name",
    ] {
        assert!(said.contains(expected), "{expected}\nnot in:\n{said}");
    }
}
