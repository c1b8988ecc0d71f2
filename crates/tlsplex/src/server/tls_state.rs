//! A server's TLS configuration as a snapshot that reloads replace whole: each connection takes
//! the snapshot current when its ClientHello arrives and keeps it, so a reload touches only new
//! handshakes (linkerd2-proxy's habit), and resumption state survives the swap.

use std::sync::{Arc, PoisonError, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::ServerConfig;

use crate::tls::certs::CertStore;
use crate::tls::policy::{self, ResumptionState, TlsPolicy};

/// What one handshake needs.
pub(crate) struct TlsSnapshot {
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) certs: Arc<CertStore>,
    pub(crate) strict_sni: bool,
}

pub(crate) struct TlsState {
    provider: Arc<CryptoProvider>,
    resumption: ResumptionState,
    current: RwLock<Arc<TlsSnapshot>>,
}

impl TlsState {
    pub(crate) fn new(
        provider: Arc<CryptoProvider>,
        resumption: ResumptionState,
        certs: Arc<CertStore>,
        policy: &TlsPolicy,
    ) -> Result<Self, rustls::Error> {
        let snapshot = build(&provider, &resumption, certs, policy)?;
        Ok(Self {
            provider,
            resumption,
            current: RwLock::new(Arc::new(snapshot)),
        })
    }

    /// The snapshot for a new handshake.
    pub(crate) fn current(&self) -> Arc<TlsSnapshot> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Builds a snapshot from new material and swaps it in; on error the old one stays.
    pub(crate) fn replace(
        &self,
        certs: Arc<CertStore>,
        policy: &TlsPolicy,
    ) -> Result<(), rustls::Error> {
        let snapshot = Arc::new(build(&self.provider, &self.resumption, certs, policy)?);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = snapshot;
        Ok(())
    }
}

fn build(
    provider: &CryptoProvider,
    resumption: &ResumptionState,
    certs: Arc<CertStore>,
    policy: &TlsPolicy,
) -> Result<TlsSnapshot, rustls::Error> {
    let config = policy::server_config(provider, certs.clone(), policy, resumption)?;
    Ok(TlsSnapshot {
        config: Arc::new(config),
        certs,
        strict_sni: policy.strict_sni,
    })
}
