//! `ServerRegistry`: which servers a context has, for anyone who may only read (the status page,
//! the admin API).
//!
//! Servers register themselves when bound and leave when dropped, so the list is true without a
//! supervisor; handlers read it and never reach back up into the code that runs servers. A name
//! is unique among servers that are not draining: a server being replaced (rebound on reload)
//! drains under its name while its successor already serves under the same one.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// Stopped through the admin API, and still configured: it can be started again. Only the
    /// [`crate::control::Controller`] reports it; the registry lists servers that have a port.
    Stopped,
}

impl fmt::Display for ServerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Bound => "bound",
            Self::Serving => "serving",
            Self::Draining => "draining",
            Self::Stopped => "stopped",
        })
    }
}

/// One line of the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ServerListing {
    /// The server's name.
    pub name: String,
    /// The address it listens on.
    pub listen: SocketAddr,
    /// Where it is in its life.
    pub state: ServerState,
}

/// The servers of one context.
#[derive(Debug, Clone, Default)]
pub struct ServerRegistry {
    servers: Arc<Mutex<Servers>>,
    next_id: Arc<AtomicU64>,
}

/// Every listing by id, and the id serving under each name that is not draining (so
/// registering 10,000 servers checks names in constant time, not by scanning the list).
#[derive(Debug, Default)]
struct Servers {
    by_id: BTreeMap<u64, ServerListing>,
    not_draining: HashMap<String, u64>,
}

impl Servers {
    fn release_name(&mut self, id: u64) {
        if let Some(listing) = self.by_id.get(&id) {
            if self.not_draining.get(&listing.name) == Some(&id) {
                self.not_draining.remove(&listing.name);
            }
        }
    }
}

/// The name is taken by another server of the same context that is not draining.
#[derive(Debug, Clone, thiserror::Error)]
#[error("a server named {0:?} already exists in this context")]
pub struct DuplicateName(pub String);

impl ServerRegistry {
    /// Every server, sorted by name (a draining one before its successor).
    pub fn list(&self) -> Vec<ServerListing> {
        let mut listings: Vec<_> = self.lock().by_id.values().cloned().collect();
        listings.sort_by(|a, b| {
            let draining_first = |l: &ServerListing| l.state != ServerState::Draining;
            (&a.name, draining_first(a)).cmp(&(&b.name, draining_first(b)))
        });
        listings
    }

    pub(crate) fn register(
        &self,
        name: &str,
        listen: SocketAddr,
    ) -> Result<Registration, DuplicateName> {
        let mut servers = self.lock();
        if servers.not_draining.contains_key(name) {
            return Err(DuplicateName(name.to_owned()));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let listing = ServerListing {
            name: name.to_owned(),
            listen,
            state: ServerState::Bound,
        };
        servers.not_draining.insert(name.to_owned(), id);
        servers.by_id.insert(id, listing);
        Ok(Registration(RegistryEntry {
            registry: self.clone(),
            id,
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Servers> {
        // The map stays consistent even if a holder panicked: every update is one insert/remove.
        self.servers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A reference to one server's line, to update its state.
#[derive(Debug, Clone)]
pub(crate) struct RegistryEntry {
    registry: ServerRegistry,
    id: u64,
}

impl RegistryEntry {
    pub(crate) fn set_state(&self, state: ServerState) {
        let mut servers = self.registry.lock();
        if state == ServerState::Draining {
            servers.release_name(self.id);
        }
        if let Some(listing) = servers.by_id.get_mut(&self.id) {
            listing.state = state;
        }
    }
}

/// A server's place in the registry; dropping it removes the server from the list.
#[derive(Debug)]
pub(crate) struct Registration(RegistryEntry);

impl Registration {
    pub(crate) fn entry(&self) -> &RegistryEntry {
        &self.0
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut servers = self.0.registry.lock();
        servers.release_name(self.0.id);
        servers.by_id.remove(&self.0.id);
    }
}
