//! A server's live settings: everything a new connection needs (TLS configuration, certificates,
//! handler, handshake timeout) as one snapshot that updates replace whole. Each connection takes
//! the snapshot current when it is accepted and keeps it, so an update touches only new
//! connections (linkerd2-proxy's habit), and resumption state survives the swap.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, UNIX_EPOCH};

use prometheus_client::metrics::gauge::Gauge;
use rustls::ServerConfig;

use super::ServerOptions;
use crate::context::Context;
use crate::handler::{ConnectionHandler, StatusHandler};
use crate::tls::certs::CertStore;
use crate::tls::policy::{self, ResumptionState};

/// What one connection needs.
pub(crate) struct Settings {
    pub(crate) tls: Arc<ServerConfig>,
    pub(crate) certs: Arc<CertStore>,
    pub(crate) strict_sni: bool,
    pub(crate) handler: ConnectionHandler,
    pub(crate) handshake_timeout: Duration,
    pub(crate) access_log: bool,
}

/// The current [`Settings`] of one server, and what carries over when they change.
pub(crate) struct LiveSettings {
    ctx: Context,
    resumption: ResumptionState,
    current: RwLock<Arc<Settings>>,
    /// The default certificate's expiry, kept current for the metrics.
    expiry: Gauge,
}

impl LiveSettings {
    pub(crate) fn new(
        ctx: &Context,
        options: &ServerOptions,
        expiry: Gauge,
    ) -> Result<Self, rustls::Error> {
        let ticketer = ctx.ticket_keys().map(|keys| keys.ticketer(&options.name));
        let resumption = ResumptionState::new(&options.tls, ticketer);
        let settings = build(ctx, &resumption, options)?;
        set_expiry(&expiry, &settings.certs);
        Ok(Self {
            ctx: ctx.clone(),
            resumption,
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
        let settings = Arc::new(build(&self.ctx, &self.resumption, options)?);
        set_expiry(&self.expiry, &settings.certs);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = settings;
        Ok(())
    }
}

fn set_expiry(gauge: &Gauge, certs: &CertStore) {
    let not_after = certs.default_identity().summary().not_after;
    let seconds = not_after
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    gauge.set(i64::try_from(seconds).unwrap_or(i64::MAX));
}

fn build(
    ctx: &Context,
    resumption: &ResumptionState,
    options: &ServerOptions,
) -> Result<Settings, rustls::Error> {
    let tls = policy::server_config(
        ctx.crypto_provider(),
        options.certs.clone(),
        &options.tls,
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
    })
}
