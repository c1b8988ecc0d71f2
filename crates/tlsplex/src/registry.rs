//! `ServerRegistry`: which servers a context has, for anyone who may only read (the status page).
//!
//! Servers register themselves when bound and leave when dropped, so the list is true without a
//! supervisor; handlers read it and never reach back up into the code that runs servers.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::Serialize;

/// Where a server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ServerState {
    /// Bound: the port is open, connections wait in the backlog until it serves.
    Bound,
    /// Accepting and serving connections.
    Serving,
    /// Stopped accepting (port closed); in-flight connections are finishing.
    Draining,
}

impl fmt::Display for ServerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Bound => "bound",
            Self::Serving => "serving",
            Self::Draining => "draining",
        })
    }
}

/// One line of the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ServerListing {
    /// The server's name, unique in its context.
    pub name: String,
    /// The address it listens on.
    pub listen: SocketAddr,
    /// Where it is in its life.
    pub state: ServerState,
}

/// The servers of one context, by name.
#[derive(Debug, Clone, Default)]
pub struct ServerRegistry {
    servers: Arc<Mutex<BTreeMap<String, ServerListing>>>,
}

/// The name is taken by another server of the same context.
#[derive(Debug, Clone, thiserror::Error)]
#[error("a server named {0:?} already exists in this context")]
pub struct DuplicateName(pub String);

impl ServerRegistry {
    /// Every server, sorted by name.
    pub fn list(&self) -> Vec<ServerListing> {
        self.lock().values().cloned().collect()
    }

    pub(crate) fn register(
        &self,
        name: &str,
        listen: SocketAddr,
    ) -> Result<Registration, DuplicateName> {
        let mut servers = self.lock();
        if servers.contains_key(name) {
            return Err(DuplicateName(name.to_owned()));
        }
        let listing = ServerListing {
            name: name.to_owned(),
            listen,
            state: ServerState::Bound,
        };
        servers.insert(name.to_owned(), listing);
        Ok(Registration {
            registry: self.clone(),
            name: name.to_owned(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, ServerListing>> {
        // The map stays consistent even if a holder panicked: every update is one insert/remove.
        self.servers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A server's place in the registry; dropping it removes the server from the list.
#[derive(Debug)]
pub(crate) struct Registration {
    registry: ServerRegistry,
    name: String,
}

impl Registration {
    pub(crate) fn set_state(&self, state: ServerState) {
        if let Some(listing) = self.registry.lock().get_mut(&self.name) {
            listing.state = state;
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.name);
    }
}
