//! `[http_redirect]`: a plain-HTTP port that sends every request to https (308, same host,
//! path and query, the https port when not 443), followed by curl and by Chromium to the page;
//! and its mistakes named.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

mod common;

use std::process::Command;

use common::{available, chromium_dom, free_port, tlsplex, Daemon};
use tlsplex_testkit::TestPki;

#[test]
fn plain_http_is_sent_to_https_and_a_browser_follows() {
    if !available("curl") {
        return;
    }
    let pki = TestPki::new();
    let cert = pki.issue("web", &["web.test"]);
    std::fs::create_dir(pki.dir().join("www")).unwrap();
    std::fs::write(
        pki.dir().join("www/index.html"),
        "<p id=\"p\">over https</p>",
    )
    .unwrap();
    let (https, http) = (free_port(), free_port());
    let config = pki.dir().join("tlsplex.toml");
    std::fs::write(
        &config,
        format!(
            "[http_redirect]\nlisten = \"127.0.0.1:{http}\"\nhttps_port = {https}\n\n\
             [[server]]\nname = \"web\"\nlisten = \"127.0.0.1:{https}\"\n\
             certificates = [{{ cert = \"web.pem\", key = \"web.key\" }}]\n\
             handler = {{ type = \"static\", root = \"www\" }}\n"
        ),
    )
    .unwrap();
    let check = tlsplex(&["check", "-c", config.to_str().unwrap()]);
    let shown = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(
        shown.contains(&format!(
            "http_redirect 127.0.0.1:{http} -> https port {https}"
        )),
        "{shown}"
    );
    let mut daemon = Daemon::start(&["run", "-c", config.to_str().unwrap()]);
    daemon.wait_listening(&[
        ([127, 0, 0, 1], https).into(),
        ([127, 0, 0, 1], http).into(),
    ]);

    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
        ])
        .args(["-H", "Host: web.test"])
        .arg(format!("http://127.0.0.1:{http}/docs/x?y=1"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("308 https://web.test:{https}/docs/x?y=1")
    );
    // curl follows it to the page.
    let out = Command::new("curl")
        .args(["-sL", "--cacert"])
        .arg(pki.ca_file())
        .args(["--resolve", &format!("web.test:{http}:127.0.0.1")])
        .args(["--resolve", &format!("web.test:{https}:127.0.0.1")])
        .arg(format!("http://web.test:{http}/"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "<p id=\"p\">over https</p>"
    );

    if available("chromium") {
        let dom = chromium_dom(&cert.cert_path, &format!("http://web.test:{http}/"), &[]);
        assert!(
            dom.contains("<p id=\"p\">over https</p>"),
            "Chromium followed it:\n{dom}"
        );
    }
}

#[test]
fn its_mistakes_are_named() {
    let pki = TestPki::new();
    pki.issue("web", &["web.test"]);
    let server = "[[server]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\n\
                  certificates = [{ cert = \"web.pem\", key = \"web.key\" }]\n";
    for (table, expected) in [
        (
            "[http_redirect]\nlisten = \"port 80\"\n",
            "http_redirect.listen: \"port 80\" is not an address with a port",
        ),
        (
            "[http_redirect]\nlisten = \"127.0.0.1:80\"\nhttps_port = 0\n",
            "http_redirect.https_port: must be a port, 1 to 65535",
        ),
        (
            "[http_redirect]\nlisten = \"127.0.0.1:80\"\nto = \"https\"\n",
            "http_redirect: unknown field `to`",
        ),
        (
            "[acme]\ndirectory = \"letsencrypt\"\nhttp01_listen = \"127.0.0.1:80\"\n\
             [http_redirect]\nlisten = \"127.0.0.1:80\"\n",
            "acme.http01_listen: [http_redirect] answers HTTP-01 validations already",
        ),
    ] {
        let path = pki.dir().join("bad.toml");
        std::fs::write(&path, format!("{table}\n{server}")).unwrap();
        let check = tlsplex(&["check", "-c", path.to_str().unwrap()]);
        let said = String::from_utf8_lossy(&check.stderr).into_owned();
        assert!(
            !check.status.success() && said.contains(expected),
            "{expected}:\n{said}"
        );
    }
}
