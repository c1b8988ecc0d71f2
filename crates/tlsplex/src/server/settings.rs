//! A server's live settings: everything a new connection needs (TLS configuration, certificates,
//! handler, handshake timeout) as one snapshot that updates replace whole. Each connection takes
//! the snapshot current when it is accepted and keeps it, so an update touches only new
//! connections (linkerd2-proxy's habit), and resumption state survives the swap.

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, UNIX_EPOCH};

use rustls::server::danger::ClientCertVerifier;
use rustls::ServerConfig;

use super::ServerOptions;
use crate::context::Context;
use crate::handler::{ConnectionHandler, StatusHandler};
use crate::metrics::CertificateExpiry;
use crate::tls::certs::CertStore;
use crate::tls::client_auth::ClientAuthMode;
use crate::tls::policy;
use crate::tls::resumption::ResumptionState;

/// What one connection needs.
pub(crate) struct Settings {
    pub(crate) tls: Arc<ServerConfig>,
    pub(crate) certs: Arc<CertStore>,
    pub(crate) strict_sni: bool,
    pub(crate) handler: ConnectionHandler,
    pub(crate) handshake_timeout: Duration,
    pub(crate) access_log: bool,
    /// Set when the server verifies client certificates.
    pub(crate) client_check: Option<ClientCheck>,
}

/// How a server that verifies clients treats resumed sessions.
pub(crate) struct ClientCheck {
    /// Today's verifier: a resumed session's certificate is checked again with it.
    pub(crate) verifier: Arc<dyn ClientCertVerifier>,
    pub(crate) mode: ClientAuthMode,
    pub(crate) max_session_age: Duration,
}

/// The current [`Settings`] of one server, and what carries over when they change.
pub(crate) struct LiveSettings {
    ctx: Context,
    name: String,
    /// Replaced when the client-auth policy changes: sessions never outlive their policy.
    resumption: Mutex<ResumptionState>,
    current: RwLock<Arc<Settings>>,
    /// Every certificate's expiry, kept current for the metrics.
    expiry: CertificateExpiry,
}

impl LiveSettings {
    pub(crate) fn new(
        ctx: &Context,
        options: &ServerOptions,
        expiry: CertificateExpiry,
    ) -> Result<Self, rustls::Error> {
        let resumption = ResumptionState::new(&options.tls, &options.name, ctx.ticket_keys());
        let settings = build(ctx, &resumption, options)?;
        set_expiry(&expiry, &settings.certs);
        Ok(Self {
            ctx: ctx.clone(),
            name: options.name.clone(),
            resumption: Mutex::new(resumption),
            current: RwLock::new(Arc::new(settings)),
            expiry,
        })
    }

    /// The settings for a new connection.
    pub(crate) fn current(&self) -> Arc<Settings> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Builds settings from `options` and swaps them in; on error the old ones stay.
    pub(crate) fn replace(&self, options: &ServerOptions) -> Result<(), rustls::Error> {
        let mut resumption = self
            .resumption
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let renewed = (!resumption.fits(&options.tls)).then(|| {
            tracing::info!(server = %self.name, "client-auth policy changed: earlier sessions will not resume");
            ResumptionState::new(&options.tls, &self.name, self.ctx.ticket_keys())
        });
        let settings = Arc::new(build(
            &self.ctx,
            renewed.as_ref().unwrap_or(&resumption),
            options,
        )?);
        if let Some(renewed) = renewed {
            *resumption = renewed;
        }
        set_expiry(&self.expiry, &settings.certs);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = settings;
        Ok(())
    }
}

fn set_expiry(gauges: &CertificateExpiry, certs: &CertStore) {
    gauges.show(certs.identities().iter().map(|identity| {
        let summary = identity.summary();
        let seconds = summary
            .not_after
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        (
            summary.label_name(),
            i64::try_from(seconds).unwrap_or(i64::MAX),
        )
    }));
}

fn build(
    ctx: &Context,
    resumption: &ResumptionState,
    options: &ServerOptions,
) -> Result<Settings, rustls::Error> {
    let provider = policy::provider(ctx.crypto_provider(), &options.tls);
    let client_check = match &options.tls.client_auth {
        Some(auth) => Some(ClientCheck {
            verifier: auth.verifier(provider.clone())?,
            mode: auth.mode(),
            max_session_age: options.tls.max_session_age,
        }),
        None => None,
    };
    let tls = policy::server_config(
        provider,
        options.certs.clone(),
        &options.tls,
        client_check.as_ref().map(|check| check.verifier.clone()),
        resumption,
    )?;
    let handler = match options.handler.clone() {
        Some(handler) => handler,
        None => ConnectionHandler::Status(
            StatusHandler::new(ctx.registry().clone()).list_servers(options.status_lists_servers),
        ),
    };
    let handler = match (handler, options.http_limits) {
        (ConnectionHandler::Status(status), Some(limits)) => {
            ConnectionHandler::Status(status.limits(limits))
        }
        (ConnectionHandler::Static(files), Some(limits)) => {
            ConnectionHandler::Static(files.limits(limits))
        }
        (handler, _) => handler,
    };
    Ok(Settings {
        tls: Arc::new(tls),
        certs: options.certs.clone(),
        strict_sni: options.tls.strict_sni,
        handler,
        handshake_timeout: options
            .handshake_timeout
            .unwrap_or_else(|| ctx.handshake_timeout()),
        access_log: options.access_log,
        client_check,
    })
}
