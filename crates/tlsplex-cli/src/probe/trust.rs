//! How the probe verifies servers and what it presents: roots (`--ca`, the system's, or none with
//! `--insecure`) and an optional client certificate, loaded once for every target.

use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore};

use super::verify::{AnyCertificate, ClientCertOnRequest, Observing};
use super::Observed;
use crate::cli::ProbeArgs;

/// How the probe verifies servers and what it presents, loaded once for every target.
pub(super) struct Trust {
    provider: Arc<CryptoProvider>,
    /// `None`: `--insecure`.
    roots: Option<Arc<RootCertStore>>,
    client_cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
}

impl Trust {
    pub(super) fn from_args(args: &ProbeArgs) -> Result<Self, String> {
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
    pub(super) fn client_config(&self, seen: &Arc<Observed>) -> Result<ClientConfig, String> {
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
