//! What a person wants to know about a certificate: subject, names, expiry, fingerprint.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// A readable summary of one X.509 certificate, for logs, the status page and `tlsplex probe`.
/// In JSON, times are RFC 3339 text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct CertSummary {
    /// The subject distinguished name, e.g. `CN=localhost`.
    pub subject: String,
    /// The subject's common name, if it has one.
    pub common_name: Option<String>,
    /// The issuer distinguished name.
    pub issuer: String,
    /// DNS names from the subjectAltName extension.
    pub dns_names: Vec<String>,
    /// IP addresses from the subjectAltName extension.
    pub ip_addresses: Vec<IpAddr>,
    /// Start of the validity period.
    #[serde(serialize_with = "rfc3339")]
    pub not_before: SystemTime,
    /// End of the validity period.
    #[serde(serialize_with = "rfc3339")]
    pub not_after: SystemTime,
    /// SHA-256 of the DER encoding, as colon-separated upper-case hex (the form browsers show).
    pub sha256_fingerprint: String,
}

impl CertSummary {
    /// Summarises a DER-encoded certificate; `None` when it does not parse as X.509.
    pub fn from_der(der: &[u8]) -> Option<Self> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let mut dns_names = Vec::new();
        let mut ip_addresses = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => dns_names.push(dns.to_string()),
                    GeneralName::IPAddress(bytes) => {
                        if let Some(ip) = ip_from_bytes(bytes) {
                            ip_addresses.push(ip);
                        }
                    }
                    _ => {}
                }
            }
        }
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned);
        let validity = cert.validity();
        Some(Self {
            subject: cert.subject().to_string(),
            common_name,
            issuer: cert.issuer().to_string(),
            dns_names,
            ip_addresses,
            not_before: system_time(validity.not_before.timestamp()),
            not_after: system_time(validity.not_after.timestamp()),
            sha256_fingerprint: sha256_fingerprint(der),
        })
    }

    /// All subjectAltNames, DNS names first, as text.
    pub fn names(&self) -> Vec<String> {
        let ips = self.ip_addresses.iter().map(ToString::to_string);
        self.dns_names.iter().cloned().chain(ips).collect()
    }

    /// The name a metric labels this certificate with: its first DNS name, else its first IP
    /// address, else its common name, else its subject.
    pub fn label_name(&self) -> String {
        self.dns_names
            .first()
            .cloned()
            .or_else(|| self.ip_addresses.first().map(ToString::to_string))
            .or_else(|| self.common_name.clone())
            .unwrap_or_else(|| self.subject.clone())
    }

    /// Whole days from `now` until the certificate expires; negative once it has expired.
    pub fn days_until_expiry(&self, now: SystemTime) -> i64 {
        let seconds = match self.not_after.duration_since(now) {
            Ok(left) => i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
            Err(past) => -i64::try_from(past.duration().as_secs()).unwrap_or(i64::MAX),
        };
        seconds.div_euclid(86_400)
    }
}

/// SHA-256 of `der` as colon-separated upper-case hex.
pub fn sha256_fingerprint(der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    let mut out = String::with_capacity(95);
    for (i, byte) in digest.as_ref().iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        let _ = write!(out, "{byte:02X}");
    }
    out
}

fn rfc3339<S: serde::Serializer>(time: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&humantime::format_rfc3339_seconds(*time))
}

fn system_time(unix_seconds: i64) -> SystemTime {
    match u64::try_from(unix_seconds) {
        Ok(secs) => UNIX_EPOCH + Duration::from_secs(secs),
        Err(_) => UNIX_EPOCH - Duration::from_secs(unix_seconds.unsigned_abs()),
    }
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}
