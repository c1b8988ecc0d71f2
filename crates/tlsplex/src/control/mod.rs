//! The control plane: a [`Controller`] owns the [`Supervisor`] and the config file its servers
//! came from, and does everything that changes what runs (reload from a signal, a changed file
//! or the admin API; add, start and remove one server), one request at a time. It counts reloads
//! in the metrics. The admin endpoint is a service over it; `tlsplex run` adds only signals,
//! systemd and privilege drop around it.
//!
//! ```no_run
//! use tlsplex::control::{ConfigSource, Controller, ReloadCause};
//! use tlsplex::Supervisor;
//! use tlsplex::config::Config;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let path = std::path::Path::new("/etc/tlsplex.toml");
//! let config = Config::load(path)?;
//! let ctx = config.global.context()?;
//! let supervisor = Supervisor::start(&ctx, config.servers.iter().map(|s| s.options()))?;
//! let controller = Controller::new(supervisor, Some(ConfigSource::new(path, &config)));
//! let report = controller.reload(ReloadCause::Signal).await?;
//! println!("updated: {:?}", report.updated);
//! controller.shutdown().await;
//! # Ok(()) }
//! ```

mod error;
mod source;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::Mutex;

pub use error::ControlError;
pub use source::ConfigSource;

use crate::config::{AcmeCertificate, AcmeOptions, Config, ServerSpec};
use crate::context::Context;
use crate::handler::NamedHandlers;
use crate::server::ServerStats;
use crate::supervisor::{Desired, ReloadReport, Supervisor};

/// What asked for a reload, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReloadCause {
    /// SIGHUP, or an embedder's own trigger.
    Signal,
    /// A file the config names changed (`reload_check_interval`).
    WatchedFile,
    /// `POST /api/reload`.
    AdminApi,
    /// ACME issued or renewed a certificate.
    Acme,
}

impl fmt::Display for ReloadCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Signal => "signal",
            Self::WatchedFile => "a watched file changed",
            Self::AdminApi => "admin API",
            Self::Acme => "ACME certificate issued",
        })
    }
}

/// A cheap handle to the control plane; clones share it. Requests are served one at a time.
#[derive(Clone)]
pub struct Controller {
    ctx: Context,
    state: Arc<Mutex<State>>,
    /// The `external` handlers the program gave, for the servers a reload or `start` makes.
    handlers: Arc<NamedHandlers>,
}

struct State {
    /// `None` once shut down.
    supervisor: Option<Supervisor>,
    source: Option<ConfigSource>,
    /// Servers added through [`Controller::add`], as given, so one stopped can start again.
    added: BTreeMap<String, ServerSpec>,
    /// Servers stopped through [`Controller::stop`], with the address each had.
    stopped: BTreeMap<String, SocketAddr>,
}

impl State {
    fn supervisor(&mut self) -> Result<&mut Supervisor, ControlError> {
        self.supervisor.as_mut().ok_or(ControlError::ShuttingDown)
    }
}

impl fmt::Debug for Controller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Controller").finish_non_exhaustive()
    }
}

impl Controller {
    /// Takes charge of `supervisor`; `source` is the config file its servers came from (reload
    /// and `start` need it; without one, a reload only re-reads the ticket key file).
    pub fn new(supervisor: Supervisor, source: Option<ConfigSource>) -> Self {
        Self {
            ctx: supervisor.context().clone(),
            state: Arc::new(Mutex::new(State {
                supervisor: Some(supervisor),
                source,
                added: BTreeMap::new(),
                stopped: BTreeMap::new(),
            })),
            handlers: Arc::default(),
        }
    }

    /// The same, making the servers a reload or `start` binds with `handlers` for their
    /// `external` handlers (the first ones were made by whoever made the supervisor).
    pub fn with_handlers(mut self, handlers: NamedHandlers) -> Self {
        self.handlers = Arc::new(handlers);
        self
    }

