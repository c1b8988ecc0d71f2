//! `CertStore`: the identities one server presents, chosen by SNI.
//!
//! The seed hands `SSL_acceptConnection` a `pSslCertStore`; this is that store. Each identity is a
//! certificate chain and its private key. The first identity is the default; the others are chosen
//! when the client's SNI matches a DNS name in their certificate (exact, or one `*.` label).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use rustls::crypto::aws_lc_rs::sign::any_supported_type;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::ocsp::OcspSummary;
use super::summary::CertSummary;

/// What went wrong loading one certificate and key; every variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertLoadError {
    /// The file could not be read at all.
    #[error("cannot read {path}: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why the operating system said no.
        source: std::io::Error,
    },
    /// The certificate file holds no `CERTIFICATE` PEM block.
    #[error("{path} contains no PEM certificate (expected a -----BEGIN CERTIFICATE----- block)")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A certificate block is there but is not a valid X.509 certificate.
    #[error("{path}: certificate {index} is not a valid X.509 certificate")]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// Position in the chain, from 0 (the leaf).
        index: usize,
    },
    /// The key file holds no private key in a format we read.
    #[error("{path} contains no PEM private key (expected PKCS#8, PKCS#1 RSA or SEC1 EC)")]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// The key parses but rustls cannot sign with it.
    #[error("{path}: unsupported private key: {reason}")]
    UnsupportedKey {
        /// The file.
        path: PathBuf,
        /// What rustls said.
        reason: String,
    },
    /// The key file can be read by group or others, and strict permissions were asked for.
    #[error("private key {path} is readable by group or others (mode {mode:o}): chmod 600 it")]
    KeyPermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The OCSP file is not a successful DER-encoded OCSP response.
    #[error("{path} is not a successful DER-encoded OCSP response")]
    BadOcsp {
        /// The file.
        path: PathBuf,
    },
    /// The key is not the one the leaf certificate was issued for.
    #[error("private key {key} does not match the certificate in {cert}")]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
}

impl CertLoadError {
    /// The file the problem is in (for a mismatch, the key).
    pub fn path(&self) -> &Path {
        match self {
            Self::Unreadable { path, .. }
            | Self::NoCertificate { path }
            | Self::BadCertificate { path, .. }
            | Self::NoKey { path }
            | Self::UnsupportedKey { path, .. }
            | Self::KeyPermissions { path, .. }
            | Self::BadOcsp { path } => path,
            Self::KeyMismatch { key, .. } => key,
        }
    }
}

/// One certificate chain with its key (and an OCSP response to staple), ready for handshakes.
#[derive(Clone)]
pub struct Identity {
    certified_key: Arc<CertifiedKey>,
    summary: Arc<CertSummary>,
    stapled: Option<Stapled>,
    /// A stand-in for names whose certificate ACME has not issued yet: handshakes that would
    /// present it are refused.
    pending: bool,
}

/// The same chain and key with an OCSP response attached, used while the response is fresh.
#[derive(Clone)]
struct Stapled {
    certified_key: Arc<CertifiedKey>,
    summary: OcspSummary,
    /// Set once the response went stale and that was logged, so it is logged once.
    stale_logged: Arc<AtomicBool>,
}

