//! Client certificates (mTLS): the CA a server trusts, its CRLs, and whether a certificate is
//! required or optional.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

use super::allow::{AllowList, AllowListVerifier};
use super::summary::CertSummary;

/// Whether a client must present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuthMode {
    /// No certificate, or one that does not verify: the handshake fails.
    Required,
    /// Anonymous clients are served; a certificate that is presented must verify.
    Optional,
}

/// A server's client-certificate policy, loaded and checked.
#[derive(Debug, Clone)]
pub struct ClientAuth {
    roots: Arc<RootCertStore>,
    crls: Vec<CertificateRevocationListDer<'static>>,
    mode: ClientAuthMode,
    /// SHA-256 over the mode, every CA certificate and every CRL (and the allow-list): what
    /// resumption state is bound to, so a session made under one policy never resumes under
    /// another.
    fingerprint: [u8; 32],
    allow: Option<AllowList>,
}

/// Why client-authentication material could not be loaded; every variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientAuthError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The CA file holds no usable certificate.
    #[error("{path} contains no CA certificate")]
    NoCa {
        /// The file.
        path: PathBuf,
    },
    /// A CA certificate is not valid X.509, or rustls refuses it as a trust anchor.
    #[error("{path}: CA certificate {index} is not usable: {reason}")]
    BadCa {
        /// The file.
        path: PathBuf,
        /// Position in the file, from 0.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// A CA certificate has expired: every client certificate it issued would be refused.
    #[error("{path}: CA certificate {subject:?} expired {days} day(s) ago")]
    ExpiredCa {
        /// The file.
        path: PathBuf,
        /// The CA's subject.
        subject: String,
        /// How long ago.
        days: i64,
    },
    /// A CRL file holds no CRL, or one that does not parse.
    #[error("{path}: not a usable CRL (PEM or DER): {reason}")]
    BadCrl {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl ClientAuthError {
    /// The file the problem is in.
    pub fn path(&self) -> &Path {
        match self {
            Self::Unreadable { path, .. }
            | Self::NoCa { path }
            | Self::BadCa { path, .. }
            | Self::ExpiredCa { path, .. }
            | Self::BadCrl { path, .. } => path,
        }
    }
}

impl ClientAuth {
    /// Loads the CA bundle (PEM) and CRLs (PEM or DER) a server verifies clients with.
    pub fn from_files(
        ca: &Path,
        crls: &[PathBuf],
        mode: ClientAuthMode,
    ) -> Result<Self, ClientAuthError> {
        let pem = read(ca)?;
        let mut roots = RootCertStore::empty();
        let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        digest.update(match mode {
            ClientAuthMode::Required => b"required",
            ClientAuthMode::Optional => b"optional",
        });
        let now = SystemTime::now();
        for (index, cert) in CertificateDer::pem_slice_iter(&pem).enumerate() {
            let bad = |reason: String| ClientAuthError::BadCa {
                path: ca.to_owned(),
                index,
                reason,
            };
            let cert = cert.map_err(|e| bad(e.to_string()))?;
            let summary =
                CertSummary::from_der(&cert).ok_or_else(|| bad("not X.509".to_owned()))?;
            let days = summary.days_until_expiry(now);
            if days < 0 {
                return Err(ClientAuthError::ExpiredCa {
                    path: ca.to_owned(),
                    subject: summary.subject,
                    days: -days,
                });
            }
            digest.update(&(cert.len() as u64).to_be_bytes());
            digest.update(&cert);
            roots.add(cert).map_err(|e| bad(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(ClientAuthError::NoCa {
                path: ca.to_owned(),
            });
        }
        let mut loaded = Vec::new();
        for path in crls {
            let crl = load_crl(path)?;
            digest.update(&(crl.len() as u64).to_be_bytes());
            digest.update(&crl);
            loaded.push((path, crl));
        }
        let mut fingerprint = [0u8; 32];
        fingerprint.copy_from_slice(digest.finish().as_ref());
        let mut client_auth = Self {
            roots: Arc::new(roots),
            crls: Vec::new(),
            mode,
            fingerprint,
            allow: None,
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        for (path, crl) in loaded {
            client_auth.crls.push(crl);
            // Build now, so a CRL rustls cannot use fails the load, naming its file.
            client_auth
                .verifier(provider.clone())
                .map_err(|e| ClientAuthError::BadCrl {
                    path: path.to_owned(),
                    reason: e.to_string(),
                })?;
        }
        Ok(client_auth)
    }

    /// Serves only certificates `allow` names (refusing the others with `access_denied`).
    pub fn with_allow_list(mut self, allow: AllowList) -> Self {
        let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        digest.update(&self.fingerprint);
        digest.update(&allow.digest_input());
        self.fingerprint.copy_from_slice(digest.finish().as_ref());
        self.allow = Some(allow);
        self
    }

    /// The allow-list, if the policy has one.
    pub fn allow_list(&self) -> Option<&AllowList> {
        self.allow.as_ref()
    }

    /// Required or optional.
    pub fn mode(&self) -> ClientAuthMode {
        self.mode
    }

    /// A digest of the mode, the CAs and the CRLs: equal for equal policies.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// The rustls verifier that applies this policy (CAs, CRLs, mode, allow-list).
    pub fn verifier(
        &self,
        provider: Arc<CryptoProvider>,
    ) -> Result<Arc<dyn ClientCertVerifier>, rustls::Error> {
        let mut builder = WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider)
            .with_crls(self.crls.iter().cloned())
            // A CRL lists the leaves its CA revoked; the CA itself is the trust anchor.
            .only_check_end_entity_revocation();
        if self.mode == ClientAuthMode::Optional {
            builder = builder.allow_unauthenticated();
        }
        let verifier = builder
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        Ok(match &self.allow {
            Some(allow) => Arc::new(AllowListVerifier {
                inner: verifier,
                allow: allow.clone(),
            }),
            None => verifier,
        })
    }
}

fn read(path: &Path) -> Result<Vec<u8>, ClientAuthError> {
    crate::files::read_limited(path, crate::files::MAX_MATERIAL_FILE).map_err(|source| {
        ClientAuthError::Unreadable {
            path: path.to_owned(),
            source,
        }
    })
}

fn load_crl(path: &Path) -> Result<CertificateRevocationListDer<'static>, ClientAuthError> {
    let bytes = read(path)?;
    let bad = |reason: &str| ClientAuthError::BadCrl {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    if bytes.starts_with(b"-----BEGIN") || bytes.iter().take(64).all(u8::is_ascii) {
        return CertificateRevocationListDer::from_pem_slice(&bytes)
            .map_err(|_| bad("no -----BEGIN X509 CRL----- block"));
    }
    // DER: a SEQUENCE; webpki checks the rest when the verifier is built.
    if bytes.first() == Some(&0x30) {
        Ok(CertificateRevocationListDer::from(bytes))
    } else {
        Err(bad("neither PEM nor DER"))
    }
}
