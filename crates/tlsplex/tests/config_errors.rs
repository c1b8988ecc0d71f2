//! Every class of config error gives its own message, naming the server, the key and the file.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

use std::path::Path;

use tlsplex::config::Config;
use tlsplex_testkit::TestPki;

/// A PKI with `web.pem`/`web.key` and `other.pem`/`other.key` in its folder.
fn pki() -> TestPki {
    let pki = TestPki::new();
    pki.issue("web", &["web.test"]);
    pki.issue("other", &["other.test"]);
    pki
}

/// Writes `text` as `tlsplex.toml` in the PKI folder, loads it, and returns the error text.
fn errors(pki: &TestPki, text: &str) -> String {
    let path = pki.dir().join("tlsplex.toml");
    std::fs::write(&path, text).unwrap();
    match Config::load(&path) {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(error) => {
            let shown = error.to_string();
            assert!(
                shown
                    .lines()
                    .all(|line| line.starts_with(&path.display().to_string())),
                "every line names the config file: {shown}"
            );
            shown
        }
    }
}

const WEB: &str = r#"
[[server]]
name = "web"
listen = "127.0.0.1:0"
certificates = [{ cert = "web.pem", key = "web.key" }]
"#;

fn assert_has(text: &str, expected: &str) {
    assert!(text.contains(expected), "expected {expected:?} in:\n{text}");
}

#[test]
fn a_valid_file_loads_with_paths_relative_to_its_folder() {
    let pki = pki();
    let path = pki.dir().join("tlsplex.toml");
    let text = format!(
        "[global]\nhandshake_timeout = \"2s\"\nmax_connections = 50\nshutdown_grace = \"1m 30s\"\n{WEB}max_connections = 5\n"
    );
    std::fs::write(&path, text).unwrap();
    let config = Config::load(&path).unwrap();
    assert_eq!(config.global.handshake_timeout.as_secs(), 2);
    assert_eq!(config.global.max_connections, 50);
    assert_eq!(config.global.shutdown_grace.as_secs(), 90);
    let web = &config.servers[0];
    assert_eq!(web.name, "web");
    assert_eq!(web.max_connections, Some(5));
    assert_eq!(web.certificate_files[0].0, pki.dir().join("web.pem"));
    assert_eq!(
        web.certs.default_identity().summary().dns_names,
        ["web.test"]
    );
}

#[test]
fn toml_syntax_error_gives_the_line() {
    let pki = pki();
    assert_has(
        &errors(&pki, "[global]\nhandshake_timeout = \n"),
        "line 2: not valid TOML",
    );
}

#[test]
fn unknown_keys_are_named_with_their_server() {
    let pki = pki();
    let text = errors(&pki, &format!("{WEB}handshake_timout = \"5s\"\n"));
    assert_has(&text, "server \"web\": unknown field `handshake_timout`");
    let text = errors(&pki, &format!("[globl]\n{WEB}"));
    assert_has(&text, "globl: unknown top-level key");
    let text = errors(&pki, &format!("[global]\nmax_conections = 1\n{WEB}"));
    assert_has(&text, "global: unknown field `max_conections`");
    let text = errors(
        &pki,
        "[[server]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\ncertificates = [{ cert = \"web.pem\", kee = \"web.key\" }]\n",
    );
    assert_has(&text, "server \"web\": certificates: unknown field `kee`");
}

#[test]
fn missing_keys_and_wrong_types_are_named() {
    let pki = pki();
    let text = errors(&pki, "[[server]]\nname = \"web\"\ncertificates = []\n");
    assert_has(&text, "server \"web\": missing field `listen`");
    let text = errors(&pki, &format!("{WEB}max_connections = \"many\"\n"));
    assert_has(
        &text,
        "server \"web\": max_connections: invalid type: string \"many\"",
    );
    let text = errors(&pki, &format!("{WEB}handler = {{ type = \"forwrd\" }}\n"));
    assert_has(
        &text,
        "server \"web\": handler.type: unknown variant `forwrd`",
    );
}

