//! `tlsplex probe`: the seed's validation as a command. For each address: is it listening, does a
//! real TLS handshake complete, and what did it settle (protocol, suite, ALPN, certificate).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use std::sync::atomic::{AtomicBool, Ordering};

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore};
use serde::Serialize;
use tlsplex::{tls_version_name, CertSummary, ConfigOutline};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::cli::ProbeArgs;

mod report;
mod verify;

use verify::{AnyCertificate, ClientCertOnRequest, Observing};

/// One address to probe.
struct Target {
    /// As the user wrote it, or the config's listen address.
    address: String,
    /// The config's server name, when probing a config.
    server: Option<String>,
    host: String,
    port: u16,
    /// SNI and the name the certificate is verified against.
    servername: Option<String>,
}

/// What one probe found; serialised as is by `--json`.
#[derive(Debug, Default, Serialize)]
struct Outcome {
    address: String,
    server: Option<String>,
    ok: bool,
    error: Option<String>,
    tls_version: Option<String>,
    cipher_suite: Option<String>,
    /// The key-exchange group, e.g. `X25519MLKEM768`.
    key_exchange_group: Option<String>,
    alpn: Option<String>,
    subject: Option<String>,
    names: Vec<String>,
    not_after: Option<String>,
    days_until_expiry: Option<i64>,
    sha256_fingerprint: Option<String>,
    /// Whether the server asked for a client certificate.
    client_cert_requested: bool,
    /// Whether the server stapled an OCSP response.
    ocsp_stapled: bool,
    handshake_ms: Option<f64>,
}

pub fn run(args: ProbeArgs) -> ExitCode {
    let targets = match targets(&args) {
        Ok(targets) => targets,
        Err(error) => {
            eprintln!("tlsplex probe: {error}");
            return ExitCode::from(2);
        }
    };
    let trust = match Trust::from_args(&args) {
        Ok(trust) => trust,
        Err(error) => {
            eprintln!("tlsplex probe: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tlsplex probe: cannot start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    let outcomes: Vec<Outcome> = runtime.block_on(async {
        let mut outcomes = Vec::with_capacity(targets.len());
        for target in &targets {
            outcomes.push(probe(target, &trust, args.timeout).await);
        }
        outcomes
    });
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&outcomes).unwrap_or_default()
        );
    } else {
        report::print_table(&outcomes);
    }
    let mut expiring = false;
    if let Some(min_days) = args.min_days {
        for outcome in outcomes.iter().filter(|o| o.ok) {
            if let Some(days) = outcome.days_until_expiry.filter(|days| *days < min_days) {
                eprintln!(
                    "tlsplex probe: {}: the certificate expires in {days} day(s), under --min-days {min_days}",
                    outcome.address
                );
                expiring = true;
            }
        }
    }
    if outcomes.iter().all(|o| o.ok) && !expiring {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn targets(args: &ProbeArgs) -> Result<Vec<Target>, String> {
    let mut targets = Vec::new();
    for address in &args.addresses {
        let (host, port) = split_host_port(address)
            .ok_or_else(|| format!("{address:?} is not HOST:PORT (e.g. 127.0.0.1:1440)"))?;
        let servername = args
            .servername
            .clone()
            .or_else(|| host.parse::<IpAddr>().is_err().then(|| host.clone()));
        targets.push(Target {
            address: address.clone(),
            server: None,
            host,
            port,
            servername,
        });
    }
    if let Some(path) = &args.config {
        // The outline reads no private key: probe -c works for whoever may read the config.
        let config = ConfigOutline::load(path).map_err(|e| e.to_string())?;
        for server in &config.servers {
            let ip = match server.listen.ip() {
                IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
                ip => ip,
            };
            let servername = args.servername.clone().or_else(|| {
                server
                    .certificate_files
                    .first()
                    .and_then(|file| first_dns_name(file))
            });
            targets.push(Target {
                address: server.listen.to_string(),
                server: Some(server.name.clone()),
                host: ip.to_string(),
                port: server.listen.port(),
                servername,
            });
        }
    }
    Ok(targets)
}

/// The first exact DNS name of the first certificate in a PEM file, if it can be read.
fn first_dns_name(file: &std::path::Path) -> Option<String> {
    let pem = tlsplex::files::read_limited(file, tlsplex::files::MAX_MATERIAL_FILE).ok()?;
    let leaf = CertificateDer::pem_slice_iter(&pem).next()?.ok()?;
    let summary = tlsplex::CertSummary::from_der(&leaf)?;
    summary
        .dns_names
        .into_iter()
        .find(|name| !name.starts_with("*."))
}

/// `host:port`, `[v6]:port` or `v6-literal` forms; the host keeps no brackets.
fn split_host_port(address: &str) -> Option<(String, u16)> {
    if let Ok(addr) = address.parse::<SocketAddr>() {
        return Some((addr.ip().to_string(), addr.port()));
    }
    let (host, port) = address.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| Some((host.to_owned(), port.parse().ok()?)))?
}

