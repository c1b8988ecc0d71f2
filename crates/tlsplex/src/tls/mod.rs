//! TLS material and policy: what rustls needs, and nothing about sockets.

pub(crate) mod certs;
pub(crate) mod client_auth;
pub(crate) mod ocsp;
pub(crate) mod policy;
pub(crate) mod resumption;
pub(crate) mod summary;
pub(crate) mod tickets;
