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
    pub state_dir: Option<PathBuf>,
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
    /// `None`: [`HandlerFile::for_unrouted`].
    pub handler: Option<HandlerFile>,
    pub max_connections: Option<usize>,
    pub max_connections_per_client: Option<usize>,
    pub request_rate_per_client: Option<RateFile>,
    pub handshake_timeout: Option<String>,
    pub tls: Option<TlsFile>,
    pub http: Option<HttpFile>,
    #[serde(default)]
    pub access_log: bool,
    #[serde(default)]
    pub reuse_port: bool,
    /// Each deserialized on its own (config/route.rs), so a problem names its route.
    #[serde(default)]
    pub route: Vec<toml::Table>,
    /// Each deserialized on its own (config/path.rs), so a problem names its rule.
    #[serde(default)]
    pub path: Vec<toml::Table>,
}

/// `request_rate_per_client = { per_second = 20, burst = 40, clients = 16384 }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RateFile {
    pub per_second: u32,
    pub burst: Option<u32>,
    pub clients: Option<usize>,
}

/// One `[[server.route]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RouteFile {
    pub name: Option<String>,
    pub names: Option<Vec<String>>,
    /// `None`: the status page, or a 404 in front of path rules.
    pub handler: Option<HandlerFile>,
    pub alpn: Option<Vec<String>>,
    pub client_auth: Option<ClientAuthFile>,
    pub strict_sni_host: Option<bool>,
    #[serde(default)]
    pub path: Vec<toml::Table>,
}

/// One `[[server.path]]` (or `[[server.route.path]]`) table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PathFile {
    pub exact: Option<String>,
    pub prefix: Option<String>,
    #[serde(default)]
    pub strip_prefix: bool,
    pub handler: Option<HandlerFile>,
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
    pub max_request_headers: Option<usize>,
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
    pub strict_sni_host: Option<bool>,
    pub cert_compression: Option<bool>,
    pub client_auth: Option<ClientAuthFile>,
    pub session_cache_size: Option<usize>,
    pub tickets: Option<bool>,
    pub tls13_tickets: Option<usize>,
    pub max_session_age: Option<String>,
    pub max_client_hello: Option<usize>,
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
    pub allow: Option<AllowFile>,
}

/// `allow = { cn = [...], dns = [...], uri = [...] }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AllowFile {
    #[serde(default)]
    pub cn: Vec<String>,
    #[serde(default)]
    pub dns: Vec<String>,
    #[serde(default)]
    pub uri: Vec<String>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum ClientAuthModeFile {
    #[default]
    Required,
    Optional,
}

/// One entry of `certificates = [...]`: files, or names for ACME.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CertificateFile {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub ocsp: Option<PathBuf>,
    pub acme: Option<Vec<String>>,
    pub challenge: Option<super::dns01::Challenge>,
    pub profile: Option<String>,
}

/// `handler = { type = "..." , ... }`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub(super) enum HandlerFile {
    Status {
        #[serde(default)]
        show_servers: bool,
        response_headers: Option<HeaderEditsFile>,
        #[serde(default)]
        compress: bool,
        access: Option<AccessFile>,
    },
    Forward(PoolFile),
    Passthrough(PoolFile),
    /// A handler the program running the config gives by name.
    External {
        name: String,
    },
    Proxy(Box<ProxyFile>),
    Static {
        root: PathBuf,
        #[serde(default)]
        serve_dotfiles: bool,
        index: Option<Vec<String>>,
        #[serde(default)]
        listing: bool,
        #[serde(default)]
        precompressed: bool,
        #[serde(default)]
        error_pages: std::collections::BTreeMap<String, String>,
        cache: Option<FileCacheFile>,
        response_headers: Option<HeaderEditsFile>,
        #[serde(default)]
        compress: bool,
        access: Option<AccessFile>,
    },
    Respond {
        #[serde(default = "default_respond_status")]
        status: u16,
        #[serde(default)]
        headers: std::collections::BTreeMap<String, String>,
        #[serde(default)]
        body: String,
        response_headers: Option<HeaderEditsFile>,
        #[serde(default)]
        compress: bool,
        access: Option<AccessFile>,
    },
}

