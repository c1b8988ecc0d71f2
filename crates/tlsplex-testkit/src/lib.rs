//! Test helpers for tlsplex: an in-memory PKI (rcgen), a rustls client, and a minimal HTTP/1.1
//! exchange over it. Dev-only: these helpers panic on setup failures, as tests should.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod http_backend;

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams,
    SerialNumber, SignatureAlgorithm,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tlsplex::{CertStore, Context, Identity, Server, ServerOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Binds a server and runs it in a task; returns its address. Call within a tokio runtime.
pub fn start(ctx: &Context, options: ServerOptions) -> SocketAddr {
    let server = Server::bind(ctx, options).unwrap();
    let addr = server.local_addr();
    tokio::spawn(server.run());
    addr
}

/// A port that was free on 127.0.0.1 a moment ago, for configs that must name one. Never the
/// same port twice in one test process: the kernel may hand a just-closed port out again, and
/// a test asking for five ports must get five.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// This process's resident memory (VmRSS), KiB: for tests that measure what an attack or a
/// feature costs; each such test has its own test binary, so the process is the test's.
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A plaintext backend on loopback that echoes every connection's bytes back and half-closes
/// when the client does.
pub async fn echo_backend() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(echo(stream));
        }
    });
    addr
}

/// Echoes a stream's bytes back to it, then half-closes when the peer does.
pub async fn echo<S: tokio::io::AsyncRead + tokio::io::AsyncWrite>(stream: S) {
    let (mut read, mut write) = tokio::io::split(stream);
    let _ = tokio::io::copy(&mut read, &mut write).await;
    let _ = write.shutdown().await;
}

/// Headless Chromium with the flags every browser test uses (no sandbox, GPU, background
/// traffic, sync or QUIC), its profile in `profile`, stderr dropped, under `timeout SECS` when
/// `limit` is given; the caller adds its own flags and the URL.
pub fn headless_chromium(profile: &std::path::Path, limit: Option<u64>) -> std::process::Command {
    let mut command = match limit {
        Some(secs) => {
            let mut timeout = std::process::Command::new("timeout");
            timeout.arg(secs.to_string()).arg("chromium");
            timeout
        }
        None => std::process::Command::new("chromium"),
    };
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .args([
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .stderr(std::process::Stdio::null());
    command
}

/// Whether `program` can be run; with `CI=true` a missing one fails the test instead.
pub fn available(program: &str) -> bool {
    let found = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{program} is required in CI (.ci/run installs it)"
        );
        eprintln!("skipping the {program} part: {program} is not installed");
    }
    found
}

/// `127.0.0.1:0`: let the kernel pick the port.
pub fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A throwaway certificate authority, with a folder for the files tests write.
pub struct TestPki {
    ca_params: CertificateParams,
    ca_key: KeyPair,
    ca_cert: rcgen::Certificate,
    dir: tempfile::TempDir,
}

