//! Everything a config asks for, bound and then served, as one value: the servers, the admin
//! endpoint, the plain-HTTP listener (redirects and ACME HTTP-01) and the ACME manager, over one
//! [`Controller`]. `tlsplex run` is this plus signals, systemd and privileges;
//! `examples/operated.rs` and the C library's engine level run it too.
//!
//! [`Daemon::start`] binds every address before anything serves (all or nothing: an admin
//! address that is taken fails the start before a server has said it serves), then spawns the
//! tasks; [`Daemon::shutdown`] stops them and drains the servers. It runs inside a tokio runtime
//! (the context's: [`Context::runtime`]); [`Daemon::start_blocking`] makes one for a caller
//! that has none.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::acme::Http01Listener;
#[cfg(feature = "admin")]
use crate::admin::AdminServer;
use crate::config::AdminOptions;
use crate::config::{Config, ConfigError};
use crate::control::{ConfigSource, Controller};
use crate::handler::NamedHandlers;
use crate::{Context, ServerError, ServerOptions, Supervisor};

/// What a daemon runs: built from a [`Config`] ([`DaemonPlan::from_config`]) or by hand (the
/// demo's servers have no file).
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct DaemonPlan {
    /// Servers built in code. A plan made from a config ([`DaemonPlan::from_config`]) starts
    /// that config's servers besides these, each built as it binds: 10,000 servers are never
    /// held as options and as servers at once.
    pub servers: Vec<ServerOptions>,
    /// The admin endpoint, if any.
    pub admin: Option<AdminOptions>,
    /// The plain-HTTP listener's address and the https port its redirects name.
    pub plain_http: Option<(SocketAddr, Option<u16>)>,
    /// The config file a reload reads again.
    pub source: Option<ConfigSource>,
    /// Listening sockets handed over (systemd socket activation), by server name.
    pub listeners: HashMap<String, std::net::TcpListener>,
    /// The handlers the config's `external` handlers name.
    pub handlers: NamedHandlers,
    /// The config whose servers start too (a plan made from a config), shared with `source`.
    config: Option<Arc<Config>>,
}

impl DaemonPlan {
    /// What `config` (read from `path`) asks for.
    pub fn from_config(path: &Path, config: Config) -> Self {
        Self::from_config_with(path, config, NamedHandlers::default())
    }

    /// What `config` (read from `path`) asks for, its `external` handlers from `handlers`.
    pub fn from_config_with(path: &Path, config: Config, handlers: NamedHandlers) -> Self {
        let redirect = config.http_redirect;
        let http01 = config.acme.as_ref().and_then(|acme| acme.http01_listen);
        let plain_http = match redirect {
            Some(redirect) => Some((redirect.listen, redirect.https_port)),
            None => http01.map(|addr| (addr, None)),
        };
        let config = Arc::new(config);
        Self {
            servers: Vec::new(),
            admin: config.admin.clone(),
            plain_http,
            source: Some(ConfigSource::from_shared(path, config.clone())),
            listeners: HashMap::new(),
            handlers,
            config: Some(config),
        }
    }
}

