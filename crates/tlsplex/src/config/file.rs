//! What the TOML file says, field for field, before any validation.

use std::path::PathBuf;

use serde::Deserialize;

/// `[global]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GlobalFile {
    pub handshake_timeout: Option<String>,
    pub max_connections: Option<usize>,
    pub server_max_connections: Option<usize>,
    pub shutdown_grace: Option<String>,
    pub worker_threads: Option<usize>,
}

/// One `[[server]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ServerFile {
    pub name: String,
    pub listen: String,
    pub certificates: Vec<CertificateFile>,
    #[serde(default)]
    pub handler: HandlerFile,
    pub max_connections: Option<usize>,
    pub handshake_timeout: Option<String>,
    pub alpn: Option<Vec<String>>,
}

/// One entry of `certificates = [...]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CertificateFile {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `handler = { type = "..." , ... }`.
#[derive(Debug, Default, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub(super) enum HandlerFile {
    #[default]
    Status,
}