/// A leaf certificate issued by a [`TestPki`], as PEM text and as files.
pub struct TestCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM (PKCS#8).
    pub key_pem: String,
    /// The certificate, DER.
    pub cert_der: CertificateDer<'static>,
    /// Where the certificate was written.
    pub cert_path: PathBuf,
    /// Where the key was written.
    pub key_path: PathBuf,
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

impl TestPki {
    /// A new CA with an ECDSA P-256 key.
    pub fn new() -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "tlsplex test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.clone().self_signed(&ca_key).unwrap();
        Self {
            ca_params,
            ca_key,
            ca_cert,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The folder this PKI writes its files to (removed when the PKI is dropped).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> String {
        self.ca_cert.pem()
    }

    /// Writes the CA certificate to `ca.pem` in [`TestPki::dir`] and returns the path.
    pub fn ca_file(&self) -> PathBuf {
        let path = self.dir().join("ca.pem");
        std::fs::write(&path, self.ca_pem()).unwrap();
        path
    }

    /// Writes the CA's private key to `ca.key` (for tools such as `openssl ocsp`).
    pub fn ca_key_file(&self) -> PathBuf {
        let path = self.dir().join("ca.key");
        std::fs::write(&path, self.ca_key.serialize_pem()).unwrap();
        path
    }

    /// Issues a server leaf (ECDSA P-256) for `names` (DNS names or IP addresses) with CN
    /// `names[0]`, written to `<file_stem>.pem` and `<file_stem>.key`.
    pub fn issue(&self, file_stem: &str, names: &[&str]) -> TestCert {
        self.issue_with(file_stem, names, &rcgen::PKCS_ECDSA_P256_SHA256)
    }

    /// As [`TestPki::issue`], with a key of the given algorithm (P-384, Ed25519, RSA…).
    pub fn issue_with(
        &self,
        file_stem: &str,
        names: &[&str],
        algorithm: &'static SignatureAlgorithm,
    ) -> TestCert {
        let key = match KeyPair::generate_for(algorithm) {
            Ok(key) => key,
            Err(_) => KeyPair::generate_rsa_for(algorithm, rcgen::RsaKeySize::_2048).unwrap(),
        };
        let params = server_params(names);
        self.sign(file_stem, params, key)
    }

    /// As [`TestPki::issue`], valid for `days` from now (a certificate about to expire).
    pub fn issue_for_days(&self, file_stem: &str, names: &[&str], days: i64) -> TestCert {
        let key = KeyPair::generate().unwrap();
        let mut params = server_params(names);
        params.not_before = time::OffsetDateTime::now_utc() - time::Duration::minutes(5);
        params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(days);
        self.sign(file_stem, params, key)
    }

    /// Issues a client certificate with CN `name` and serial number `serial` (for CRLs).
    pub fn issue_client(&self, file_stem: &str, name: &str, serial: u64) -> TestCert {
        self.issue_client_until(file_stem, name, serial, None)
    }

    /// As [`TestPki::issue_client`], valid until `not_after` when given.
    pub fn issue_client_until(
        &self,
        file_stem: &str,
        name: &str,
        serial: u64,
        not_after: Option<time::OffsetDateTime>,
    ) -> TestCert {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.serial_number = Some(SerialNumber::from(serial));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if let Some(not_after) = not_after {
            params.not_before = time::OffsetDateTime::now_utc() - time::Duration::minutes(5);
            params.not_after = not_after;
        }
        self.sign(file_stem, params, key)
    }

    fn sign(&self, file_stem: &str, params: CertificateParams, key: KeyPair) -> TestCert {
        let issuer = rcgen::Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        let cert_path = self.dir().join(format!("{file_stem}.pem"));
        let key_path = self.dir().join(format!("{file_stem}.key"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        TestCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            cert_path,
            key_path,
        }
    }

    /// Writes a CRL revoking `serials` to `<file_stem>.crl` (PEM) and returns its path.
    pub fn crl(&self, file_stem: &str, serials: &[u64]) -> PathBuf {
        let now = time::OffsetDateTime::now_utc();
        let params = CertificateRevocationListParams {
            this_update: now - time::Duration::minutes(5),
            next_update: now + time::Duration::days(7),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|serial| RevokedCertParams {
                    serial_number: SerialNumber::from(*serial),
                    revocation_time: now - time::Duration::minutes(1),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let issuer = rcgen::Issuer::from_params(&self.ca_params, &self.ca_key);
        let crl = params.signed_by(&issuer).unwrap();
        let path = self.dir().join(format!("{file_stem}.crl"));
        std::fs::write(&path, crl.pem().unwrap()).unwrap();
        path
    }

    /// A root store holding this CA.
    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_cert.der().clone()).unwrap();
        roots
    }

    /// A rustls client trusting this CA, offering `alpn`.
    pub fn client(&self, alpn: &[&str]) -> Arc<ClientConfig> {
        Arc::new(self.client_builder(rustls::DEFAULT_VERSIONS, alpn, None))
    }

    /// A rustls client trusting this CA, offering only `versions`, presenting `cert` if given.
    pub fn client_builder(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
        alpn: &[&str],
        cert: Option<&TestCert>,
    ) -> ClientConfig {
        let roots = self.roots();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots);
        let mut config = match cert {
            Some(cert) => {
                let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes())
                    .unwrap();
                builder
                    .with_client_auth_cert(vec![cert.cert_der.clone()], key)
                    .unwrap()
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        config
    }
}

impl TestCert {
    /// The certificate and key as a tlsplex identity.
    pub fn identity(&self) -> Identity {
        Identity::from_pem(self.cert_pem.as_bytes(), self.key_pem.as_bytes()).unwrap()
    }

    /// A store holding only this identity.
    pub fn store(&self) -> Arc<CertStore> {
        Arc::new(CertStore::single(self.identity()))
    }
}

/// Connects to `addr` and completes a TLS handshake asking for `sni`.
pub async fn connect(
    addr: SocketAddr,
    sni: &str,
    config: Arc<ClientConfig>,
) -> io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(sni.to_owned())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    TlsConnector::from(config).connect(name, tcp).await
}

/// An HTTP/1.1 response, as read by [`get`].
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header lines, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body, as text.
    pub body: String,
}

impl Response {
    /// The first header called `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// Sends `GET path` with `Connection: close` on an established stream and reads the response.
pub async fn request<S>(stream: &mut S, host: &str, path: &str) -> io::Result<Response>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    read_response(stream).await
}

/// Reads one HTTP/1.1 response with a `Content-Length` body.
pub async fn read_response<S>(stream: &mut S) -> io::Result<Response>
where
    S: tokio::io::AsyncRead + Unpin,
{
    read_response_to(stream, true).await
}

/// Connects, sends `raw` (a whole HTTP/1.1 request) and reads the response; `has_body` is false
/// for answers to HEAD and for 304s, whose `Content-Length` announces no bytes.
pub async fn exchange(
    addr: SocketAddr,
    sni: &str,
    config: Arc<ClientConfig>,
    raw: &str,
    has_body: bool,
) -> io::Result<Response> {
    let mut stream = connect(addr, sni, config).await?;
    stream.write_all(raw.as_bytes()).await?;
    read_response_to(&mut stream, has_body).await
}

async fn read_response_to<S>(stream: &mut S, has_body: bool) -> io::Result<Response>
where
    S: tokio::io::AsyncRead + Unpin,
{
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
        * usize::from(has_body);
    let mut body = buffer[header_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Connects, handshakes with `sni`, and GETs `path` over HTTP/1.1. Returns the response and the
/// certificate the server presented.
pub async fn get(
    addr: SocketAddr,
    sni: &str,
    path: &str,
    config: Arc<ClientConfig>,
) -> io::Result<(Response, CertificateDer<'static>)> {
    let mut stream = connect(addr, sni, config).await?;
    let cert = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .cloned()
        .ok_or_else(|| io::Error::other("no peer certificate"))?;
    let response = request(&mut stream, sni, path).await?;
    Ok((response, cert))
}

/// Waits until `check` holds, polling every 10 ms, for at most `limit`; false if it never did.
pub async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    check()
}

/// A server certificate's parameters: `names` as subjectAltNames, the first as CN.
fn server_params(names: &[&str]) -> CertificateParams {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, names.first().copied().unwrap_or("leaf"));
    params
}
