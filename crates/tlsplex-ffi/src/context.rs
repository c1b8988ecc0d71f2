//! The global context: `SSL_init()` and `SSL_settings` in one call. It holds the crypto
//! provider (rustls on aws-lc-rs), the session cache and ticket keys every cert store without
//! client authentication shares (so a session made on one server resumes on another), the
//! handshake timeout, the connection limit and the ALPN protocols.

use std::ffi::c_char;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::server::{ProducesTickets, ServerSessionMemoryCache, StoresServerSessions};

use crate::handles::Handles;
use crate::tlsplex_result::{self, *};
use crate::{guard, put};

/// What a context is made with. Zero (and null) fields take their defaults, so
/// `tlsplex_settings s = {0};` is a sound start.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct tlsplex_settings {
    /// From the start of `tlsplex_accept` to the end of the handshake, in milliseconds
    /// (0: 10,000).
    pub handshake_timeout_ms: u32,
    /// Connections open at once through this context, at most (0: no limit).
    pub max_connections: u32,
    /// ALPN protocols offered, in order of preference, comma-separated: `"h2,http/1.1"` (null
    /// or empty: no ALPN).
    pub alpn: *const c_char,
    /// The lowest TLS version: 12 or 13 (0: 12).
    pub min_tls_version: u16,
}

/// The global context (`SSL_init` + `SSL_settings`): made once, used by every server and
/// thread. Threads: any number at once.
#[allow(non_camel_case_types)]
pub enum tlsplex_context {}

pub(crate) struct Context {
    pub(crate) provider: Arc<CryptoProvider>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) versions: &'static [&'static rustls::SupportedProtocolVersion],
    pub(crate) alpn: Vec<Vec<u8>>,
    pub(crate) resumption: Resumption,
    max_connections: usize,
    open: Arc<AtomicUsize>,
}

/// Where sessions are kept: one per context, and one per cert store with client
/// authentication (a session made without a client certificate must not resume where one is
/// required).
#[derive(Clone)]
pub(crate) struct Resumption {
    pub(crate) sessions: Arc<dyn StoresServerSessions>,
    pub(crate) tickets: Arc<dyn ProducesTickets>,
}

const TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// Sessions kept in memory per context (or store), at most.
const MAX_SESSIONS: usize = 4096;

impl Resumption {
    pub(crate) fn new() -> Result<Self, tlsplex_result> {
        let tickets = rustls::crypto::aws_lc_rs::Ticketer::new().map_err(|_| TLSPLEX_PANIC)?;
        Ok(Self {
            sessions: ServerSessionMemoryCache::new(MAX_SESSIONS),
            tickets,
        })
    }
}

/// One open connection's place under the context's `max_connections`; given back when dropped.
pub(crate) struct Permit(Arc<AtomicUsize>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Context {
    /// A place for one more connection, if there is room.
    pub(crate) fn permit(&self) -> Result<Permit, tlsplex_result> {
        let open = self.open.fetch_add(1, Ordering::AcqRel) + 1;
        let permit = Permit(self.open.clone());
        if self.max_connections != 0 && open > self.max_connections {
            return Err(TLSPLEX_TOO_MANY_CONNECTIONS); // the permit goes back as it drops
        }
        Ok(permit)
    }
}

pub(crate) fn contexts() -> &'static Handles<Context> {
    static CONTEXTS: OnceLock<Handles<Context>> = OnceLock::new();
    CONTEXTS.get_or_init(|| Handles::new(1))
}

/// Makes a context from `settings` (null: every default) into `*out`.
///
/// # Safety
/// `settings` must be null or point to a `tlsplex_settings` whose `alpn` is null or a
/// NUL-terminated string; `out` must be valid for a write of a pointer.
#[no_mangle]
pub unsafe extern "C" fn tlsplex_context_new(
    settings: *const tlsplex_settings,
    out: *mut *mut tlsplex_context,
) -> tlsplex_result {
    guard(|| {
        let settings = if settings.is_null() {
            tlsplex_settings {
                handshake_timeout_ms: 0,
                max_connections: 0,
                alpn: std::ptr::null(),
                min_tls_version: 0,
            }
        } else {
            // SAFETY: not null, and the caller promises it points to settings.
            unsafe { settings.read() }
        };
        let alpn = if settings.alpn.is_null() {
            Vec::new()
        } else {
            // SAFETY: not null, and the caller promises a NUL-terminated string.
            let text = unsafe { crate::text(settings.alpn) }?;
            let protocols: Vec<Vec<u8>> = (text.split(','))
                .map(|p| p.trim().as_bytes().to_vec())
                .filter(|p| !p.is_empty())
                .collect();
            if protocols.iter().any(|p| p.len() > 255) {
                return Err(TLSPLEX_INVALID_ARGUMENT);
            }
            protocols
        };
        let versions: &'static [&'static rustls::SupportedProtocolVersion] =
            match settings.min_tls_version {
                0 | 12 => rustls::ALL_VERSIONS,
                13 => TLS13_ONLY,
                _ => return Err(TLSPLEX_INVALID_ARGUMENT),
            };
        let timeout = match settings.handshake_timeout_ms {
            0 => 10_000,
            ms => ms,
        };
        let context = Context {
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
            handshake_timeout: Duration::from_millis(u64::from(timeout)),
            versions,
            alpn,
            resumption: Resumption::new()?,
            max_connections: settings.max_connections as usize,
            open: Arc::default(),
        };
        // SAFETY: the caller promises `out` is valid for a write of a pointer.
        unsafe { put(out, contexts().add(context)) }
    })
}

/// Frees a context. Connections accepted under it and cert stores used with it go on working;
/// it can no longer accept. Null is ignored.
///
/// # Safety
/// None beyond C's: `context` is a name, never followed.
#[no_mangle]
pub unsafe extern "C" fn tlsplex_context_free(context: *mut tlsplex_context) -> tlsplex_result {
    guard(|| contexts().free(context))
}