    /// The context the servers share.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Every server's figures by name: those running, and those stopped through
    /// [`Controller::stop`] ([`crate::registry::ServerState::Stopped`]); empty once shut down.
    pub async fn stats(&self) -> Vec<ServerStats> {
        let state = self.state.lock().await;
        let Some(supervisor) = &state.supervisor else {
            return Vec::new();
        };
        let mut stats = supervisor.stats();
        let stopped = state.stopped.iter();
        stats.extend(stopped.map(|(name, listen)| ServerStats::stopped(name, *listen)));
        stats.sort_by(|a, b| a.name.cmp(&b.name));
        stats
    }

    /// Loads the config file again and applies it as a diff ([`Supervisor::reload`]). A file
    /// that does not validate changes nothing, and is not retried until it changes again.
    /// Without a config file, re-reads the ticket key file and answers
    /// [`ControlError::NoConfigFile`].
    pub async fn reload(&self, cause: ReloadCause) -> Result<ReloadReport, ControlError> {
        let mut state = self.state.lock().await;
        let State {
            supervisor,
            source,
            added,
            stopped,
        } = &mut *state;
        let supervisor = supervisor.as_mut().ok_or(ControlError::ShuttingDown)?;
        let Some(source) = source else {
            if let Some(Err(error)) = self.ctx.ticket_keys().map(|keys| keys.reload()) {
                tracing::error!(%error, "reload: the previous ticket key stays");
            }
            return Err(ControlError::NoConfigFile);
        };
        tracing::info!(config = %source.path().display(), reason = %cause, "reloading");
        let config = match source.load().await {
            Ok(config) => config,
            Err(error) => {
                for problem in error.to_string().lines() {
                    tracing::error!(%problem, "reload refused; the previous configuration keeps serving");
                }
                self.ctx.metrics().reload(false);
                source.remember_refused();
                return Err(error.into());
            }
        };
        let handlers = &self.handlers;
        let desired = config.servers.iter().map(|spec| match spec.inputs {
            Some(inputs) => Desired::lazy(&spec.name, spec.listen, inputs, move || {
                spec.options_with(handlers)
            }),
            None => spec.options_with(handlers).into(),
        });
        let mut report = supervisor.reload(desired).await;
        // The file decides what runs: servers it names were started, others were removed.
        added.retain(|name, _| supervisor.server(name).is_some());
        stopped.retain(|name, _| {
            supervisor.server(name).is_none() && config.servers.iter().any(|s| s.name == *name)
        });
        let restart_only = config.global.restart_only_changes(source.started_with());
        for key in &restart_only {
            report
                .needs_restart
                .push(format!("[global] {key} changed: restart to apply"));
        }
        if !restart_only.contains(&"ticket_key_file") {
            if let Some(Err(error)) = self.ctx.ticket_keys().map(|keys| keys.reload()) {
                report
                    .errors
                    .push(format!("{error}; the previous ticket key stays"));
            }
        }
        log_report(&report);
        self.ctx.metrics().reload(report.errors.is_empty());
        source.loaded(config);
        Ok(report)
    }

    /// Reloads if a file the config names changed since the last load (for a polling timer);
    /// `None` when nothing changed or there is no config file.
    pub async fn reload_if_changed(&self) -> Option<Result<ReloadReport, ControlError>> {
        let changed = {
            let mut state = self.state.lock().await;
            state.source.as_mut().is_some_and(ConfigSource::changed)
        };
        // Another request may reload in between: then this one finds the new files.
        if changed {
            Some(self.reload(ReloadCause::WatchedFile).await)
        } else {
            None
        }
    }

    /// Binds and starts a server from one `[[server]]` table's keys in TOML (relative paths
    /// against the config file's folder). It runs until a reload of a file that does not name it.
    pub async fn add(&self, table: &str) -> Result<ServerStats, ControlError> {
        let mut state = self.state.lock().await;
        let base = state
            .source
            .as_ref()
            .map_or_else(|| std::path::PathBuf::from("."), ConfigSource::base);
        let spec = Config::parse_server(table, &base)?;
        if state.stopped.contains_key(&spec.name) {
            return Err(ControlError::Stopped(spec.name));
        }
        let stats = state
            .supervisor()?
            .add(spec.options_with(&self.handlers))?
            .stats();
        tracing::info!(server = %stats.name, addr = %stats.listen, "server added");
        state.added.insert(spec.name.clone(), spec);
        Ok(stats)
    }

