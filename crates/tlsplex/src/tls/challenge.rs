//! Pending ACME validations, shared by every server of a context.
//!
//! TLS-ALPN-01 (RFC 8737): a ClientHello that offers only `acme-tls/1` for a name with a
//! pending challenge is answered with that name's self-signed certificate carrying the
//! `acmeIdentifier` extension, whichever server of the process receives it. HTTP-01 (RFC 8555
//! section 8.3): the key authorization of each pending token, for the `http01_listen` listener.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

/// The ALPN protocol of TLS-ALPN-01 validations.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Pending challenges: TLS-ALPN-01 by DNS name (lower case), HTTP-01 by token.
#[derive(Debug, Default)]
pub struct ChallengeStore {
    pending: Mutex<HashMap<String, Arc<ServerConfig>>>,
    /// HTTP-01: token → (name, key authorization).
    http: Mutex<HashMap<String, (String, String)>>,
    /// How many are pending: every handshake asks, without the lock.
    count: AtomicUsize,
}

/// Why a challenge certificate could not be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot make the TLS-ALPN-01 certificate for {name}: {reason}")]
pub struct ChallengeError {
    name: String,
    reason: String,
}

impl ChallengeStore {
    /// Answers validations of `name` with a certificate carrying `key_authorization_digest`
    /// (SHA-256 of the key authorization) until [`ChallengeStore::remove`].
    pub fn insert(
        &self,
        name: &str,
        key_authorization_digest: &[u8],
        provider: &Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<(), ChallengeError> {
        let fail = |reason: String| ChallengeError {
            name: name.to_owned(),
            reason,
        };
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| fail(e.to_string()))?;
        let mut params = rcgen::CertificateParams::new(vec![name.to_owned()])
            .map_err(|e| fail(e.to_string()))?;
        params
            .custom_extensions
            .push(rcgen::CustomExtension::new_acme_identifier(
                key_authorization_digest,
            ));
        let cert = params.self_signed(&key).map_err(|e| fail(e.to_string()))?;
        let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let signing = provider
            .key_provider
            .load_private_key(der)
            .map_err(|e| fail(e.to_string()))?;
        let certified = Arc::new(CertifiedKey::new(vec![cert.der().clone()], signing));
        let mut config = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| fail(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Always(certified)));
        config.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
        config.send_tls13_tickets = 0;
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.insert(name.to_ascii_lowercase(), Arc::new(config));
        self.count.store(pending.len(), Ordering::Relaxed);
        Ok(())
    }

    /// Answers HTTP-01 requests for `token` (a validation of `name`) with `key_authorization`
    /// until [`ChallengeStore::remove`] of `name`.
    pub fn insert_http(&self, name: &str, token: &str, key_authorization: &str) {
        let mut http = self.http.lock().unwrap_or_else(PoisonError::into_inner);
        http.insert(
            token.to_owned(),
            (name.to_ascii_lowercase(), key_authorization.to_owned()),
        );
    }

    /// The key authorization to answer `GET /.well-known/acme-challenge/<token>` with.
    pub fn http_answer(&self, token: &str) -> Option<String> {
        let http = self.http.lock().unwrap_or_else(PoisonError::into_inner);
        http.get(token).map(|(_, answer)| answer.clone())
    }

    /// Stops answering validations of `name`, of either kind.
    pub fn remove(&self, name: &str) {
        let name = name.to_ascii_lowercase();
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.remove(&name);
        self.count.store(pending.len(), Ordering::Relaxed);
        drop(pending);
        let mut http = self.http.lock().unwrap_or_else(PoisonError::into_inner);
        http.retain(|_, (pending, _)| *pending != name);
    }

    /// The configuration that answers this ClientHello, if it is a validation of a pending
    /// challenge: `acme-tls/1` as its only ALPN protocol, and an SNI with a challenge.
    pub(crate) fn answer(&self, hello: &ClientHello<'_>) -> Option<Arc<ServerConfig>> {
        let mut alpn = hello.alpn()?;
        if alpn.next() != Some(ACME_TLS_ALPN) || alpn.next().is_some() {
            return None;
        }
        let name = hello.server_name()?.to_ascii_lowercase();
        let pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.get(&name).cloned()
    }

    /// Whether no challenge is pending: the common case, checked without the lock.
    pub(crate) fn is_empty(&self) -> bool {
        self.count.load(Ordering::Relaxed) == 0
    }
}

/// Presents one certificate whatever the ClientHello says.
#[derive(Debug)]
struct Always(Arc<CertifiedKey>);

impl ResolvesServerCert for Always {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}
