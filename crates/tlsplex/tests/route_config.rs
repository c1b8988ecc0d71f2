//! `[[server.route]]` and backend pools in the config file: a valid `:443` for several services
//! loads as written, and every mistake is named with its server, route and key, in one pass.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

use tlsplex::config::Config;
use tlsplex::handler::Balance;
use tlsplex_testkit::TestPki;

fn write(pki: &TestPki, text: &str) -> std::path::PathBuf {
    let path = pki.dir().join("tlsplex.toml");
    std::fs::write(&path, text).unwrap();
    path
}

const FRONT: &str = r#"
[[server]]
name = "front"
listen = "127.0.0.1:0"
certificates = [{ cert = "front.pem", key = "front.key" }]
"#;

#[test]
fn a_port_serving_several_services_loads_as_written() {
    let pki = TestPki::new();
    pki.issue("front", &["app.test", "*.apps.test", "api.test"]);
    let text = format!(
        r#"{FRONT}
[[server.route]]
names = ["app.test"]
handler = {{ type = "forward", backends = ["127.0.0.1:8080", "127.0.0.1:8081", "unix:/run/app.sock"], balance = "least_connections", health_check = {{ interval = "5s", timeout = "1s" }} }}

[[server.route]]
name = "apps"
names = ["*.apps.test"]
handler = {{ type = "static", root = "." }}

[[server.route]]
name = "legacy"
names = ["legacy.test"]
handler = {{ type = "passthrough", backend = "10.0.0.9:443", proxy_protocol = "v2" }}

[[server.route]]
names = ["api.test", "docs.test"]
alpn = ["http/1.1"]
"#
    );
    let config = Config::load(write(&pki, &text)).unwrap();
    let routes = &config.servers[0].routes;
    let names: Vec<_> = routes.iter().map(|r| r.name()).collect();
    assert_eq!(
        names,
        ["app.test", "apps", "legacy", "api.test"],
        "a route is named after its first name unless named"
    );
    assert!(routes[2].is_passthrough());
    assert!(!routes[0].is_passthrough());
    let options = config.servers[0].options();
    assert_eq!(options.routes().len(), 4);
    // docs.test has no certificate: a warning, not an error (it runs, with the default one).
    assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
    let warning = config.warnings[0].to_string();
    assert!(
        warning.contains("front")
            && warning.contains("route[3].names")
            && warning.contains("docs.test"),
        "{warning}"
    );
    let _ = Balance::LeastConnections;
}

#[test]
fn every_route_and_pool_mistake_is_named_with_server_route_and_key_in_one_pass() {
    let pki = TestPki::new();
    pki.issue("front", &["a.test", "b.test"]);
    let text = format!(
        r#"{FRONT}
handler = {{ type = "passthrough", backend = "127.0.0.1:9" }}

[[server.route]]
names = ["a.test"]
handler = {{ type = "forward", backends = ["127.0.0.1:1"], balance = "random" }}

[[server.route]]
names = ["b.test"]
handler = {{ type = "forward", backends = [] }}

[[server.route]]
name = "nameless"

[[server.route]]
names = ["A.test", "c.test"]
handler = {{ type = "forward", backends = ["127.0.0.1:1", "nowhere"] }}

[[server.route]]
name = "a.test"
names = ["d.test"]
handler = {{ type = "passthrough" }}
"#
    );
    let path = write(&pki, &text);
    let error = Config::load(&path).unwrap_err().to_string();
    let file = path.display().to_string();
    for expected in [
        "server \"front\": handler.type: passthrough is for routes",
        "server \"front\": route[0].handler.balance: \"random\" is not a policy: use \"round_robin\", \"least_connections\" or \"first\"",
        "server \"front\": route[1].handler.backends: the list is empty",
        "server \"front\": route[2].names: a route needs names",
        "server \"front\": route[3].names: \"A.test\" is already claimed by route[0]",
        "server \"front\": route[3].handler.backends[1]: \"nowhere\" is not HOST:PORT",
        "server \"front\": route[4].name: route[0] is also called \"a.test\"",
        "server \"front\": route[4].handler.backend: missing field `backend`",
    ] {
        assert!(error.contains(expected), "expected {expected:?} in:\n{error}");
    }
    assert!(error.lines().all(|line| line.starts_with(&file)), "{error}");
}

#[test]
fn unknown_keys_in_a_route_and_bad_backend_tls_are_named() {
    let pki = TestPki::new();
    pki.issue("front", &["a.test"]);
    let text = format!(
        r#"{FRONT}
[[server.route]]
names = ["a.test"]
colour = "blue"
"#
    );
    let error = Config::load(write(&pki, &text)).unwrap_err().to_string();
    assert!(
        error.contains("server \"front\": route[0]: unknown field `colour`"),
        "{error}"
    );

    let text = format!(
        r#"{FRONT}
[[server.route]]
names = ["a.test"]
handler = {{ type = "forward", backend = "127.0.0.1:1", backend_tls = {{ ca = "missing-ca.pem", server_name = "app.internal" }} }}
client_auth = {{ ca = "front.pem", allow = {{}} }}
"#
    );
    let error = Config::load(write(&pki, &text)).unwrap_err().to_string();
    for expected in [
        "route[0].handler.backend_tls.ca: ",
        "missing-ca.pem",
        "route[0].client_auth.allow: the allow-list names nothing",
    ] {
        assert!(
            error.contains(expected),
            "expected {expected:?} in:\n{error}"
        );
    }
}