#[test]
fn duplicate_names_and_listen_addresses_are_refused() {
    let pki = pki();
    let text = errors(
        &pki,
        &format!("{WEB}\n[[server]]\nname = \"web\"\nlisten = \"127.0.0.1:8443\"\ncertificates = [{{ cert = \"other.pem\", key = \"other.key\" }}]\n"),
    );
    assert_has(
        &text,
        "server \"web\": name: duplicate name: server #1 is also called \"web\"",
    );
    let two_on_443 = "[[server]]\nname = \"a\"\nlisten = \"0.0.0.0:443\"\ncertificates = [{ cert = \"web.pem\", key = \"web.key\" }]\n\
        [[server]]\nname = \"b\"\nlisten = \"127.0.0.1:443\"\ncertificates = [{ cert = \"other.pem\", key = \"other.key\" }]\n";
    let text = errors(&pki, two_on_443);
    assert_has(
        &text,
        "server \"b\": listen: 127.0.0.1:443 is already used by server \"a\"",
    );
}

#[test]
fn bad_values_are_explained() {
    let pki = pki();
    let text = errors(&pki, &format!("{WEB}handshake_timeout = \"10 parsecs\"\n"));
    assert_has(
        &text,
        "server \"web\": handshake_timeout: invalid duration \"10 parsecs\"",
    );
    let text = errors(
        &pki,
        &format!("[global]\nhandshake_timeout = \"0s\"\n{WEB}"),
    );
    assert_has(&text, "global.handshake_timeout: must be longer than zero");
    let text = errors(&pki, &format!("[global]\nmax_connections = 0\n{WEB}"));
    assert_has(&text, "global.max_connections: must be at least 1");
    let text = errors(&pki, &format!("{WEB}max_connections_per_client = 0\n"));
    assert_has(
        &text,
        "server \"web\": max_connections_per_client: must be at least 1",
    );
    let text = errors(&pki, &WEB.replace("127.0.0.1:0", "web_1.local:443"));
    assert_has(
        &text,
        "server \"web\": listen: \"web_1.local:443\" is not an address (write IP:PORT or HOST:PORT",
    );
    let text = errors(
        &pki,
        &WEB.replace("127.0.0.1:0", "no-such-host.invalid:443"),
    );
    assert_has(
        &text,
        "server \"web\": listen: \"no-such-host.invalid:443\": cannot resolve \"no-such-host.invalid\"",
    );
    // As nginx takes them: a host name, resolved at load (its IPv4 address first), and `*`.
    let path = pki.dir().join("tlsplex.toml");
    for (listen, bound) in [
        ("localhost:8443", "127.0.0.1:8443"),
        ("*:8443", "0.0.0.0:8443"),
    ] {
        std::fs::write(&path, WEB.replace("127.0.0.1:0", listen)).unwrap();
        let config = Config::load(&path).unwrap();
        assert_eq!(config.servers[0].listen.to_string(), bound);
    }
    let text = errors(
        &pki,
        &WEB.replace("name = \"web\"", "name = \"web server\""),
    );
    assert_has(&text, "name: \"web server\" is not a valid name");
    assert_has(
        &errors(&pki, "[global]\n"),
        "server: no [[server]] is defined",
    );
}

