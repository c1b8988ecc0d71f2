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
    pub ticket_key_file: Option<PathBuf>,
    pub ticket_rotation: Option<String>,
    pub reload_check_interval: Option<String>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub strict_key_permissions: Option<bool>,
}

/// `[admin]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AdminFile {
    pub listen: String,
    pub token_file: Option<PathBuf>,
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
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
    pub tls: Option<TlsFile>,
    pub http: Option<HttpFile>,
    #[serde(default)]
    pub access_log: bool,
    #[serde(default)]
    pub reuse_port: bool,
}

/// `[server.http]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HttpFile {
    pub first_request_timeout: Option<String>,
    pub request_header_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub send_timeout: Option<String>,
    pub http2_keep_alive_interval: Option<String>,
    pub max_request_header_bytes: Option<usize>,
    pub max_concurrent_streams: Option<u32>,
    pub max_buffered_response_bytes: Option<usize>,
}

/// `[server.tls]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TlsFile {
    pub versions: Option<Vec<String>>,
    pub cipher_suites: Option<Vec<String>>,
    pub groups: Option<Vec<String>>,
    pub alpn: Option<Vec<String>>,
    pub strict_sni: Option<bool>,
    pub cert_compression: Option<bool>,
    pub client_auth: Option<ClientAuthFile>,
    pub session_cache_size: Option<usize>,
    pub tickets: Option<bool>,
    pub max_session_age: Option<String>,
}

/// `client_auth = { ca = "...", mode = "...", crl = [...] }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ClientAuthFile {
    pub ca: PathBuf,
    #[serde(default)]
    pub mode: ClientAuthModeFile,
    #[serde(default)]
    pub crl: Vec<PathBuf>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum ClientAuthModeFile {
    #[default]
    Required,
    Optional,
}

/// One entry of `certificates = [...]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CertificateFile {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ocsp: Option<PathBuf>,
}

/// `handler = { type = "..." , ... }`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub(super) enum HandlerFile {
    Status {
        #[serde(default)]
        show_servers: bool,
    },
    Forward {
        backend: String,
        connect_timeout: Option<String>,
        idle_timeout: Option<String>,
        proxy_protocol: Option<ProxyProtocolFile>,
    },
    Static {
        root: PathBuf,
        #[serde(default)]
        serve_dotfiles: bool,
    },
}

impl Default for HandlerFile {
    fn default() -> Self {
        Self::Status {
            show_servers: false,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum ProxyProtocolFile {
    V1,
    V2,
}