/// How the probe verifies servers and what it presents, loaded once for every target.
struct Trust {
    provider: Arc<CryptoProvider>,
    /// `None`: `--insecure`.
    roots: Option<Arc<RootCertStore>>,
    client_cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
}

impl Trust {
    fn from_args(args: &ProbeArgs) -> Result<Self, String> {
        let roots = if args.insecure {
            None
        } else {
            let mut roots = RootCertStore::empty();
            match &args.ca {
                Some(path) => {
                    let certs = CertificateDer::pem_file_iter(path)
                        .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
                    for cert in certs {
                        let cert = cert.map_err(|e| format!("CA file {}: {e}", path.display()))?;
                        roots
                            .add(cert)
                            .map_err(|e| format!("CA file {}: {e}", path.display()))?;
                    }
                    if roots.is_empty() {
                        return Err(format!("CA file {} holds no certificate", path.display()));
                    }
                }
                None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            Some(Arc::new(roots))
        };
        let client_cert = match (&args.cert, &args.key) {
            (Some(cert), Some(key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| format!("client certificate {}: {e}", cert.display()))?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| format!("client key {}: {e}", key.display()))?;
                Some((chain, key))
            }
            _ => None,
        };
        // Offer the post-quantum hybrid first, as browsers, Go and OpenSSL 3.5+ do, so the probe
        // sees what they get.
        let mut provider = rustls::crypto::aws_lc_rs::default_provider();
        provider
            .kx_groups
            .sort_by_key(|group| group.name() != rustls::NamedGroup::X25519MLKEM768);
        Ok(Self {
            provider: Arc::new(provider),
            roots,
            client_cert,
        })
    }

    /// A client configuration for one probe, reporting into `seen`.
    fn client_config(&self, seen: &Arc<Observed>) -> Result<ClientConfig, String> {
        let verifier: Arc<dyn ServerCertVerifier> = match &self.roots {
            Some(roots) => {
                WebPkiServerVerifier::builder_with_provider(roots.clone(), self.provider.clone())
                    .build()
                    .map_err(|e| e.to_string())?
            }
            None => Arc::new(AnyCertificate(self.provider.clone())),
        };
        let client_cert = match &self.client_cert {
            Some((chain, key)) => {
                let key = self
                    .provider
                    .key_provider
                    .load_private_key(key.clone_key())
                    .map_err(|e| format!("client key: {e}"))?;
                Some(Arc::new(CertifiedKey::new(chain.clone(), key)))
            }
            None => None,
        };
        let mut config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Observing {
                inner: verifier,
                seen: seen.clone(),
            }))
            .with_client_cert_resolver(Arc::new(ClientCertOnRequest {
                cert: client_cert,
                seen: seen.clone(),
            }));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// What the probe noticed during one handshake.
#[derive(Debug, Default)]
struct Observed {
    pub(super) client_cert_requested: AtomicBool,
    pub(super) ocsp_stapled: AtomicBool,
}

