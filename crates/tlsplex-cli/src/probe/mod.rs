//! `tlsplex probe`: the seed's validation as a command. For each address: is it listening, does a
//! real TLS handshake complete, and what did it settle (protocol, suite, ALPN, certificate).

use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use std::sync::atomic::{AtomicBool, Ordering};

use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use serde::Serialize;
use tlsplex::conn::Negotiated;
use tlsplex::tls::CertSummary;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::cli::ProbeArgs;

mod report;
mod target;
mod trust;
mod verify;

use target::{targets, Target};
use trust::Trust;

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
    // The same description the server's status page and access log use.
    let negotiated = Negotiated::of(connection);
    let known = |text: String| (!text.is_empty()).then_some(text);
    outcome.tls_version = known(negotiated.tls_version);
    outcome.cipher_suite = known(negotiated.cipher_suite);
    outcome.key_exchange_group = negotiated.key_exchange_group.map(str::to_owned);
    outcome.alpn = negotiated.alpn;
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