    /// Starts a server that is not running: one stopped through [`Controller::stop`] (added
    /// through the API or not), or one of the config file as last loaded.
    pub async fn start(&self, name: &str) -> Result<ServerStats, ControlError> {
        let mut state = self.state.lock().await;
        let State {
            supervisor,
            source,
            added,
            stopped,
        } = &mut *state;
        let supervisor = supervisor.as_mut().ok_or(ControlError::ShuttingDown)?;
        if supervisor.server(name).is_some() {
            return Err(ControlError::AlreadyRunning(name.to_owned()));
        }
        let spec = added
            .get(name)
            .or_else(|| source.as_ref().and_then(|source| source.server(name)))
            .ok_or_else(|| ControlError::NotConfigured(name.to_owned()))?;
        let stats = supervisor.add(spec.options_with(&self.handlers))?.stats();
        stopped.remove(name);
        tracing::info!(server = %stats.name, addr = %stats.listen, "server started");
        Ok(stats)
    }

    /// Stops the server called `name`; returns once its port is closed (its connections drain
    /// in the background). It stays listed as stopped, without metric series, until
    /// [`Controller::start`], [`Controller::remove`] or a reload (which starts it if the file
    /// names it).
    pub async fn stop(&self, name: &str) -> Result<(), ControlError> {
        let mut state = self.state.lock().await;
        let supervisor = state.supervisor()?;
        let listen = supervisor
            .server(name)
            .map(crate::ServerHandle::local_addr)
            .ok_or_else(|| ControlError::NotRunning(name.to_owned()))?;
        supervisor
            .remove(name)
            .await
            .map_err(|unknown| ControlError::NotRunning(unknown.0))?;
        tracing::info!(server = name, "server stopped");
        state.stopped.insert(name.to_owned(), listen);
        Ok(())
    }

    /// Stops the server called `name` if it runs, and forgets it: no longer listed, its metric
    /// series gone. A server of the config file comes back with [`Controller::start`] or the next
    /// reload.
    pub async fn remove(&self, name: &str) -> Result<(), ControlError> {
        let mut state = self.state.lock().await;
        let was_stopped = state.stopped.remove(name).is_some();
        let supervisor = state.supervisor()?;
        if !was_stopped {
            supervisor
                .remove(name)
                .await
                .map_err(|unknown| ControlError::NotRunning(unknown.0))?;
        }
        tracing::info!(server = name, "server removed");
        state.added.remove(name);
        Ok(())
    }

    /// `[acme]` and the certificates the servers want from it, as last loaded; `None` without
    /// a config file or an `[acme]` table.
    pub async fn acme(&self) -> Option<(AcmeOptions, Vec<AcmeCertificate>)> {
        self.state.lock().await.source.as_ref()?.acme()
    }

    /// Runs `f` on the supervisor (to read handles, addresses); `None` once shut down.
    pub async fn inspect<R>(&self, f: impl FnOnce(&Supervisor) -> R) -> Option<R> {
        self.state.lock().await.supervisor.as_ref().map(f)
    }

    /// Stops every server and waits until their connections are closed (within the context's
    /// `shutdown_grace`). Later requests get [`ControlError::ShuttingDown`].
    pub async fn shutdown(&self) {
        let supervisor = self.state.lock().await.supervisor.take();
        if let Some(supervisor) = supervisor {
            supervisor.shutdown().await;
        }
    }
}

fn log_report(report: &ReloadReport) {
    for error in &report.errors {
        tracing::error!(%error, "reload: not applied; the previous material keeps serving");
    }
    for change in &report.needs_restart {
        tracing::warn!(%change, "reload: needs a restart");
    }
    tracing::info!(
        added = %report.added.join(","),
        removed = %report.removed.join(","),
        rebound = %report.rebound.join(","),
        updated = %report.updated.join(","),
        unchanged = report.unchanged.len(),
        "reloaded"
    );
}
