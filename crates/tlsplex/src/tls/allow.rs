//! Client-certificate allow-lists: which verified certificates a server (or route) serves, by
//! subject common name, DNS SAN (`*.` wildcards matching one label) or URI SAN (SPIFFE IDs). A
//! certificate that chains to a trusted CA but matches none is refused with `access_denied`.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The identities a client certificate may carry to be served; a certificate is allowed when
/// any one of its names is listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    /// Subject common names, exactly.
    pub cn: Vec<String>,
    /// DNS names; `*.example.com` allows any one label under it.
    pub dns: Vec<String>,
    /// URI names exactly, e.g. `spiffe://example.org/ns/web/sa/api`.
    pub uri: Vec<String>,
}

/// The names a client certificate carries.
struct ClientNames {
    subject: String,
    cn: Vec<String>,
    dns: Vec<String>,
    uri: Vec<String>,
}

impl ClientNames {
    fn of(der: &[u8]) -> Option<Self> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let cn = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok().map(str::to_owned))
            .collect();
        let (mut dns, mut uri) = (Vec::new(), Vec::new());
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(name) => dns.push(name.to_ascii_lowercase()),
                    GeneralName::URI(name) => uri.push((*name).to_owned()),
                    _ => {}
                }
            }
        }
        Some(Self {
            subject: cert.subject().to_string(),
            cn,
            dns,
            uri,
        })
    }
}

impl AllowList {
    /// Whether the list names nothing (and so would refuse every certificate).
    pub fn is_empty(&self) -> bool {
        self.cn.is_empty() && self.dns.is_empty() && self.uri.is_empty()
    }

    fn allows(&self, names: &ClientNames) -> bool {
        names.cn.iter().any(|cn| self.cn.contains(cn))
            || names.uri.iter().any(|uri| self.uri.contains(uri))
            || names
                .dns
                .iter()
                .any(|name| self.dns.iter().any(|pattern| dns_matches(pattern, name)))
    }

    /// Bytes that stand for the list in a policy's fingerprint.
    pub(crate) fn digest_input(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        for (kind, names) in [(b'c', &self.cn), (b'd', &self.dns), (b'u', &self.uri)] {
            for name in names {
                bytes.push(kind);
                bytes.extend_from_slice(&(name.len() as u64).to_be_bytes());
                bytes.extend_from_slice(name.as_bytes());
            }
        }
        bytes
    }
}

fn dns_matches(pattern: &str, name: &str) -> bool {
    let (pattern, name) = (pattern.to_ascii_lowercase(), name.to_ascii_lowercase());
    match pattern.strip_prefix("*.") {
        Some(parent) => name
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && label != "*" && rest == parent),
        None => pattern == name,
    }
}

/// A verifier that asks `inner` first, then the allow-list.
#[derive(Debug)]
pub(crate) struct AllowListVerifier {
    pub(crate) inner: Arc<dyn ClientCertVerifier>,
    pub(crate) allow: AllowList,
}

impl ClientCertVerifier for AllowListVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let names = ClientNames::of(end_entity).ok_or(rustls::Error::InvalidCertificate(
            CertificateError::BadEncoding,
        ))?;
        if self.allow.allows(&names) {
            return Ok(verified);
        }
        tracing::info!(
            subject = %names.subject,
            dns = names.dns.join(","),
            uri = names.uri.join(","),
            "client certificate refused: not on the allow-list"
        );
        Err(rustls::Error::InvalidCertificate(
            CertificateError::ApplicationVerificationFailure,
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::dns_matches;

    #[test]
    fn dns_patterns_match_one_label() {
        assert!(dns_matches("api.svc.test", "API.svc.test"));
        assert!(dns_matches("*.svc.test", "api.svc.test"));
        assert!(!dns_matches("*.svc.test", "a.api.svc.test"));
        assert!(!dns_matches("*.svc.test", "svc.test"));
        assert!(!dns_matches("api.svc.test", "web.svc.test"));
    }
}
