//! ACME against Pebble (Debian's `pebble` and `pebble-challtestsrv`): two servers' names issued
//! by TLS-ALPN-01 and served, the stored certificate reused at restart with no new order, and a
//! renewal before expiry that keeps a long-lived connection.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::{available, free_port, Daemon};
use tlsplex_testkit::TestPki;

/// Pebble and its DNS (every name 127.0.0.1, but `bad.test`: 127.0.0.2, where nothing listens),
/// validating TLS-ALPN-01 on `tls_port`.
struct Pebble {
    processes: Vec<Daemon>,
    config: std::path::PathBuf,
    ports: [u16; 4],
    directory: String,
    /// Issuances counted so far (the log is read once).
    issued: std::cell::Cell<usize>,
}

impl Pebble {
    /// Ports and configuration; nothing runs until [`Pebble::start`].
    fn new(dir: &Path, pki: &TestPki, tls_port: u16, validity_secs: u64) -> Self {
        let listen = pki.issue("pebble", &["localhost"]);
        let ports = [free_port(), free_port(), free_port(), free_port()];
        let [acme, management, _, _] = ports;
        let config = dir.join("pebble.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"pebble":{{"listenAddress":"127.0.0.1:{acme}","managementListenAddress":"127.0.0.1:{management}",
"certificate":"{}","privateKey":"{}","httpPort":{},"tlsPort":{tls_port},"ocspResponderURL":"",
"externalAccountBindingRequired":false,"certificateValidityPeriod":{validity_secs}}}}}"#,
                listen.cert_path.display(),
                listen.key_path.display(),
                free_port()
            ),
        )
        .unwrap();
        Self {
            processes: Vec::new(),
            config,
            ports,
            directory: format!("https://localhost:{acme}/dir"),
            issued: std::cell::Cell::new(0),
        }
    }

    fn start(&mut self) {
        let [acme, _, dns, dns_management] = self.ports;
        let dns_addr = format!("127.0.0.1:{dns}");
        let dns_management = format!("127.0.0.1:{dns_management}");
        let mut challtestsrv = Daemon::start_program(
            "pebble-challtestsrv",
            &[
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",
                "-dns01",
                &dns_addr,
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-management",
                &dns_management,
            ],
            &[],
        );
        challtestsrv.wait_listening(&[dns_management.parse().unwrap()]);
        let added = Command::new("curl")
            .args([
                "-sS",
                "-d",
                r#"{"host":"bad.test","addresses":["127.0.0.2"]}"#,
            ])
            .arg(format!("http://{dns_management}/add-a"))
            .status()
            .unwrap();
        assert!(added.success());
        let mut ca = Daemon::start_program(
            "pebble",
            &[
                "-config",
                self.config.to_str().unwrap(),
                "-dnsserver",
                &dns_addr,
            ],
            &[("PEBBLE_VA_NOSLEEP", "1"), ("PEBBLE_WFE_NONCEREJECT", "0")],
        );
        ca.wait_listening(&[SocketAddr::from(([127, 0, 0, 1], acme))]);
        self.processes = vec![ca, challtestsrv];
    }

    /// The root issued certificates chain to, from the management API.
    fn root(&self, tls_ca: &Path) -> rustls::RootCertStore {
        let out = Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(tls_ca)
            .arg(format!("https://localhost:{}/roots/0", self.ports[1]))
            .output()
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        use rustls::pki_types::pem::PemObject as _;
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&out.stdout) {
            roots.add(cert.unwrap()).unwrap();
        }
        assert!(
            !roots.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        roots
    }

    /// Certificates Pebble issued so far, from its log.
    fn issued(&self) -> usize {
        let ca = &self.processes[0];
        let log = ca.stdout_text() + &ca.stderr_text();
        let new = log.matches("Issued certificate serial").count();
        self.issued.set(self.issued.get() + new);
        self.issued.get()
    }
}

/// The log line of an issuance (JSON logs), not the reload it causes.
const ISSUED: &str = r#""message":"certificate issued""#;

fn client(roots: rustls::RootCertStore) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Handshakes with `name` on `port`, verifying against `roots`; the leaf presented.
fn leaf(port: u16, name: &str, config: &Arc<rustls::ClientConfig>) -> Vec<u8> {
    try_leaf(port, name, config).unwrap()
}

fn try_leaf(port: u16, name: &str, config: &Arc<rustls::ClientConfig>) -> std::io::Result<Vec<u8>> {
    let server_name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
    let mut tls = rustls::ClientConnection::new(config.clone(), server_name).unwrap();
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port))?;
    while tls.is_handshaking() {
        tls.complete_io(&mut tcp)?;
    }
    Ok(tls.peer_certificates().unwrap()[0].to_vec())
}