/// Why a daemon did not start; nothing of it is left running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// The config file.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The admin endpoint's address.
    #[error("admin endpoint on {addr}: {source}")]
    Admin {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The plain-HTTP listener's address.
    #[error("plain-HTTP listener on {addr}: {source}")]
    PlainHttp {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A server.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// The runtime ([`Daemon::start_blocking`]) or the global settings.
    #[error("{0}")]
    Runtime(String),
}

/// A running daemon; see the module docs.
pub struct Daemon {
    controller: Controller,
    stop: CancellationToken,
    admin_addr: Option<SocketAddr>,
    login_link: Option<String>,
    plain_addr: Option<SocketAddr>,
}

impl Daemon {
    /// Binds everything `plan` names under `ctx`, then serves it.
    pub async fn start(ctx: &Context, plan: DaemonPlan) -> Result<Self, DaemonError> {
        #[cfg(feature = "admin")]
        let admin = match &plan.admin {
            Some(options) => {
                Some(
                    AdminServer::bind(options)
                        .await
                        .map_err(|source| DaemonError::Admin {
                            addr: options.listen,
                            source,
                        })?,
                )
            }
            None => None,
        };
        #[cfg(not(feature = "admin"))]
        if plan.admin.is_some() {
            return Err(DaemonError::Runtime(
                "this tlsplex is built without the admin endpoint (the cargo feature `admin`)"
                    .to_owned(),
            ));
        }
        let plain = match plan.plain_http {
            Some((addr, https_port)) => {
                let listener = Http01Listener::bind(addr)
                    .await
                    .map_err(|source| DaemonError::PlainHttp { addr, source })?;
                Some((listener, https_port))
            }
            None => None,
        };
        let from_config = (plan.config.iter())
            .flat_map(|config| config.servers.iter())
            .map(|spec| spec.options_with(&plan.handlers));
        let servers = plan.servers.into_iter().chain(from_config);
        let supervisor = Supervisor::start_with_listeners(ctx, servers, plan.listeners)?;
        let controller = Controller::new(supervisor, plan.source).with_handlers(plan.handlers);
        let stop = CancellationToken::new();
        // Idle unless the config has an [acme] table (a reload may add one).
        #[cfg(feature = "acme")]
        tokio::spawn(crate::acme::run(controller.clone(), stop.clone()));
        let mut daemon = Self {
            controller: controller.clone(),
            stop: stop.clone(),
            admin_addr: None,
            login_link: None,
            plain_addr: None,
        };
        #[cfg(feature = "admin")]
        if let Some(server) = admin {
            daemon.admin_addr = server.local_addr().ok();
            daemon.login_link = server.login_link().ok();
            tracing::info!(addr = ?daemon.admin_addr, "admin endpoint listening");
            tokio::spawn(server.run(controller.clone(), stop.clone()));
        }
        if let Some((listener, https_port)) = plain {
            daemon.plain_addr = listener.local_addr().ok();
            tracing::info!(addr = ?daemon.plain_addr, "plain-HTTP listener ready: requests are redirected to https, ACME HTTP-01 validations answered");
            let challenges = controller.context().acme_challenges().clone();
            tokio::spawn(listener.run(challenges, https_port, stop));
        }
        Ok(daemon)
    }

    /// [`Daemon::start`] for a caller without a runtime: the config file at `path` read, its
    /// context made, and a runtime of the context's for it, which the daemon returns with.
    pub fn start_blocking(path: &Path) -> Result<(tokio::runtime::Runtime, Self), DaemonError> {
        let config = Config::load(path)?;
        let ctx = (config.global.context()).map_err(|e| DaemonError::Runtime(e.to_string()))?;
        let runtime = ctx
            .runtime()
            .map_err(|e| DaemonError::Runtime(format!("cannot start the async runtime: {e}")))?;
        let plan = DaemonPlan::from_config(path, config);
        let daemon = runtime.block_on(Self::start(&ctx, plan))?;
        Ok((runtime, daemon))
    }

    /// The control plane: reload, add, stop, start, stats.
    pub fn controller(&self) -> &Controller {
        &self.controller
    }

    /// The admin endpoint's address, when there is one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// A one-time dashboard login link, when there is an admin endpoint.
    pub fn login_link(&self) -> Option<&str> {
        self.login_link.as_deref()
    }

    /// The plain-HTTP listener's address, when there is one.
    pub fn plain_http_addr(&self) -> Option<SocketAddr> {
        self.plain_addr
    }

    /// Stops the admin endpoint, the plain-HTTP listener and ACME, then the servers, draining
    /// their connections for up to the context's shutdown grace.
    pub async fn shutdown(self) {
        self.stop.cancel();
        self.controller.shutdown().await;
    }

    /// Stops the admin endpoint, the plain-HTTP listener and ACME at once (the servers go on:
    /// [`Daemon::shutdown`] drains them).
    pub fn stop_side_tasks(&self) {
        self.stop.cancel();
    }
}
