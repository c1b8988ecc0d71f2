//! `Supervisor`: owns a context's servers by name, starts them together and stops them together.

use std::collections::BTreeMap;

use tokio::task::JoinHandle;

use crate::config::Config;
use crate::context::Context;
use crate::server::{Server, ServerError, ServerHandle, ServerOptions};

/// Runs a set of servers: binds them all before any serves, stops one by name, shuts all down.
#[derive(Debug)]
pub struct Supervisor {
    ctx: Context,
    servers: BTreeMap<String, Running>,
}

#[derive(Debug)]
struct Running {
    handle: ServerHandle,
    task: JoinHandle<Result<(), ServerError>>,
}

/// What [`Supervisor::reload`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReloadReport {
    /// Servers whose certificates and TLS policy were replaced.
    pub reloaded: Vec<String>,
    /// What could not be applied, one sentence each, naming the server or file.
    pub errors: Vec<String>,
    /// Changes that take effect only on restart (added or removed servers, a new address…).
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
        let bound = options
            .into_iter()
            .map(|opts| Server::bind(ctx, opts))
            .collect::<Result<Vec<_>, _>>()?;
        let mut supervisor = Self {
            ctx: ctx.clone(),
            servers: BTreeMap::new(),
        };
        for server in bound {
            supervisor.spawn(server);
        }
        Ok(supervisor)
    }

    /// Binds and starts one more server.
    pub fn add(&mut self, options: ServerOptions) -> Result<ServerHandle, ServerError> {
        let server = Server::bind(&self.ctx, options)?;
        let handle = server.handle();
        self.spawn(server);
        Ok(handle)
    }

    fn spawn(&mut self, server: Server) {
        let handle = server.handle();
        let task = tokio::spawn(server.run());
        self.servers
            .insert(handle.name().to_owned(), Running { handle, task });
    }

    /// Handles to every running server, by name.
    pub fn servers(&self) -> impl Iterator<Item = &ServerHandle> {
        self.servers.values().map(|running| &running.handle)
    }

    /// The server called `name`.
    pub fn server(&self, name: &str) -> Option<&ServerHandle> {
        self.servers.get(name).map(|running| &running.handle)
    }

    /// Applies a new, already validated config to the running servers: each server found by name
    /// gets the new certificates, keys, CA, CRLs and TLS policy for its new handshakes (open
    /// connections keep theirs), and the ticket key file is read again. Anything that fails keeps
    /// the old material serving. Added or removed servers and changed addresses or limits are
    /// reported in [`ReloadReport::needs_restart`].
    pub fn reload(&self, config: &Config) -> ReloadReport {
        let mut report = ReloadReport::default();
        for spec in &config.servers {
            let Some(running) = self.servers.get(&spec.name) else {
                report.needs_restart.push(format!(
                    "server {:?} is new: restart to start it",
                    spec.name
                ));
                continue;
            };
            if spec.listen != running.handle.local_addr() && spec.listen.port() != 0 {
                report.needs_restart.push(format!(
                    "server {:?} moves to {}: restart to rebind",
                    spec.name, spec.listen
                ));
            }
            match running.handle.reload_tls(spec.certs.clone(), &spec.tls) {
                Ok(()) => report.reloaded.push(spec.name.clone()),
                Err(error) => report.errors.push(error.to_string()),
            }
        }
        for name in self.servers.keys() {
            if !config.servers.iter().any(|spec| &spec.name == name) {
                report.needs_restart.push(format!(
                    "server {name:?} is no longer configured: restart to remove it"
                ));
            }
        }
        if let Some(keys) = self.ctx.ticket_keys() {
            if keys.file() != config.global.ticket_key_file.as_deref() {
                report
                    .needs_restart
                    .push("ticket_key_file changed: restart to use the new file".to_owned());
            } else if let Err(error) = keys.reload() {
                report
                    .errors
                    .push(format!("{error}; the previous ticket key stays"));
            }
        }
        report
    }

    /// Stops the server called `name` alone and waits until it has drained.
    pub async fn stop(&mut self, name: &str) -> Result<(), UnknownServer> {
        let running = self
            .servers
            .remove(name)
            .ok_or_else(|| UnknownServer(name.to_owned()))?;
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
        for (name, running) in self.servers {
            join(&name, running.task).await;
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