/// `static`'s `cache = { ... }`: the open-file cache's bounds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileCacheFile {
    pub max_entries: Option<usize>,
    pub max_bytes: Option<usize>,
    pub revalidate: Option<String>,
}

fn default_respond_status() -> u16 {
    200
}

impl Default for HandlerFile {
    fn default() -> Self {
        Self::Status {
            show_servers: false,
            response_headers: None,
            compress: false,
            access: None,
        }
    }
}

impl HandlerFile {
    /// A server's own handler when none is named: the status page on a server without routes
    /// (the demo's), but a plain 404 on one with routes, where it answers only clients whose
    /// SNI no route takes (a proxy-only config does not show them TLS details and addresses).
    pub(super) fn for_unrouted(has_routes: bool) -> Self {
        if has_routes {
            Self::not_found("no site is served under this name here\n")
        } else {
            Self::default()
        }
    }

    /// `404` with `body`: what a server or route with path rules and no handler of its own
    /// answers where no rule takes the path.
    pub(super) fn not_found(body: &str) -> Self {
        Self::Respond {
            status: 404,
            headers: std::collections::BTreeMap::new(),
            body: body.to_owned(),
            response_headers: None,
            compress: false,
            access: None,
        }
    }
}

/// `forward` and `passthrough`: the backends and how they are reached (`backend_tls`: forward
/// only).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PoolFile {
    pub backend: Option<String>,
    pub backends: Option<Vec<String>>,
    pub balance: Option<String>,
    pub health_check: Option<HealthCheckFile>,
    pub connect_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub proxy_protocol: Option<ProxyProtocolFile>,
    pub backend_tls: Option<BackendTlsFile>,
}

/// `proxy`: the pool's keys (`idle_timeout` for WebSocket tunnels; no `proxy_protocol`: the
/// forwarded headers carry the client) and how requests and responses are carried.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ProxyFile {
    pub backend: Option<String>,
    pub backends: Option<Vec<String>>,
    pub balance: Option<String>,
    pub health_check: Option<HealthCheckFile>,
    pub connect_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub backend_tls: Option<BackendTlsFile>,
    pub backend_protocol: Option<String>,
    pub response_header_timeout: Option<String>,
    pub keepalive: Option<usize>,
    pub keepalive_timeout: Option<String>,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    #[serde(default)]
    pub forwarded: bool,
    pub request_headers: Option<HeaderEditsFile>,
    pub response_headers: Option<HeaderEditsFile>,
    pub max_request_body: Option<u64>,
    #[serde(default)]
    pub client_cert: bool,
    #[serde(default)]
    pub compress: bool,
    pub access: Option<AccessFile>,
}

/// `access = { allow = ["10.0.0.0/8"], deny = ["10.9.0.0/16"], basic_auth = "htpasswd" }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AccessFile {
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
    /// An htpasswd file of bcrypt hashes.
    pub basic_auth: Option<String>,
    pub realm: Option<String>,
}

/// `request_headers = { set = { … }, add = { … }, remove = [ … ] }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HeaderEditsFile {
    #[serde(default)]
    pub set: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub add: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

/// `health_check = { interval = "5s", timeout = "1s", path = "/healthz", expect = "2xx" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HealthCheckFile {
    pub interval: String,
    pub timeout: Option<String>,
    pub path: Option<String>,
    pub expect: Option<String>,
}

/// `backend_tls = { ca = "...", server_name = "...", cert = "...", key = "..." }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BackendTlsFile {
    pub ca: PathBuf,
    pub server_name: String,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum ProxyProtocolFile {
    V1,
    V2,
}