impl Identity {
    /// Loads a PEM certificate chain (leaf first) and a PEM private key from files.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, CertLoadError> {
        let cert_pem = read(cert)?;
        let key_pem = read(key)?;
        Self::parse(&cert_pem, cert, &key_pem, key)
    }

    /// Checks that a private key file is readable by its owner only: a warning naming the file
    /// when it is not, or an error when `strict` is set.
    pub fn check_key_permissions(key: &Path, strict: bool) -> Result<(), CertLoadError> {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(key)
            .map_err(|source| CertLoadError::Unreadable {
                path: key.to_owned(),
                source,
            })?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 == 0 {
            return Ok(());
        }
        let problem = CertLoadError::KeyPermissions {
            path: key.to_owned(),
            mode,
        };
        if strict {
            return Err(problem);
        }
        tracing::warn!(key = %key.display(), "{problem}");
        Ok(())
    }

    /// Loads an identity from PEM text held in memory (`source` names it in errors).
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, CertLoadError> {
        let source = Path::new("<memory>");
        Self::parse(cert_pem, source, key_pem, source)
    }

    /// Builds an identity from DER: a chain (leaf first) and a private key.
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, CertLoadError> {
        let source = Path::new("<memory>");
        Self::assemble(chain, source, key, source)
    }

    fn parse(
        cert_pem: &[u8],
        cert_path: &Path,
        key_pem: &[u8],
        key_path: &Path,
    ) -> Result<Self, CertLoadError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
            .filter_map(Result::ok)
            .collect();
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| CertLoadError::NoKey {
            path: key_path.to_owned(),
        })?;
        Self::assemble(chain, cert_path, key, key_path)
    }

    fn assemble(
        chain: Vec<CertificateDer<'static>>,
        cert_path: &Path,
        key: PrivateKeyDer<'static>,
        key_path: &Path,
    ) -> Result<Self, CertLoadError> {
        let Some(leaf) = chain.first() else {
            return Err(CertLoadError::NoCertificate {
                path: cert_path.to_owned(),
            });
        };
        let summary = CertSummary::from_der(leaf).ok_or_else(|| CertLoadError::BadCertificate {
            path: cert_path.to_owned(),
            index: 0,
        })?;
        let signing_key = any_supported_type(&key).map_err(|e| CertLoadError::UnsupportedKey {
            path: key_path.to_owned(),
            reason: e.to_string(),
        })?;
        let certified_key = CertifiedKey::new(chain, signing_key);
        certified_key
            .keys_match()
            .map_err(|_| CertLoadError::KeyMismatch {
                cert: cert_path.to_owned(),
                key: key_path.to_owned(),
            })?;
        Ok(Self {
            certified_key: Arc::new(certified_key),
            summary: Arc::new(summary),
            stapled: None,
            pending: false,
        })
    }

    /// A stand-in for `names` until ACME issues their certificate (a throw-away self-signed
    /// one, never presented: handshakes that select it are refused).
    pub fn pending(names: &[String]) -> Result<Self, CertLoadError> {
        let fail = |reason: String| CertLoadError::UnsupportedKey {
            path: PathBuf::from("<pending ACME certificate>"),
            reason,
        };
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| fail(e.to_string()))?;
        let mut params =
            rcgen::CertificateParams::new(names.to_vec()).map_err(|e| fail(e.to_string()))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "waiting for ACME");
        let cert = params.self_signed(&key).map_err(|e| fail(e.to_string()))?;
        let der = PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let placeholder = Path::new("<pending ACME certificate>");
        let mut identity = Self::assemble(vec![cert.der().clone()], placeholder, der, placeholder)?;
        identity.pending = true;
        Ok(identity)
    }

    /// Whether this stands in for a certificate ACME has not issued yet.
    pub fn is_pending(&self) -> bool {
        self.pending
    }

    /// Staples the DER-encoded OCSP response in `path` while it is fresh (before its
    /// `nextUpdate`); a stale one is not stapled, and that is logged once.
    pub fn with_ocsp_file(self, path: &Path) -> Result<Self, CertLoadError> {
        let der = read(path)?;
        self.with_ocsp(der).map_err(|()| CertLoadError::BadOcsp {
            path: path.to_owned(),
        })
    }

    /// As [`Identity::with_ocsp_file`], from bytes.
    #[allow(clippy::result_unit_err)] // the file variant above names the file
    pub fn with_ocsp(mut self, der: Vec<u8>) -> Result<Self, ()> {
        let summary = OcspSummary::from_der(&der).ok_or(())?;
        let mut certified_key = (*self.certified_key).clone();
        certified_key.ocsp = Some(der);
        self.stapled = Some(Stapled {
            certified_key: Arc::new(certified_key),
            summary,
            stale_logged: Arc::new(AtomicBool::new(false)),
        });
        Ok(self)
    }

    /// The OCSP response this identity staples, if any.
    pub fn ocsp(&self) -> Option<&OcspSummary> {
        self.stapled.as_ref().map(|s| &s.summary)
    }

    /// The chain and key for a handshake now: with the OCSP response while it is fresh.
    fn for_handshake(&self) -> Arc<CertifiedKey> {
        let Some(stapled) = &self.stapled else {
            return self.certified_key.clone();
        };
        if !stapled.summary.is_stale(SystemTime::now()) {
            return stapled.certified_key.clone();
        }
        if !stapled.stale_logged.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                cert.subject = %self.summary.subject,
                "OCSP response is past its nextUpdate: no longer stapled (replace it and reload)"
            );
        }
        self.certified_key.clone()
    }

    /// Subject, names, expiry and fingerprint of the leaf certificate.
    pub fn summary(&self) -> &CertSummary {
        &self.summary
    }

    /// The leaf certificate, DER-encoded.
    pub fn leaf(&self) -> &CertificateDer<'static> {
        // `assemble` refuses an empty chain, so the leaf is always there.
        &self.certified_key.cert[0]
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key: only what the certificate says publicly.
        f.debug_struct("Identity")
            .field("subject", &self.summary.subject)
            .field("names", &self.summary.names())
            .finish()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, CertLoadError> {
    crate::files::read_limited(path, crate::files::MAX_MATERIAL_FILE).map_err(|source| {
        CertLoadError::Unreadable {
            path: path.to_owned(),
            source,
        }
    })
}