#[test]
fn certificate_problems_name_the_file() {
    let pki = pki();
    let dir = pki.dir();

    let text = errors(&pki, &WEB.replace("web.pem", "missing.pem"));
    assert_has(&text, "server \"web\": certificates[0].cert: cannot read ");
    assert_has(&text, &dir.join("missing.pem").display().to_string());

    let text = errors(&pki, &WEB.replace("web.key", "missing.key"));
    assert_has(&text, "certificates[0].key: cannot read ");

    std::fs::write(dir.join("empty.pem"), "not a certificate\n").unwrap();
    let text = errors(&pki, &WEB.replace("web.pem", "empty.pem"));
    assert_has(&text, "certificates[0].cert: ");
    assert_has(&text, "empty.pem contains no PEM certificate");

    let text = errors(&pki, &WEB.replace("web.key", "web.pem"));
    assert_has(&text, "certificates[0].key: ");
    assert_has(&text, "web.pem contains no PEM private key");

    let text = errors(&pki, &WEB.replace("web.key", "other.key"));
    assert_has(
        &text,
        &format!(
            "certificates[0].key: private key {} does not match the certificate in {}",
            dir.join("other.key").display(),
            dir.join("web.pem").display()
        ),
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let pki = pki();
    let text = errors(
        &pki,
        "[global]\nshutdown_grace = \"soon\"\n[[server]]\nname = \"a\"\nlisten = \"nowhere\"\ncertificates = [{ cert = \"x.pem\", key = \"x.key\" }]\n",
    );
    // The duration, the address, and both missing files (certificate and key).
    assert_eq!(text.lines().count(), 4, "{text}");
    assert_has(&text, "certificates[0].cert: cannot read");
    assert_has(&text, "certificates[0].key: cannot read");
}

#[test]
fn an_unreadable_config_file_says_so() {
    let error = Config::load(Path::new("/nonexistent/tlsplex.toml")).unwrap_err();
    assert_has(
        &error.to_string(),
        "/nonexistent/tlsplex.toml: cannot read the config file",
    );
}

#[test]
fn the_http_limits_tls_session_age_and_admin_keys_are_checked_in_one_pass() {
    let pki = pki();
    let text = errors(
        &pki,
        &format!(
            "[admin]\nlisten = \"127.0.0.1:0\"\nallowed_hosts = \"admin.internal\"\n{WEB}\
             [server.http]\nsend_timeout = \"soon\"\nidle_timeout = \"0s\"\n\
             max_request_header_bytes = 100\nmax_concurrent_streams = 0\n\
             max_buffered_response_bytes = 10\n\
             [server.tls]\nmax_session_age = \"forever\"\n\
             [[server]]\nname = \"files\"\nlisten = \"127.0.0.1:0\"\n\
             certificates = [{{ cert = \"web.pem\", key = \"web.key\" }}]\n\
             handler = {{ type = \"static\", root = \".\", serve_dotfiles = \"yes\" }}\n"
        ),
    );
    for expected in [
        "admin.allowed_hosts",
        "server \"web\": http.send_timeout: invalid duration \"soon\"",
        "server \"web\": http.idle_timeout: must be longer than zero",
        "server \"web\": http.max_request_header_bytes: must be at least 8192",
        "server \"web\": http.max_concurrent_streams: must be at least 1",
        "server \"web\": http.max_buffered_response_bytes: must be at least 1024",
        "server \"web\": tls.max_session_age: invalid duration \"forever\"",
        "server \"files\": handler",
    ] {
        assert_has(&text, expected);
    }
}

#[test]
fn cert_compression_must_be_a_boolean() {
    let pki = pki();
    let text = errors(
        &pki,
        &format!("{WEB}[server.tls]\ncert_compression = \"yes\"\n"),
    );
    assert_has(&text, "server \"web\": tls.cert_compression: invalid type");
}

#[test]
fn the_outline_names_every_problem_it_reads_and_reads_nothing_else() {
    use tlsplex::config::ConfigOutline;
    let pki = pki();
    let path = pki.dir().join("tlsplex.toml");
    // Key files that do not exist are no problem for the outline; bad addresses are.
    std::fs::write(
        &path,
        "[admin]\nlisten = \"nowhere\"\n\
         [[server]]\nname = \"web\"\nlisten = \"127.0.0.1:99999\"\n\
         certificates = [{ cert = \"web.pem\", key = \"missing.key\" }]\n\
         [[server]]\nname = \"api\"\nlisten = \"127.0.0.1:8443\"\nlisen = 1\n\
         certificates = [{ cert = \"gone.pem\", key = \"gone.key\" }]\n",
    )
    .unwrap();
    let text = ConfigOutline::load(&path).unwrap_err().to_string();
    for expected in [
        "admin.listen: \"nowhere\" is not an address with a port",
        "server \"web\": listen: \"127.0.0.1:99999\": \"99999\" is not a port",
        "server \"api\": unknown field `lisen`",
    ] {
        assert_has(&text, expected);
    }
    assert!(text.lines().all(|l| l.contains("tlsplex.toml")), "{text}");

    std::fs::write(&path, "[[server]\nname = 1\n").unwrap();
    let text = ConfigOutline::load(&path).unwrap_err().to_string();
    assert_has(&text, "line 1: not valid TOML");

    // A FIFO in place of the file is refused at once, not waited on.
    let fifo = pki.dir().join("fifo.toml");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let started = std::time::Instant::now();
    let text = ConfigOutline::load(&fifo).unwrap_err().to_string();
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    assert_has(&text, "cannot read the config file");

    // A good outline names the servers, addresses and certificate files, keys unread.
    std::fs::write(
        &path,
        "[[server]]\nname = \"web\"\nlisten = \"127.0.0.1:8443\"\n\
         certificates = [{ cert = \"web.pem\", key = \"missing.key\" }]\n",
    )
    .unwrap();
    let outline = ConfigOutline::load(&path).unwrap();
    assert_eq!(outline.servers[0].name, "web");
    assert_eq!(outline.servers[0].listen.port(), 8443);
    assert_eq!(
        outline.servers[0].certificate_files,
        [pki.dir().join("web.pem")]
    );
    assert!(outline.admin.is_none());
}

#[test]
fn acme_problems_are_named_and_redis_passwords_are_not_shown() {
    let pki = pki();
    let shown = errors(
        &pki,
        &format!(
            "[acme]\ndirectory = \"http://ca.test/dir\"\ncontact = [\"ops@example.test\"]\nhttp01_listen = \"port 80\"\nstorage = \"redis://fleet:s3cret@[bad/\"\n{WEB}"
        ),
    );
    assert_has(&shown, "acme.directory");
    assert_has(&shown, "acme.contact[0]");
    assert_has(
        &shown,
        "acme.http01_listen: \"port 80\" is not an address with a port",
    );
    assert_has(&shown, "acme.storage");
    assert!(!shown.contains("s3cret"), "{shown}");

    let path = pki.dir().join("tlsplex.toml");
    let text = format!(
        "[acme]\ndirectory = \"letsencrypt-staging\"\nhttp01_listen = \"[::]:80\"\nstorage = \"rediss://fleet:s3cret@redis.test:6380/2\"\n{WEB}"
    );
    std::fs::write(&path, text).unwrap();
    let acme = Config::load(&path).unwrap().acme.unwrap();
    assert_eq!(acme.http01_listen, Some("[::]:80".parse().unwrap()));
    let redis = acme.redis.unwrap();
    assert_eq!(redis.to_string(), "rediss://fleet:***@redis.test:6380/2");
    assert_eq!(
        acme.storage,
        pki.dir().join("acme"),
        "local copies beside the config"
    );
}

#[test]
fn dns01_problems_are_named_in_one_pass_and_the_tsig_secret_is_not_shown() {
    use std::os::unix::fs::PermissionsExt as _;
    let pki = pki();
    let web_key = pki.dir().join("web.key");
    std::fs::set_permissions(&web_key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let key = pki.dir().join("acme.tsig");
    std::fs::write(
        &key,
        "key \"acme\" { algorithm hmac-sha256; secret \"c2VjcmV0LXNlY3JldA==\"; };\n",
    )
    .unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let acme = "[acme]\ndirectory = \"letsencrypt\"\nprofile = \"short lived\"\n";
    // Strict permissions: a key readable by others is refused; every problem in one pass.
    let shown = errors(
        &pki,
        &format!(
            "[global]\nstrict_key_permissions = true\n{acme}[acme.dns01]\nrfc2136 = {{ server = \"ns1\", key_name = \"bad name\", algorithm = \"hmac-md5\", key_file = \"acme.tsig\" }}\npropagation_timeout = \"forever\"\nttl = 0\n{WEB}"
        ),
    );
    // A value the file's types cannot hold stops [acme] there (as it stops any table).
    assert_has(
        &shown,
        "acme.dns01.rfc2136.algorithm: unknown variant `hmac-md5`",
    );
    let shown = errors(
        &pki,
        &format!(
            "[global]\nstrict_key_permissions = true\n{acme}[acme.dns01]\nrfc2136 = {{ server = \"ns1\", key_name = \"bad name\", key_file = \"acme.tsig\" }}\npropagation_timeout = \"forever\"\nttl = 0\n{WEB}"
        ),
    );
    for expected in [
        "acme.profile: \"short lived\" is not a profile name",
        "acme.dns01.rfc2136.server: \"ns1\" is not an address with a port",
        "acme.dns01.rfc2136.key_name: \"bad name\" is not a key name",
        "acme.dns01.rfc2136.key_file:",
        "is readable by group or others: chmod 600 it",
        "acme.dns01.propagation_timeout: invalid duration \"forever\"",
        "acme.dns01.ttl: 0 is not between 1 and 86400 seconds",
    ] {
        assert_has(&shown, expected);
    }
    assert!(!shown.contains("c2VjcmV0"), "{shown}");

    // A hook that is not there; then, with one that is: a hook needs check servers (or no
    // check), an entry's challenge must be usable, wildcards need dns-01.
    let shown = errors(
        &pki,
        &format!(
            "[acme]\ndirectory = \"letsencrypt\"\n[acme.dns01]\nhook = {{ command = [\"./missing-hook\"] }}\npropagation_timeout = \"0s\"\n{WEB}"
        ),
    );
    assert_has(&shown, "acme.dns01.hook.command: cannot use");
    assert_has(&shown, "missing-hook: No such file or directory");
    let hook = pki.dir().join("hook");
    std::fs::write(&hook, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let shown = errors(
        &pki,
        "[acme]\ndirectory = \"letsencrypt\"\n[acme.dns01]\nhook = { command = [\"./hook\"] }\npropagation_timeout = \"0s\"\n[[server]]\nname = \"wild\"\nlisten = \"127.0.0.1:0\"\ncertificates = [{ acme = [\"*.example.test\"], challenge = \"tls-alpn-01\" }, { acme = [\"a.test\"], challenge = \"http-01\" }, { cert = \"web.pem\", key = \"web.key\", challenge = \"dns-01\" }]\n",
    );
    for expected in [
        "server \"wild\": certificates[0].challenge: *.example.test is a wildcard: only dns-01 validates wildcards",
        "server \"wild\": certificates[1].challenge: http-01 needs [acme] http01_listen or [http_redirect]",
        "server \"wild\": certificates[2].challenge: only for { acme = [...] } entries",
    ] {
        assert_has(&shown, expected);
    }
    let shown = errors(
        &pki,
        &format!("[acme]\ndirectory = \"letsencrypt\"\nchallenge = \"dns-01\"\n[acme.dns01]\nhook = {{ command = [\"./hook\", \"--zone\", \"example.test\"] }}\n{WEB}"),
    );
    assert_has(&shown, "acme.dns01.check_servers: a hook's records are checked on the zone's authoritative servers");
    let shown = errors(
        &pki,
        &format!("[acme]\ndirectory = \"letsencrypt\"\nchallenge = \"dns-01\"\n{WEB}"),
    );
    assert_has(&shown, "acme.challenge: dns-01 needs [acme.dns01]");

    // Loaded: the key's secret is kept but never shown; the hook's path resolved.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let path = pki.dir().join("tlsplex.toml");
    let text = "[acme]\ndirectory = \"letsencrypt\"\nchallenge = \"dns-01\"\n[acme.dns01]\nrfc2136 = { server = \"127.0.0.1:53\", key_name = \"Acme.\", key_file = \"acme.tsig\" }\n[[server]]\nname = \"wild\"\nlisten = \"127.0.0.1:0\"\ncertificates = [{ acme = [\"*.example.test\", \"example.test\"] }]\n";
    std::fs::write(&path, text).unwrap();
    let config = Config::load(&path).unwrap();
    let acme = config.acme.as_ref().unwrap();
    let dns01 = acme.dns01.as_ref().unwrap();
    assert_eq!(dns01.check_servers, vec!["127.0.0.1:53".parse().unwrap()]);
    let tlsplex::config::DnsProvider::Rfc2136(rfc2136) = &dns01.provider else {
        panic!("{dns01:?}")
    };
    assert_eq!(rfc2136.key.name, "acme");
    assert_eq!(rfc2136.key.secret(), b"secret-secret");
    assert!(!format!("{config:?}").contains("secret-secret"));
    let wanted = &config.servers[0].acme_certificates[0];
    assert_eq!(wanted.challenge, tlsplex::config::Challenge::Dns01);
}

#[test]
fn a_forward_offers_http1_unless_told_otherwise() {
    let pki = pki();
    let path = pki.dir().join("tlsplex.toml");
    let server = |name: &str, extra: &str| {
        format!(
            "[[server]]\nname = \"{name}\"\nlisten = \"127.0.0.1:0\"\n\
             certificates = [{{ cert = \"web.pem\", key = \"web.key\" }}]\n\
             handler = {{ type = \"forward\", backend = \"127.0.0.1:9\" }}\n{extra}"
        )
    };
    let text = server("plain", "")
        + &server("h2c", "[server.tls]\nalpn = [\"h2\"]\n")
        + "[[server]]\nname = \"status\"\nlisten = \"127.0.0.1:0\"\n\
           certificates = [{ cert = \"web.pem\", key = \"web.key\" }]\n";
    std::fs::write(&path, text).unwrap();
    let config = Config::load(&path).unwrap();
    let alpn = |i: usize| config.servers[i].tls.alpn.clone();
    assert_eq!(
        alpn(0),
        ["http/1.1"],
        "a relay cannot carry a browser's h2 to an HTTP/1.1 app"
    );
    assert_eq!(
        alpn(1),
        ["h2"],
        "unless the operator says its backend speaks h2"
    );
    assert_eq!(
        alpn(2),
        ["h2", "http/1.1"],
        "other handlers keep the default"
    );
}

#[test]
fn a_named_pool_serves_every_handler_that_names_it() {
    let pki = pki();
    let path = pki.dir().join("tlsplex.toml");
    let server = |name: &str, handler: &str| {
        format!(
            "[[server]]\nname = \"{name}\"\nlisten = \"127.0.0.1:0\"\n\
             certificates = [{{ cert = \"web.pem\", key = \"web.key\" }}]\nhandler = {handler}\n"
        )
    };
    let pool = "[[pool]]\nname = \"app\"\nbackends = [\"127.0.0.1:8001\", \"127.0.0.1:8002\"]\n\
                balance = \"least_connections\"\nhealth_check = { interval = \"5s\", path = \"/healthz\" }\n";
    let text = format!(
        "{pool}{}{}",
        server("a", "{ type = \"proxy\", pool = \"app\" }"),
        server("b", "{ type = \"forward\", pool = \"app\" }")
    );
    std::fs::write(&path, text).unwrap();
    let config = Config::load(&path).unwrap();
    for spec in &config.servers {
        let upstream = match &spec.handler {
            tlsplex::config::HandlerSpec::Proxy(proxy) => proxy.upstream.clone(),
            tlsplex::config::HandlerSpec::Forward(forward) => forward.clone(),
            _ => panic!("{}: not a pool's handler", spec.name),
        };
        assert_eq!(upstream.backends.len(), 2, "{}", spec.name);
        assert_eq!(
            upstream.balance,
            tlsplex::handler::Balance::LeastConnections
        );
        let check = upstream.health_check.expect("the pool's check");
        assert_eq!(check.http.expect("an HTTP check").path, "/healthz");
    }

    // An unknown pool, a pool beside backends, a key the pool sets, a pool key it cannot hold.
    let errors = errors(
        &pki,
        &format!(
            "{pool}[[pool]]\nname = \"bad\"\nbackends = [\"127.0.0.1:1\"]\nproxy_protocol = \"v2\"\n{}{}{}",
            server("c", "{ type = \"proxy\", pool = \"nope\" }"),
            server("d", "{ type = \"proxy\", pool = \"app\", backends = [\"127.0.0.1:9\"] }"),
            server("e", "{ type = \"forward\", pool = \"app\", balance = \"first\" }"),
        ),
    );
    assert_has(&errors, "no [[pool]] named \"nope\" (there are app)");
    assert_has(&errors, "backends comes from [[pool]] \"app\"");
    assert_has(&errors, "balance comes from [[pool]] \"app\"");
    assert_has(
        &errors,
        "pool[1].proxy_protocol: unknown key in [[pool]] \"bad\"",
    );
}

#[test]
fn new_limits_and_proxy_keys_are_checked_all_in_one_pass() {
    let pki = pki();
    let text = r#"
[[server]]
name = "web"
listen = "127.0.0.1:0"
certificates = [{ cert = "web.pem", key = "web.key" }]
http = { max_request_headers = 0 }
[server.tls]
max_client_hello = 100
[server.handler]
type = "proxy"
backends = ["127.0.0.1:8000"]
backend_protocol = "spdy"
trusted_proxies = ["10.0.0.0/33"]
keepalive = 20000
response_header_timeout = "soon"
request_headers = { set = { "bad name" = "x" } }
health_check = { interval = "5s", path = "no-slash", expect = "7xx" }
"#;
    let errors = errors(&pki, text);
    for expected in [
        "server \"web\": http.max_request_headers: must be 1 to 1000",
        "tls.max_client_hello: 100 is outside 512..=65536 bytes",
        "handler.backend_protocol: \"spdy\" is not a protocol",
        "handler.trusted_proxies: \"10.0.0.0/33\": the prefix length must be 0 to 32",
        "handler.keepalive: at most 10000 idle connections",
        "handler.response_header_timeout",
        "handler.request_headers.set: \"bad name\" is not a header name",
        "handler.health_check.expect: \"7xx\" is not a status",
    ] {
        assert_has(&errors, expected);
    }
}