/// The leaf served for `name` once it is served and is not `old` (the reload after an
/// issuance may take a moment under load); panics after 15 s.
fn served_other_than(
    port: u16,
    name: &str,
    config: &Arc<rustls::ClientConfig>,
    old: Option<&[u8]>,
) -> Vec<u8> {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        match try_leaf(port, name, config) {
            Ok(leaf) if Some(leaf.as_slice()) != old => return leaf,
            result => assert!(
                std::time::Instant::now() < deadline,
                "{name} never served a new certificate: {result:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One keep-alive HTTP/1.1 request on an open connection; its status.
fn request_on(tls: &mut rustls::ClientConnection, tcp: &mut std::net::TcpStream) -> u16 {
    use std::io::{Read, Write};
    let mut stream = rustls::Stream::new(tls, tcp);
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn config(dir: &Path, pebble: &Pebble, ca: &Path, ports: [u16; 3]) -> String {
    let [a, b, admin] = ports;
    let path = dir.join("tlsplex.toml");
    std::fs::write(
        &path,
        format!(
            r#"[admin]
listen = "127.0.0.1:{admin}"

[acme]
directory = "{}"
directory_ca = "{}"
contact = ["mailto:ops@example.test"]

[[server]]
name = "a"
listen = "127.0.0.1:{a}"
certificates = [{{ acme = ["a.test"] }}]

[[server]]
name = "b"
listen = "127.0.0.1:{b}"
certificates = [{{ acme = ["b.test", "www.b.test"] }}]

[[server]]
name = "c"
listen = "127.0.0.1:0"
certificates = [{{ acme = ["bad.test"] }}]
"#,
            pebble.directory,
            ca.display()
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// Handshake error text for `name` on `port` (which must fail).
fn refused(port: u16, name: &str, config: &Arc<rustls::ClientConfig>) -> String {
    let server_name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
    let mut tls = rustls::ClientConnection::new(config.clone(), server_name).unwrap();
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    while tls.is_handshaking() {
        if let Err(error) = tls.complete_io(&mut tcp) {
            return error.to_string();
        }
    }
    panic!("{name} was served")
}

#[test]
fn certificates_are_issued_served_reused_at_restart_and_renewed_without_dropping_a_connection() {
    if !available("pebble") || !available("pebble-challtestsrv") {
        return;
    }
    let pki = TestPki::new();
    let dir = pki.dir().to_owned();
    let (a, b, admin) = (free_port(), free_port(), free_port());
    // Short-lived certificates: a third of 30 s left comes 20 s after issuance.
    let mut pebble = Pebble::new(&dir, &pki, a, 30);
    let config = config(&dir, &pebble, &pki.ca_file(), [a, b, admin]);
    let addrs = [
        SocketAddr::from(([127, 0, 0, 1], a)),
        SocketAddr::from(([127, 0, 0, 1], b)),
    ];

    let check = common::tlsplex(&["check", "-c", &config]);
    let listed = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{check:?}");
    assert!(
        listed.contains("acme b.test, www.b.test") && listed.contains("not issued yet"),
        "{listed}"
    );

    // The CA is down at start: the servers listen anyway, refuse the names they have no
    // certificate for, and the orders are retried.
    let mut daemon = Daemon::start(&["run", "-c", &config, "--log-format", "json"]);
    daemon.wait_listening(&addrs);
    let mut log = Vec::new();
    let failed = daemon.wait_log_keeping("ACME order failed", Duration::from_secs(20), &mut log);
    assert!(failed, "{}", log.join("\n"));
    let anyone = client(rustls::RootCertStore::from_iter(
        webpki_roots::TLS_SERVER_ROOTS.iter().cloned(),
    ));
    let error = refused(a, "a.test", &anyone);
    assert!(
        error.contains("InternalError"),
        "a name waiting for its certificate is refused: {error}"
    );

    pebble.start();
    let cpu_before = daemon.cpu_time();
    let started = std::time::Instant::now();
    for _ in 0..2 {
        let issued = daemon.wait_log_keeping(ISSUED, Duration::from_secs(60), &mut log);
        assert!(issued, "issued:\n{}", log.join("\n"));
    }
    println!(
        "first issuance of two certificates (3 names), CA up to both served: {:?}, daemon CPU {:?}",
        started.elapsed(),
        daemon.cpu_time() - cpu_before
    );
    let verify = client(pebble.root(&pki.ca_file()));
    let first_a = served_other_than(a, "a.test", &verify, None);
    let first_b = served_other_than(b, "www.b.test", &verify, None);
    assert_ne!(first_a, first_b);
    assert_eq!(pebble.issued(), 2);
    let stored = dir.join("acme/certificates/b.test/key.pem");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&stored).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "keys are the owner's only");

    // A name whose validation fails is logged with the CA's problem document, and retried.
    let is_problem = |line: &String| {
        line.contains("ACME order failed")
            && line.contains("bad.test")
            && line.contains("urn:ietf:params:acme:error")
    };
    let mut problem = log.iter().find(|line| is_problem(line)).cloned();
    for _ in 0..10 {
        if problem.is_some() {
            break;
        }
        let mut more = Vec::new();
        daemon.wait_log_keeping("bad.test", Duration::from_secs(20), &mut more);
        problem = more.into_iter().find(|line| is_problem(line));
    }
    let problem = problem.unwrap_or_default();
    assert!(problem.contains("urn:ietf:params:acme:error"), "{problem}");

    // The admin API and the metrics show each managed certificate and the orders.
    let (status, body) = common::admin::http(admin, "GET", "/api/acme", None);
    assert_eq!(status, 200);
    let managed: serde_json::Value = serde_json::from_str(&body).unwrap();
    let state = |names: &str| {
        managed
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["names"].as_array().unwrap()[0] == names)
            .cloned()
            .unwrap_or_else(|| panic!("{names} in {body}"))
    };
    assert_eq!(state("a.test")["state"], "valid", "{body}");
    assert!(state("a.test")["next_order"]
        .as_str()
        .unwrap()
        .contains('T'));
    assert_eq!(state("bad.test")["state"], "failing", "{body}");
    assert!(state("bad.test")["last_error"]
        .as_str()
        .unwrap()
        .contains("urn:ietf:params:acme:error"));
    if available("chromium") {
        let dom = common::chromium(
            &format!("http://127.0.0.1:{admin}/"),
            &[
                "--virtual-time-budget=5000".to_owned(),
                "--dump-dom".to_owned(),
            ],
        );
        assert!(
            dom.contains("<td>a.test</td><td class=\"valid\">valid</td>")
                && dom.contains("<td>bad.test</td><td class=\"failing\">failing</td>"),
            "each managed certificate on the dashboard:\n{dom}"
        );
    }
    let (_, metrics) = common::admin::http(admin, "GET", "/metrics", None);
    assert!(
        metrics.contains("tlsplex_acme_orders_total{result=\"ok\"} 2"),
        "{metrics}"
    );

    // A restart reuses what is stored: no new order; a corrupted stored certificate is
    // reported and ordered again.
    daemon.signal("TERM");
    assert!(daemon.wait_exit(Duration::from_secs(10)).unwrap().success());
    std::fs::write(
        dir.join("acme/certificates/b.test/cert.pem"),
        "not a certificate",
    )
    .unwrap();
    let mut daemon = Daemon::start(&["run", "-c", &config, "--log-format", "json"]);
    daemon.wait_listening(&addrs);
    assert_eq!(
        leaf(a, "a.test", &verify),
        first_a,
        "the stored certificate is served again"
    );
    let mut log = Vec::new();
    let reissued = daemon.wait_log_keeping(ISSUED, Duration::from_secs(30), &mut log);
    assert!(reissued, "{}", log.join("\n"));
    assert!(
        log.iter()
            .any(|line| line.contains("stored ACME certificate is unusable")),
        "{}",
        log.join("\n")
    );
    assert!(log.iter().any(|line| line.contains("b.test")));
    served_other_than(b, "b.test", &verify, Some(&first_b));
    assert_eq!(
        pebble.issued(),
        3,
        "a was not ordered again at restart; b was"
    );

    // A connection opened now lives through the renewal.
    let server_name = rustls::pki_types::ServerName::try_from("a.test").unwrap();
    let mut long = rustls::ClientConnection::new(verify.clone(), server_name).unwrap();
    let mut long_tcp = std::net::TcpStream::connect(("127.0.0.1", a)).unwrap();
    while long.is_handshaking() {
        long.complete_io(&mut long_tcp).unwrap();
    }
    let cpu_before = daemon.cpu_time();
    let waited = std::time::Instant::now();
    let deadline = waited + Duration::from_secs(40);
    while leaf(a, "a.test", &verify) == first_a {
        // Keep-alive requests: the connection stays busy, as a long-lived client is.
        assert_eq!(request_on(&mut long, &mut long_tcp), 200);
        assert!(
            std::time::Instant::now() < deadline,
            "new handshakes get the renewed certificate:\n{}",
            daemon.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(pebble.issued() >= 4, "renewed by a new order");
    println!(
        "renewal wait {:?} (due 20 s after issuance), daemon CPU meanwhile {:?} (with ~4 handshakes/s of polling)",
        waited.elapsed(),
        daemon.cpu_time() - cpu_before
    );
    assert_eq!(
        request_on(&mut long, &mut long_tcp),
        200,
        "the connection opened before the renewal is still served"
    );
    daemon.signal("TERM");
    assert!(daemon.wait_exit(Duration::from_secs(10)).unwrap().success());
}
