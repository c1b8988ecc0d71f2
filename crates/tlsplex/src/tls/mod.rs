//! TLS material and policy: what rustls needs, and nothing about sockets.

pub(crate) mod allow;
pub(crate) mod certs;
pub(crate) mod challenge;
pub(crate) mod client_auth;
pub(crate) mod managed;
pub(crate) mod ocsp;
pub(crate) mod policy;
pub(crate) mod resumption;
pub(crate) mod summary;
pub(crate) mod tickets;

pub use allow::AllowList;
pub use certs::{CertLoadError, CertStore, Identity};
pub use challenge::{ChallengeError, ChallengeStore, ACME_TLS_ALPN};
pub use client_auth::{ClientAuth, ClientAuthError, ClientAuthMode};
pub use managed::{Challenge, DnsStep, ManagedCertificate, ManagedCertificates, ManagedState};
pub use ocsp::{OcspCertStatus, OcspSummary};
pub use policy::{
    TlsPolicy, UnknownName, CLIENT_HELLO_LIMITS, DEFAULT_ALPN, DEFAULT_CIPHER_SUITES,
    DEFAULT_MAX_CLIENT_HELLO, DEFAULT_MAX_SESSION_AGE, DEFAULT_SESSION_CACHE_SIZE,
    DEFAULT_TLS13_TICKETS, MAX_TLS13_TICKETS,
};
pub use summary::{sha256_fingerprint, CertSummary};
pub use tickets::{new_ticket_key_file, TicketKeyError, TicketKeys};
