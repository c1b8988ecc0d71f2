//! What lets a client resume a session, and what keeps resumption from getting past client
//! authentication.
//!
//! rustls resumes any session its cache or ticket keys accept, without asking again whether the
//! client would pass today's client-auth policy (rustls' own docs warn against sharing session
//! state between differing policies). So, for servers that verify clients:
//! - the session cache and ticket keys are bound to the policy's fingerprint (mode, CAs, CRLs):
//!   after a reload that changes any of them, no earlier session resumes;
//! - each connection gets a [`ChainGuard`]: tickets and cached sessions carry the time of the
//!   full handshake they descend from, and one older than the server's `max_session_age` is not
//!   resumed (RFC 8446 §4.6.1 bounds a ticket's life; this bounds the chain of tickets each
//!   resumption issues). The server also re-verifies the certificate of a resumed session
//!   against today's CAs, CRLs and clock (`server/connection.rs`).

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::server::{
    NoServerSessionStorage, ProducesTickets, ServerSessionMemoryCache, StoresServerSessions,
};

use super::policy::TlsPolicy;
use super::tickets::{ServerTicketer, TicketKeys};

/// What a server keeps across reloads, so resumption survives new certificates, as long as its
/// client-auth policy stays the same.
#[derive(Debug, Clone)]
pub(crate) struct ResumptionState {
    pub(crate) session_cache: Arc<dyn StoresServerSessions>,
    /// `None` when the context has no ticket keys.
    pub(crate) ticketer: Option<Arc<ServerTicketer>>,
    /// The client-auth fingerprint this state belongs to (`None`: no client auth).
    pub(crate) binding: Option<[u8; 32]>,
}

impl ResumptionState {
    /// State bound to `binding`, the fingerprint of every client-auth policy the server's
    /// connections may be under (`None`: none verifies clients).
    pub(crate) fn new(
        binding: Option<[u8; 32]>,
        policy: &TlsPolicy,
        server: &str,
        keys: Option<&Arc<TicketKeys>>,
    ) -> Self {
        let session_cache: Arc<dyn StoresServerSessions> = match policy.session_cache_size {
            0 => Arc::new(NoServerSessionStorage {}),
            size => Arc::new(LazySessionCache::new(size)),
        };
        Self {
            session_cache,
            ticketer: keys.map(|keys| keys.ticketer(server, binding)),
            binding,
        }
    }

    /// Whether sessions of this state may resume under the policies `binding` stands for.
    pub(crate) fn fits(&self, binding: Option<[u8; 32]>) -> bool {
        self.binding == binding
    }
}

/// rustls' memory cache, made on the first session stored: rustls allocates a cache's whole
/// capacity up front (4,096 entries by default, about 400 KB of address space and a page or
/// more of RSS), which 10,000 servers that may never see TLS 1.2 or stateful resumption would
/// all pay at bind.
#[derive(Debug)]
struct LazySessionCache {
    size: usize,
    cache: OnceLock<Arc<ServerSessionMemoryCache>>,
}

impl LazySessionCache {
    fn new(size: usize) -> Self {
        Self {
            size,
            cache: OnceLock::new(),
        }
    }
}

impl StoresServerSessions for LazySessionCache {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.cache
            .get_or_init(|| ServerSessionMemoryCache::new(self.size))
            .put(key, value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.cache.get()?.get(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.cache.get()?.take(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

/// One connection's view of the session chain it may resume: the time (Unix seconds) of the
/// full handshake the resumed session descends from, once known.
#[derive(Debug)]
pub(crate) struct ChainGuard {
    origin: Mutex<Option<u64>>,
    max_age_secs: u64,
}

/// Bytes of the chain's origin time in front of each session value.
const ORIGIN_LEN: usize = 8;

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl ChainGuard {
    pub(crate) fn new(max_age: std::time::Duration) -> Arc<Self> {
        Arc::new(Self {
            origin: Mutex::new(None),
            max_age_secs: max_age.as_secs(),
        })
    }

    /// `value` with this connection's chain origin in front (now, for a full handshake).
    fn seal(&self, value: &[u8]) -> Vec<u8> {
        let origin = self
            .origin
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .unwrap_or_else(now_secs);
        let mut out = Vec::with_capacity(ORIGIN_LEN + value.len());
        out.extend_from_slice(&origin.to_be_bytes());
        out.extend_from_slice(value);
        out
    }

    /// The session value behind its origin, if the chain is young enough; records the origin.
    fn open(&self, sealed: Vec<u8>) -> Option<Vec<u8>> {
        let origin = u64::from_be_bytes(sealed.get(..ORIGIN_LEN)?.try_into().ok()?);
        if now_secs().saturating_sub(origin) > self.max_age_secs {
            return None;
        }
        let mut recorded = self.origin.lock().unwrap_or_else(PoisonError::into_inner);
        *recorded = Some(recorded.map_or(origin, |seen| seen.min(origin)));
        Some(sealed[ORIGIN_LEN..].to_vec())
    }
}

/// A server's ticketer, seen through one connection's [`ChainGuard`].
#[derive(Debug)]
pub(crate) struct GuardedTickets {
    pub(crate) inner: Arc<dyn ProducesTickets>,
    pub(crate) guard: Arc<ChainGuard>,
}

impl ProducesTickets for GuardedTickets {
    fn enabled(&self) -> bool {
        self.inner.enabled()
    }

    fn lifetime(&self) -> u32 {
        self.inner.lifetime()
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.inner.encrypt(&self.guard.seal(plain))
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.guard.open(self.inner.decrypt(cipher)?)
    }
}

/// A server's session cache, seen through one connection's [`ChainGuard`].
#[derive(Debug)]
pub(crate) struct GuardedSessions {
    pub(crate) inner: Arc<dyn StoresServerSessions>,
    pub(crate) guard: Arc<ChainGuard>,
}

impl StoresServerSessions for GuardedSessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.inner.put(key, self.guard.seal(&value))
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.guard.open(self.inner.get(key)?)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.guard.open(self.inner.take(key)?)
    }

    fn can_cache(&self) -> bool {
        self.inner.can_cache()
    }
}

/// `config` for one connection of a server that verifies clients: its resumption goes through a
/// fresh [`ChainGuard`]. Other servers use their shared config as it is.
pub(crate) fn guarded_config(
    config: &Arc<rustls::ServerConfig>,
    max_age: std::time::Duration,
) -> Arc<rustls::ServerConfig> {
    let guard = ChainGuard::new(max_age);
    let mut config = (**config).clone();
    config.ticketer = Arc::new(GuardedTickets {
        inner: config.ticketer.clone(),
        guard: guard.clone(),
    });
    config.session_storage = Arc::new(GuardedSessions {
        inner: config.session_storage.clone(),
        guard,
    });
    Arc::new(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_chain_keeps_its_origin_and_ends_at_its_age() {
        let first = ChainGuard::new(Duration::from_secs(3600));
        let sealed = first.seal(b"session");
        // A later connection resumes it: the chain's origin carries into its new tickets.
        let second = ChainGuard::new(Duration::from_secs(3600));
        assert_eq!(
            second.open(sealed.clone()).as_deref(),
            Some(&b"session"[..])
        );
        assert_eq!(second.seal(b"next")[..ORIGIN_LEN], sealed[..ORIGIN_LEN]);
        // An old origin is refused.
        let mut old = sealed;
        old[..ORIGIN_LEN].copy_from_slice(&(now_secs() - 7200).to_be_bytes());
        assert_eq!(ChainGuard::new(Duration::from_secs(3600)).open(old), None);
    }
}