async fn probe(target: &Target, trust: &Trust, timeout: Duration) -> Outcome {
    let mut outcome = Outcome {
        address: target.address.clone(),
        server: target.server.clone(),
        ..Outcome::default()
    };
    let seen = Arc::new(Observed::default());
    let result = match trust.client_config(&seen) {
        Ok(config) => handshake(target, Arc::new(config), &seen, timeout, &mut outcome).await,
        Err(error) => Err(error),
    };
    outcome.client_cert_requested = seen.client_cert_requested.load(Ordering::Relaxed);
    outcome.ocsp_stapled = seen.ocsp_stapled.load(Ordering::Relaxed);
    match result {
        Ok(()) => outcome.ok = true,
        Err(error) => outcome.error = Some(error),
    }
    outcome
}

/// In TLS 1.3 the server judges the client's certificate after the client considers the
/// handshake done, and says no with an alert. Wait briefly for one.
async fn refused_after_handshake(
    tls: &mut tokio_rustls::client::TlsStream<TcpStream>,
) -> Result<(), String> {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(Duration::from_millis(300), tls.read(&mut byte)).await {
        Ok(Err(error)) => Err(format!(
            "refused by the server after the handshake: {error}"
        )),
        Ok(Ok(0)) => Err("the server closed the connection right after the handshake".to_owned()),
        Ok(Ok(_)) | Err(_) => Ok(()),
    }
}

async fn handshake(
    target: &Target,
    config: Arc<ClientConfig>,
    seen: &Observed,
    timeout: Duration,
    outcome: &mut Outcome,
) -> Result<(), String> {
    let server_name = match &target.servername {
        Some(name) => ServerName::try_from(name.clone())
            .map_err(|_| format!("{name:?} is not a valid server name"))?,
        None => match target.host.parse::<IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(target.host.clone())
                .map_err(|_| format!("{:?} is not a valid host", target.host))?,
        },
    };
    let tcp = tokio::time::timeout(
        timeout,
        TcpStream::connect((target.host.as_str(), target.port)),
    )
    .await
    .map_err(|_| {
        format!(
            "not listening: no answer within {}",
            humantime::format_duration(timeout)
        )
    })?
    .map_err(|e| format!("not listening: {e}"))?;
    let started = Instant::now();
    let tls = tokio::time::timeout(
        timeout,
        TlsConnector::from(config).connect(server_name, tcp),
    )
    .await
    .map_err(|_| {
        format!(
            "handshake did not complete within {}",
            humantime::format_duration(timeout)
        )
    })?
    .map_err(|e| format!("handshake failed: {e}"))?;
    outcome.handshake_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
    let mut tls = tls;
    if tls.get_ref().1.peer_certificates().is_some()
        && seen.client_cert_requested.load(Ordering::Relaxed)
    {
        refused_after_handshake(&mut tls).await?;
    }
    let (_, connection) = tls.get_ref();
    outcome.tls_version = connection.protocol_version().map(tls_version_name);
    outcome.cipher_suite = connection
        .negotiated_cipher_suite()
        .and_then(|s| s.suite().as_str())
        .map(str::to_owned);
    outcome.key_exchange_group = connection
        .negotiated_key_exchange_group()
        .and_then(|group| group.name().as_str())
        .map(str::to_owned);
    outcome.alpn = connection
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let leaf = connection
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|der| CertSummary::from_der(der));
    if let Some(cert) = leaf {
        outcome.subject = Some(cert.subject.clone());
        outcome.names = cert.names();
        outcome.not_after = Some(humantime::format_rfc3339_seconds(cert.not_after).to_string());
        outcome.days_until_expiry = Some(cert.days_until_expiry(SystemTime::now()));
        outcome.sha256_fingerprint = Some(cert.sha256_fingerprint);
    }
    // Say goodbye properly (close_notify), so the server logs a clean close.
    let _ = tokio::time::timeout(timeout, tls.shutdown()).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::split_host_port;

    #[test]
    fn host_port_forms() {
        let split = |s| split_host_port(s);
        assert_eq!(split("127.0.0.1:1440"), Some(("127.0.0.1".into(), 1440)));
        assert_eq!(split("[::1]:443"), Some(("::1".into(), 443)));
        assert_eq!(split("localhost:1441"), Some(("localhost".into(), 1441)));
        assert_eq!(split("localhost"), None);
        assert_eq!(split(":443"), None);
        assert_eq!(split("host:99999"), None);
    }
}
