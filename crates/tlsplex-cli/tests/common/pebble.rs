//! Pebble (Debian's `pebble` and `pebble-challtestsrv`) for the ACME tests, and the client
//! side of checking what a server presents.
#![allow(dead_code)] // each ACME test uses its own part of this

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crate::common::{free_port, Daemon};
use tlsplex_testkit::TestPki;

/// Pebble and its DNS (every name 127.0.0.1, but `bad.test`: 127.0.0.2, where nothing listens),
/// validating TLS-ALPN-01 on `tls_port`.
pub struct Pebble {
    processes: Vec<Daemon>,
    config: std::path::PathBuf,
    ports: [u16; 4],
    pub directory: String,
    /// Issuances counted so far (the log is read once).
    issued: std::cell::Cell<usize>,
    /// The DNS server Pebble asks instead of pebble-challtestsrv's.
    dns: Option<SocketAddr>,
}

impl Pebble {
    /// Ports and configuration; nothing runs until [`Pebble::start`].
    pub fn new(dir: &Path, pki: &TestPki, tls_port: u16, validity_secs: u64) -> Self {
        Self::with_http_port(dir, pki, tls_port, free_port(), validity_secs)
    }

    /// [`Pebble::new`], validating HTTP-01 on `http_port`.
    pub fn with_http_port(
        dir: &Path,
        pki: &TestPki,
        tls_port: u16,
        http_port: u16,
        validity_secs: u64,
    ) -> Self {
        let listen = pki.issue("pebble", &["localhost"]);
        let ports = [free_port(), free_port(), free_port(), free_port()];
        let [acme, management, _, _] = ports;
        let config = dir.join("pebble.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"pebble":{{"listenAddress":"127.0.0.1:{acme}","managementListenAddress":"127.0.0.1:{management}",
"certificate":"{}","privateKey":"{}","httpPort":{http_port},"tlsPort":{tls_port},"ocspResponderURL":"",
"externalAccountBindingRequired":false,"certificateValidityPeriod":{validity_secs}}}}}"#,
                listen.cert_path.display(),
                listen.key_path.display(),
            ),
        )
        .unwrap();
        Self {
            processes: Vec::new(),
            config,
            ports,
            directory: format!("https://localhost:{acme}/dir"),
            issued: std::cell::Cell::new(0),
            dns: None,
        }
    }

    /// Makes Pebble resolve names (DNS-01's TXT records) through `dns` once started.
    pub fn resolve_with(&mut self, dns: SocketAddr) {
        self.dns = Some(dns);
    }

    /// pebble-challtestsrv's DNS server (the one Pebble asks unless told otherwise).
    pub fn challtestsrv_dns(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports[2]))
    }

    /// pebble-challtestsrv's management API (`/set-txt`, `/clear-txt`, …).
    pub fn challtestsrv_management(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports[3])
    }

    pub fn start(&mut self) {
        let [acme, _, dns, dns_management] = self.ports;
        let dns_addr = format!("127.0.0.1:{dns}");
        let resolver = self.dns.map_or(dns_addr.clone(), |dns| dns.to_string());
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
        self.add_a("bad.test", "127.0.0.2");
        let mut ca = Daemon::start_program(
            "pebble",
            &[
                "-config",
                self.config.to_str().unwrap(),
                "-dnsserver",
                &resolver,
            ],
            &[("PEBBLE_VA_NOSLEEP", "1"), ("PEBBLE_WFE_NONCEREJECT", "0")],
        );
        ca.wait_listening(&[SocketAddr::from(([127, 0, 0, 1], acme))]);
        self.processes = vec![ca, challtestsrv];
    }

    /// Makes the DNS answer `ip` for `host` (once started).
    pub fn add_a(&self, host: &str, ip: &str) {
        let added = Command::new("curl")
            .args(["-sS", "-d"])
            .arg(format!(r#"{{"host":"{host}","addresses":["{ip}"]}}"#))
            .arg(format!("http://127.0.0.1:{}/add-a", self.ports[3]))
            .status()
            .unwrap();
        assert!(added.success());
    }

    /// The root issued certificates chain to, from the management API.
    pub fn root(&self, tls_ca: &Path) -> rustls::RootCertStore {
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
    pub fn issued(&self) -> usize {
        let ca = &self.processes[0];
        let log = ca.stdout_text() + &ca.stderr_text();
        let new = log.matches("Issued certificate serial").count();
        self.issued.set(self.issued.get() + new);
        self.issued.get()
    }
}

/// The log line of an issuance (JSON logs), not the reload it causes.
pub const ISSUED: &str = r#""message":"certificate issued""#;

pub fn client(roots: rustls::RootCertStore) -> Arc<rustls::ClientConfig> {
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
pub fn leaf(port: u16, name: &str, config: &Arc<rustls::ClientConfig>) -> Vec<u8> {
    try_leaf(port, name, config).unwrap()
}

pub fn try_leaf(
    port: u16,
    name: &str,
    config: &Arc<rustls::ClientConfig>,
) -> std::io::Result<Vec<u8>> {
    try_leaf_at(SocketAddr::from(([127, 0, 0, 1], port)), name, config)
}

/// Handshakes with `name` at `addr`; the leaf presented.
pub fn try_leaf_at(
    addr: SocketAddr,
    name: &str,
    config: &Arc<rustls::ClientConfig>,
) -> std::io::Result<Vec<u8>> {
    let server_name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
    let mut tls = rustls::ClientConnection::new(config.clone(), server_name).unwrap();
    let mut tcp = std::net::TcpStream::connect(addr)?;
    while tls.is_handshaking() {
        tls.complete_io(&mut tcp)?;
    }
    Ok(tls.peer_certificates().unwrap()[0].to_vec())
}

/// The leaf served for `name` once it is served and is not `old` (the reload after an
/// issuance may take a moment under load); panics after 15 s.
pub fn served_other_than(
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

/// Handshake error text for `name` on `port` (which must fail).
pub fn refused(port: u16, name: &str, config: &Arc<rustls::ClientConfig>) -> String {
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