/// The identities of one server, chosen by SNI, with the first as the default.
#[derive(Debug)]
pub struct CertStore {
    identities: Vec<Identity>,
    /// Lower-case exact DNS names to the index of their identity.
    exact: HashMap<String, usize>,
    /// Lower-case parent domains of `*.` names (`*.a.test` is stored as `a.test`).
    wildcard: HashMap<String, usize>,
    /// Whether some identity stands in for an ACME certificate not issued yet.
    any_pending: bool,
}

impl CertStore {
    /// A store with one identity.
    pub fn single(identity: Identity) -> Self {
        Self::new(identity, Vec::new())
    }

    /// A store whose `default` identity answers any SNI that none of `others` names.
    /// Where two identities claim a name, the earlier one wins.
    pub fn new(default: Identity, others: Vec<Identity>) -> Self {
        let identities: Vec<Identity> = std::iter::once(default).chain(others).collect();
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for (index, identity) in identities.iter().enumerate() {
            for name in &identity.summary.dns_names {
                let name = name.to_ascii_lowercase();
                match name.strip_prefix("*.") {
                    Some(parent) => wildcard.entry(parent.to_owned()).or_insert(index),
                    None => exact.entry(name).or_insert(index),
                };
            }
        }
        Self {
            any_pending: identities.iter().any(Identity::is_pending),
            identities,
            exact,
            wildcard,
        }
    }

    /// The identity presented to a client that sent `sni` (or no SNI at all).
    pub fn select(&self, sni: Option<&str>) -> &Identity {
        let index = sni.and_then(|name| self.lookup(name)).unwrap_or(0);
        &self.identities[index]
    }

    /// The default identity (the first one).
    pub fn default_identity(&self) -> &Identity {
        &self.identities[0]
    }

    /// Every identity, the default first.
    pub fn identities(&self) -> &[Identity] {
        &self.identities
    }

    /// Whether some identity stands in for an ACME certificate not issued yet (known at
    /// construction, so a handshake asks only then which one it would get).
    pub fn has_pending(&self) -> bool {
        self.any_pending
    }

    /// Whether some identity's certificate names `sni` (exactly or by wildcard).
    pub fn covers(&self, sni: &str) -> bool {
        self.lookup(sni).is_some()
    }

    fn lookup(&self, sni: &str) -> Option<usize> {
        let name = sni.to_ascii_lowercase();
        if let Some(index) = self.exact.get(&name) {
            return Some(*index);
        }
        let (_, parent) = name.split_once('.')?;
        self.wildcard.get(parent).copied()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.select(client_hello.server_name()).for_handshake())
    }
}
