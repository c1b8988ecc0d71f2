//! `Supervisor`: owns a context's servers by name, starts them together and stops them together.

use std::collections::BTreeMap;

use tokio::task::JoinHandle;

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
