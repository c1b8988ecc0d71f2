//! `Supervisor`: owns a context's servers by name; starts them together, applies a new config as
//! a diff, stops one, or shuts all down.

use std::collections::{BTreeMap, HashMap, HashSet};

use tokio::task::JoinHandle;

mod desired;
mod plan;

pub use desired::Desired;
pub use plan::ReloadPlan;

use crate::context::Context;
use crate::server::{listener, Server, ServerError, ServerHandle, ServerInputs, ServerOptions};

/// Runs a set of servers: binds them all before any serves, reloads by name, shuts all down.
#[derive(Debug)]
pub struct Supervisor {
    ctx: Context,
    servers: BTreeMap<String, Running>,
    /// Servers removed or replaced by a reload, draining in the background.
    draining: Vec<Running>,
}

#[derive(Debug)]
struct Running {
    handle: ServerHandle,
    task: JoinHandle<Result<(), ServerError>>,
    /// What its current settings were built from (`None`: options built in code).
    inputs: Option<ServerInputs>,
}

/// What [`Supervisor::reload`] did, by server name.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ReloadReport {
    /// Servers new in the config, now serving.
    pub added: Vec<String>,
    /// Servers gone from the config: no longer accepting, draining.
    pub removed: Vec<String>,
    /// Servers whose `listen` changed: the new socket serves, the old one drains.
    pub rebound: Vec<String>,
    /// Servers updated in place (certificates, TLS policy, handler, timeout, limit).
    pub updated: Vec<String>,
    /// Servers left as they were: built from the same inputs (their config table, the
    /// settings around it, the content of the files it names) as the running one.
    pub unchanged: Vec<String>,
    /// What could not be applied, one sentence each, naming the server or file. When binding a
    /// new address fails, nothing at all is applied.
    pub errors: Vec<String>,
    /// Changes that take effect only on restart (`[global]` settings; the supervisor leaves
    /// this to whoever compares settings, the [`crate::control::Controller`]).
    pub needs_restart: Vec<String>,
}

/// No server of that name is running under this supervisor.
#[derive(Debug, Clone, thiserror::Error)]
#[error("no server named {0:?}")]
pub struct UnknownServer(pub String);

impl Supervisor {
    /// Binds every server in `options` first, and only then starts them, so a bad address fails
    /// the whole start before any port serves. The error names the server and the address.
    /// Must be called within a tokio runtime.
    pub fn start(
        ctx: &Context,
        options: impl IntoIterator<Item = ServerOptions>,
    ) -> Result<Self, ServerError> {
        Self::start_with_listeners(ctx, options, HashMap::new())
    }

