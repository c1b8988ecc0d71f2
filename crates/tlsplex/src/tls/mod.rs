//! TLS material and policy: what rustls needs, and nothing about sockets.

pub(crate) mod certs;
pub(crate) mod policy;
pub(crate) mod summary;
