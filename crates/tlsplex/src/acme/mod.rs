//! Automatic certificates: one ACME account and one manager for every server of the process.
//!
//! `run` (`manager.rs`) keeps each `{ acme = [...] }` certificate of the config current: a name with no
//! usable stored certificate is ordered at once (servers already listen, refusing handshakes
//! that would need it); a stored one is renewed when a third of its lifetime remains (with a
//! little jitter, so a fleet does not renew in step). Validation is TLS-ALPN-01, answered by
//! whichever server of the context the CA reaches ([`crate::tls::ChallengeStore`]). The chain
//! and key are written to the storage folder (atomically, 0600) and the config is reloaded, so
//! the new certificate is swapped in the way a reload swaps any certificate: no connection is
//! dropped. A failed order is logged with the CA's problem document and retried with
//! exponential backoff; nothing here stops the process.
//!
//! With `http01_listen`, validation is HTTP-01 instead, answered by [`Http01Listener`]; with
//! `[acme.dns01]`, DNS-01 (`dns01/`), records published in the names' zone. With
//! `storage = "redis://…"`, processes of a fleet share the account, one order lock per
//! certificate, the challenges (every process answers them) and the session-ticket secret
//! through Redis (`fleet.rs`); without it, processes sharing the storage folder take a lock file
//! per order.

//!
//! The manager and what it talks to (the CA, Redis, DNS) are the cargo feature `acme` (on by
//! default); without it a config with `[acme]` is refused, and [`Http01Listener`] remains for
//! `[http_redirect]`.

#[cfg(feature = "acme")]
mod account;
#[cfg(feature = "acme")]
mod dns01;
#[cfg(feature = "acme")]
mod fleet;
mod http01;
#[cfg(feature = "acme")]
mod manager;
#[cfg(feature = "acme")]
mod order;
#[cfg(feature = "acme")]
mod renewal;
#[cfg(feature = "acme")]
mod storage;

#[cfg(feature = "acme")]
pub use account::offered_profiles;
pub use http01::{
    Http01Listener, HTTP01_CONNECTION_TIME, HTTP01_HEADER_TIMEOUT, MAX_HTTP01_CONNECTIONS,
};
#[cfg(feature = "acme")]
pub use manager::run;
