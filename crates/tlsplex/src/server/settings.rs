//! A server's live settings: everything a new connection needs (certificates, routes with their
//! handlers and TLS configurations, handshake timeout) as one snapshot that updates replace whole. Each connection takes
//! the snapshot current when it is accepted and keeps it, so an update touches only new
//! connections (linkerd2-proxy's habit), and resumption state survives the swap.

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, UNIX_EPOCH};

use rustls::server::danger::ClientCertVerifier;

use super::routes::{client_auth_binding, RouteBuild, RouteTable};
use super::ServerOptions;
use crate::context::Context;
use crate::metrics::{BackendMetrics, CertificateExpiry, ServerMetrics};
use crate::tls::certs::CertStore;
use crate::tls::challenge::ChallengeStore;
use crate::tls::client_auth::ClientAuthMode;
use crate::tls::resumption::ResumptionState;

/// What one connection needs.
pub(crate) struct Settings {
    pub(crate) certs: Arc<CertStore>,
    pub(crate) strict_sni: bool,
    pub(crate) max_client_hello: usize,
    pub(crate) handshake_timeout: Duration,
    pub(crate) access_log: bool,
    /// The server's own handler and TLS, and its routes.
    pub(crate) routes: RouteTable,
    /// The context's pending ACME validations.
    pub(crate) challenges: Arc<ChallengeStore>,
}

/// How a server that verifies clients treats resumed sessions.
#[derive(Clone)]
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
    /// Where every certificate's expiry is kept current, and the backends' series are.
    metrics: Arc<ServerMetrics>,
}

impl LiveSettings {
    pub(crate) fn new(
        ctx: &Context,
        options: &ServerOptions,
        metrics: &Arc<ServerMetrics>,
    ) -> Result<Self, rustls::Error> {
        let binding = client_auth_binding(options);
        let resumption =
            ResumptionState::new(binding, &options.tls, &options.name, ctx.ticket_keys());
        let settings = build(ctx, &resumption, options, &metrics.backends, None)?;
        set_expiry(&metrics.expiry, &settings.certs);
        Ok(Self {
            ctx: ctx.clone(),
            name: options.name.clone(),
            resumption: Mutex::new(resumption),
            current: RwLock::new(Arc::new(settings)),
            metrics: metrics.clone(),
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
        let binding = client_auth_binding(options);
        let renewed = (!resumption.fits(binding)).then(|| {
            tracing::info!(server = %self.name, "client-auth policy changed: earlier sessions will not resume");
            ResumptionState::new(binding, &options.tls, &self.name, self.ctx.ticket_keys())
        });
        let previous = self.current();
        let settings = Arc::new(build(
            &self.ctx,
            renewed.as_ref().unwrap_or(&resumption),
            options,
            &self.metrics.backends,
            Some(&previous.routes),
        )?);
        if let Some(renewed) = renewed {
            *resumption = renewed;
        }
        set_expiry(&self.metrics.expiry, &settings.certs);
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
    backends: &BackendMetrics,
    previous: Option<&RouteTable>,
) -> Result<Settings, rustls::Error> {
    let routes = RouteTable::build(
        options,
        &RouteBuild {
            ctx,
            provider: ctx.providers().for_policy(&options.tls),
            resumption,
            metrics: backends,
            previous,
        },
    )?;
    Ok(Settings {
        certs: options.certs.clone(),
        strict_sni: options.tls.strict_sni,
        max_client_hello: options.tls.max_client_hello,
        handshake_timeout: options
            .handshake_timeout
            .unwrap_or_else(|| ctx.handshake_timeout()),
        access_log: options.access_log,
        routes,
        challenges: ctx.acme_challenges().clone(),
    })
}