    /// As [`Supervisor::start`], but a server whose name is a key of `listeners` serves on that
    /// already-listening socket (systemd socket activation) instead of binding its `listen`.
    pub fn start_with_listeners(
        ctx: &Context,
        options: impl IntoIterator<Item = ServerOptions>,
        mut listeners: HashMap<String, std::net::TcpListener>,
    ) -> Result<Self, ServerError> {
        let bound = options
            .into_iter()
            .map(|opts| {
                let inputs = opts.inputs;
                let server = match listeners.remove(opts.name()) {
                    Some(listener) => Server::from_listener(ctx, opts, listener),
                    None => Server::bind(ctx, opts),
                };
                server.map(|server| (server, inputs))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut supervisor = Self {
            ctx: ctx.clone(),
            servers: BTreeMap::new(),
            draining: Vec::new(),
        };
        for (server, inputs) in bound {
            supervisor.spawn(server, inputs);
        }
        Ok(supervisor)
    }

    /// The context the servers share.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Binds and starts one more server.
    pub fn add(&mut self, options: ServerOptions) -> Result<ServerHandle, ServerError> {
        let inputs = options.inputs;
        let server = Server::bind(&self.ctx, options)?;
        let handle = server.handle();
        self.spawn(server, inputs);
        Ok(handle)
    }

    fn spawn(&mut self, server: Server, inputs: Option<ServerInputs>) {
        let handle = server.handle();
        let task = tokio::spawn(server.run());
        let running = Running {
            handle,
            task,
            inputs,
        };
        self.servers
            .insert(running.handle.name().to_owned(), running);
    }

    /// Handles to every running server, by name.
    pub fn servers(&self) -> impl Iterator<Item = &ServerHandle> {
        self.servers.values().map(|running| &running.handle)
    }

    /// The server called `name`.
    pub fn server(&self, name: &str) -> Option<&ServerHandle> {
        self.servers.get(name).map(|running| &running.handle)
    }

    /// Applies the desired servers as a diff, by name ([`ReloadPlan`]):
    /// - a new name is bound and started;
    /// - a missing name stops accepting and drains in the background;
    /// - a changed `listen` gets its new socket bound and serving before the old one closes;
    /// - a server built from the same inputs as the running one (same config table, settings
    ///   and file contents, see `ServerInputs`) is left as it is;
    /// - every other server is updated in place ([`ServerHandle::update`]): new connections get
    ///   the new certificates, policy, handler, timeout and limit; open ones keep theirs.
    ///
    /// New addresses are bound first: if any fails, nothing changes. No connection of an
    /// unchanged server notices. Returns once the ports of removed and moved servers are closed
    /// (their connections may still be draining).
    pub async fn reload<'a>(
        &mut self,
        desired: impl IntoIterator<Item = impl Into<Desired<'a>>>,
    ) -> ReloadReport {
        let mut report = ReloadReport::default();
        self.draining.retain(|retired| !retired.task.is_finished());
        let desired: Vec<Desired<'a>> = desired.into_iter().map(Into::into).collect();
        let running = self
            .servers
            .values()
            .map(|r| (r.handle.name(), r.handle.local_addr()));
        let plan = ReloadPlan::new(running, desired.iter().map(|d| (d.name(), d.listen())));

        // Servers that need a socket: built now, to bind with their settings.
        let to_bind: HashSet<String> = plan.to_bind().map(str::to_owned).collect();
        let desired: Vec<Desired<'a>> = desired
            .into_iter()
            .map(|d| {
                if to_bind.contains(d.name()) {
                    d.build().into()
                } else {
                    d
                }
            })
            .collect();
        let mut fresh: HashMap<String, std::net::TcpListener> = HashMap::new();
        let binding = desired.iter().filter(|d| to_bind.contains(d.name()));
        for options in binding.filter_map(Desired::built) {
            match listener::bind(options.listen, options.backlog, options.reuse_port) {
                Ok(socket) => drop(fresh.insert(options.name().to_owned(), socket)),
                Err(source) => report.errors.push(
                    ServerError::Bind {
                        server: options.name().to_owned(),
                        addr: options.listen,
                        source,
                    }
                    .to_string(),
                ),
            }
        }
        if !report.errors.is_empty() {
            return report; // the sockets bound so far close here; nothing was changed
        }

        for desired in desired {
            let name = desired.name().to_owned();
            match (fresh.remove(&name), self.servers.get_mut(&name)) {
                (Some(socket), _) => self.start_or_replace(desired.build(), socket, &mut report),
                (None, Some(running))
                    if desired.inputs().is_some() && running.inputs == desired.inputs() =>
                {
                    report.unchanged.push(name)
                }
                (None, Some(running)) => {
                    let options = desired.build();
                    match running.handle.update(&options) {
                        Ok(()) => {
                            running.inputs = options.inputs;
                            report.updated.push(name)
                        }
                        Err(error) => report.errors.push(error.to_string()),
                    }
                }
                (None, None) => report.errors.push(format!("server {name:?}: not bound")),
            }
        }
        let retired_before = self.draining.len();
        for name in plan.remove {
            self.retire_for_good(&name);
            report.removed.push(name);
        }
        for retired in &self.draining[retired_before..] {
            retired.handle.port_closed().await;
        }
        report
    }

    /// Starts a server on `socket`; if one of that name runs, it drains once the new one serves.
    fn start_or_replace(
        &mut self,
        options: ServerOptions,
        socket: std::net::TcpListener,
        report: &mut ReloadReport,
    ) {
        let name = options.name().to_owned();
        let old = self
            .servers
            .get(&name)
            .map(|running| running.handle.clone());
        if let Some(old) = &old {
            old.set_replaced(true); // lets the successor register the same name
        }
        let inputs = options.inputs;
        match Server::from_listener(&self.ctx, options, socket) {
            Ok(server) => {
                if old.is_some() {
                    self.retire(&name);
                    report.rebound.push(name);
                } else {
                    report.added.push(name);
                }
                self.spawn(server, inputs);
            }
            Err(error) => {
                if let Some(old) = &old {
                    old.set_replaced(false);
                }
                report.errors.push(error.to_string());
            }
        }
    }

    /// Stops the server called `name` and lets it drain in the background.
    fn retire(&mut self, name: &str) {
        if let Some(running) = self.servers.remove(name) {
            running.handle.stop();
            self.draining.push(running);
        }
    }

    /// As [`Supervisor::retire`], for a name no successor takes: its metric series go too.
    fn retire_for_good(&mut self, name: &str) {
        if let Some(running) = self.servers.get(name) {
            running.handle.forget_metrics(self.ctx.metrics());
        }
        self.retire(name);
    }

    /// Every server's figures, by name.
    pub fn stats(&self) -> Vec<crate::ServerStats> {
        self.servers().map(ServerHandle::stats).collect()
    }

    /// Stops the server called `name` and lets it drain in the background; returns once its port
    /// is closed. Its metric series are dropped.
    pub async fn remove(&mut self, name: &str) -> Result<(), UnknownServer> {
        let handle = self
            .server(name)
            .cloned()
            .ok_or_else(|| UnknownServer(name.to_owned()))?;
        self.retire_for_good(name);
        handle.port_closed().await;
        Ok(())
    }

    /// Stops the server called `name` alone and waits until it has drained. Its metric series
    /// are dropped.
    pub async fn stop(&mut self, name: &str) -> Result<(), UnknownServer> {
        let running = self
            .servers
            .remove(name)
            .ok_or_else(|| UnknownServer(name.to_owned()))?;
        running.handle.forget_metrics(self.ctx.metrics());
        running.handle.stop();
        join(name, running.task).await;
        Ok(())
    }

    /// Stops every server: all stop accepting at once, then each drains within the context's
    /// `shutdown_grace`. Returns when every connection is closed.
    pub async fn shutdown(self) {
        for running in self.servers.values() {
            running.handle.stop();
        }
        let everything = self.servers.into_values().chain(self.draining);
        for Running { handle, task, .. } in everything {
            join(handle.name(), task).await;
        }
    }
}

async fn join(name: &str, task: JoinHandle<Result<(), ServerError>>) {
    match task.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::error!(server = name, %error, "server failed"),
        Err(error) => tracing::error!(server = name, %error, "server task panicked"),
    }
}
