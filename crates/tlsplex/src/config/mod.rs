//! The config file: [`Config::load`] reads TOML, validates it, and loads every certificate, so a
//! [`Config`] is ready to run and `tlsplex check` finds everything that would stop a start.
//!
//! Two types, as sozu does it: what the file says (`file.rs`, `deny_unknown_fields`) and what
//! was validated ([`Config`]). Pure data and files: no sockets, no runtime.

mod admin;
mod error;
mod file;
mod global;
mod handler;
mod http;
mod outline;
mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use admin::validate_admin;
pub use admin::AdminOptions;
use error::Problems;
pub use error::{ConfigError, Problem};
use file::ServerFile;
use global::validate_global;
pub use global::GlobalSettings;
use handler::validate_handler;
pub use outline::{AdminOutline, ConfigOutline, ServerOutline};
use tls::{load_certificates, validate_tls};

use crate::handler::{ForwardOptions, HttpLimits, StaticHandler};
use crate::server::ServerOptions;
use crate::tls::certs::CertStore;
use crate::tls::policy::TlsPolicy;

/// A validated config: global settings and servers, certificates loaded.
#[derive(Debug)]
#[non_exhaustive]
pub struct Config {
    /// The file it came from.
    pub file: PathBuf,
    /// `[global]`.
    pub global: GlobalSettings,
    /// `[admin]`, when the file turns the admin endpoint on.
    pub admin: Option<AdminOptions>,
    /// Every `[[server]]`, in file order.
    pub servers: Vec<ServerSpec>,
}

/// One `[[server]]`, validated, certificates loaded.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerSpec {
    /// Unique name.
    pub name: String,
    /// Address to bind.
    pub listen: SocketAddr,
    /// Certificate and key files, as resolved against the config file's folder.
    pub certificate_files: Vec<(PathBuf, PathBuf)>,
    /// The loaded certificates.
    pub certs: Arc<CertStore>,
    /// What serves connections after the handshake.
    pub handler: HandlerSpec,
    /// Override of the global per-server connection limit.
    pub max_connections: Option<usize>,
    /// Override of the global handshake timeout.
    pub handshake_timeout: Option<Duration>,
    /// How the server negotiates TLS (`[server.tls]`).
    pub tls: TlsPolicy,
    /// Timeouts and sizes for HTTP connections (`[server.http]`).
    pub http: HttpLimits,
    /// Log one line per connection.
    pub access_log: bool,
    /// Share the address with other sockets (`SO_REUSEPORT`), for zero-downtime upgrades.
    pub reuse_port: bool,
    /// The other files this server's TLS material came from (OCSP responses, client CA, CRLs),
    /// for reload watching ([`Config::watched_files`]).
    pub(crate) material_files: Vec<PathBuf>,
}

/// The handler a config file can name.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum HandlerSpec {
    /// The built-in status page; `show_servers` lists every server of the process on it.
    Status {
        /// List every server of the process (off by default: it tells any client what else runs).
        show_servers: bool,
    },
    /// TLS termination to a plaintext backend.
    Forward(ForwardOptions),
    /// Files from a folder.
    Static(StaticHandler),
}

impl ServerSpec {
    /// The options to bind this server with.
    pub fn options(&self) -> ServerOptions {
        let mut options = ServerOptions::new(&self.name, self.listen, self.certs.clone());
        if let Some(timeout) = self.handshake_timeout {
            options = options.handshake_timeout(timeout);
        }
        if let Some(limit) = self.max_connections {
            options = options.max_connections(limit);
        }
        options = options
            .tls(self.tls.clone())
            .http_limits(self.http)
            .access_log(self.access_log)
            .reuse_port(self.reuse_port);
        match &self.handler {
            HandlerSpec::Status { show_servers } => options.status_lists_servers(*show_servers),
            HandlerSpec::Forward(forward) => options.forward(forward.clone()),
            HandlerSpec::Static(files) => options.static_files(files.clone()),
        }
    }
}

impl Config {
    /// Every file this config was read from, whose change a reload would pick up: the config
    /// file, the ticket key file, each server's certificates and keys, OCSP responses, client
    /// CAs and CRLs.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let mut paths = vec![self.file.clone()];
        paths.extend(self.global.ticket_key_file.clone());
        for server in &self.servers {
            for (cert, key) in &server.certificate_files {
                paths.extend([cert.clone(), key.clone()]);
            }
            paths.extend(server.material_files.iter().cloned());
        }
        paths
    }

    /// Reads, validates and loads `path`; relative paths inside resolve against its folder.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = crate::files::read_text(path, crate::files::MAX_MATERIAL_FILE).map_err(|e| {
            ConfigError::whole_file(path, format!("cannot read the config file: {e}"))
        })?;
        Self::parse(&text, path, base_of(path))
    }

    /// Validates one `[[server]]` table given on its own (as the admin API receives it), against
    /// the same rules as a file; relative paths resolve against `base`.
    pub fn parse_server(text: &str, base: &Path) -> Result<ServerSpec, ConfigError> {
        let source = Path::new("<server table>");
        let fail = |message: String| ConfigError::whole_file(source, message);
        let table: toml::Table = toml::from_str(text)
            .map_err(|e| fail(format!("not valid TOML: {}", one_line(e.message()))))?;
        let mut problems = Problems::default();
        let mut specs = validate_servers(vec![table], base, false, &mut problems);
        let spec = problems.into_result(source.to_owned(), specs.pop())?;
        spec.ok_or_else(|| fail("no server in the table".to_owned()))
    }

    /// Validates `text` as if read from `file`; relative paths resolve against `base`.
    pub fn parse(text: &str, file: &Path, base: &Path) -> Result<Self, ConfigError> {
        let document: toml::Table = match toml::from_str(text) {
            Ok(document) => document,
            Err(e) => {
                let line = e
                    .span()
                    .map(|span| format!("line {}: ", text[..span.start].matches('\n').count() + 1))
                    .unwrap_or_default();
                return Err(ConfigError {
                    file: file.to_owned(),
                    problems: vec![Problem {
                        server: None,
                        key: String::new(),
                        message: format!("{line}not valid TOML: {}", one_line(e.message())),
                    }],
                });
            }
        };
        let mut problems = Problems::default();
        let mut global = None;
        let mut admin = None;
        let mut servers = Vec::new();
        for (key, value) in document {
            match key.as_str() {
                "global" => global = Some(value),
                "admin" => admin = Some(value),
                "server" => servers = server_tables(value, &mut problems),
                other => problems.global(
                    other,
                    "unknown top-level key (expected [global], [admin] or [[server]])",
                ),
            }
        }
        let global = validate_global(global, base, &mut problems);
        let admin = admin.and_then(|value| {
            validate_admin(value, base, global.strict_key_permissions, &mut problems)
        });
        let servers = validate_servers(servers, base, global.strict_key_permissions, &mut problems);
        problems.into_result(
            file.to_owned(),
            Self {
                file: file.to_owned(),
                global,
                admin,
                servers,
            },
        )
    }
}

/// The folder a config file's relative paths resolve against: its own.
pub(crate) fn base_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Folds a multi-line message into one line, so each problem stays one line of output.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

fn server_tables(value: toml::Value, problems: &mut Problems) -> Vec<toml::Table> {
    match value {
        toml::Value::Array(entries) => entries
            .into_iter()
            .enumerate()
            .filter_map(|(i, entry)| match entry {
                toml::Value::Table(table) => Some(table),
                _ => {
                    problems.server(&format!("#{}", i + 1), "", "must be a table");
                    None
                }
            })
            .collect(),
        _ => {
            problems.global("server", "must be an array of tables: write [[server]]");
            Vec::new()
        }
    }
}

/// Deserialises one table, turning serde's message into a problem with the key it names.
fn deserialize<T: for<'de> Deserialize<'de>>(
    table: toml::Table,
    report: &mut dyn FnMut(&str, String),
) -> Option<T> {
    match toml::Value::Table(table).try_into() {
        Ok(value) => Some(value),
        Err(e) => {
            let shown = e.to_string();
            // toml puts the path last, as "…\nin `a.b`".
            let (message, key) = match shown.trim_end().rsplit_once("\nin `") {
                Some((message, key)) => (message, key.trim_end_matches('`')),
                None => (shown.as_str(), ""),
            };
            report(key, one_line(message));
            None
        }
    }
}

/// Parses a human duration ("10s", "500ms", "1m 30s"); `None` when absent or invalid.
pub(super) fn duration(
    text: Option<&str>,
    must_be_positive: bool,
    report: &mut dyn FnMut(String),
) -> Option<Duration> {
    let text = text?;
    match humantime::parse_duration(text) {
        Ok(d) if must_be_positive && d.is_zero() => {
            report("must be longer than zero".to_owned());
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            report(format!(
                "invalid duration {text:?}: {e} (write e.g. \"10s\", \"500ms\", \"1m 30s\")"
            ));
            None
        }
    }
}

fn validate_servers(
    tables: Vec<toml::Table>,
    base: &Path,
    strict_keys: bool,
    problems: &mut Problems,
) -> Vec<ServerSpec> {
    if tables.is_empty() {
        problems.global("server", "no [[server]] is defined: nothing to run");
    }
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut listens: Vec<(SocketAddr, String)> = Vec::new();
    let mut specs = Vec::new();
    for (i, table) in tables.into_iter().enumerate() {
        let label = match table.get("name").and_then(toml::Value::as_str) {
            Some(name) if valid_name(name) => name.to_owned(),
            _ => format!("#{}", i + 1),
        };
        let Some(raw) = deserialize::<ServerFile>(table, &mut |k, m| problems.server(&label, k, m))
        else {
            continue;
        };
        if !valid_name(&raw.name) {
            problems.server(
                &label,
                "name",
                format!(
                    "{:?} is not a valid name: use 1 to 64 letters, digits, '.', '_' or '-'",
                    raw.name
                ),
            );
        }
        if let Some(first) = names.insert(raw.name.clone(), i) {
            problems.server(
                &label,
                "name",
                format!(
                    "duplicate name: server #{} is also called {:?}",
                    first + 1,
                    raw.name
                ),
            );
        }
        if let Some(spec) = validate_server(raw, &label, base, strict_keys, &listens, problems) {
            listens.push((spec.listen, spec.name.clone()));
            specs.push(spec);
        }
    }
    specs
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn validate_server(
    raw: ServerFile,
    label: &str,
    base: &Path,
    strict_keys: bool,
    listens: &[(SocketAddr, String)],
    problems: &mut Problems,
) -> Option<ServerSpec> {
    let mut ok = true;
    let listen = match raw.listen.parse::<SocketAddr>() {
        Ok(addr) => {
            if let Some((_, other)) = listens.iter().find(|(a, _)| overlaps(*a, addr)) {
                problems.server(
                    label,
                    "listen",
                    format!("{addr} is already used by server {other:?}"),
                );
                ok = false;
            }
            Some(addr)
        }
        Err(_) => {
            problems.server(
                label,
                "listen",
                format!(
                    "{:?} is not an IP:PORT address (write e.g. \"127.0.0.1:1440\" or \"[::]:443\")",
                    raw.listen
                ),
            );
            None
        }
    };
    let handshake_timeout = duration(raw.handshake_timeout.as_deref(), true, &mut |m| {
        problems.server(label, "handshake_timeout", m)
    });
    ok &= raw.handshake_timeout.is_none() || handshake_timeout.is_some();
    if raw.max_connections == Some(0) {
        problems.server(label, "max_connections", "must be at least 1");
        ok = false;
    }
    let tls = validate_tls(raw.tls.as_ref(), label, base, problems);
    let certs = load_certificates(&raw, label, base, strict_keys, problems);
    let http = http::validate_http(raw.http.as_ref(), label, problems);
    // Every part is checked, so one pass reports every problem.
    let handler = validate_handler(raw.handler, label, base, problems);
    let (
        Some(listen),
        Some((certificate_files, mut material_files, certs)),
        Some((tls, client_auth_files)),
        Some(http),
        Some(handler),
        true,
    ) = (listen, certs, tls, http, handler, ok)
    else {
        return None;
    };
    material_files.extend(client_auth_files);
    Some(ServerSpec {
        name: raw.name,
        listen,
        certificate_files,
        certs,
        handler,
        max_connections: raw.max_connections,
        handshake_timeout,
        tls,
        http,
        material_files,
        access_log: raw.access_log,
        reuse_port: raw.reuse_port,
    })
}

/// Whether two listen addresses would clash: the same address, or a wildcard and any address of
/// the same family on the same port. Port 0 never clashes (the kernel picks distinct ports).
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() == 0 || b.port() != a.port() || a.is_ipv4() != b.is_ipv4() {
        return false;
    }
    a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified()
}

#[cfg(test)]
mod tests {
    use super::overlaps;

    #[test]
    fn wildcard_overlaps_same_port_same_family_only() {
        let addr = |s: &str| s.parse().unwrap_or_else(|_| panic!("{s}"));
        assert!(overlaps(addr("0.0.0.0:443"), addr("127.0.0.1:443")));
        assert!(overlaps(addr("127.0.0.1:443"), addr("127.0.0.1:443")));
        assert!(!overlaps(addr("127.0.0.1:443"), addr("127.0.0.2:443")));
        assert!(!overlaps(addr("[::]:443"), addr("0.0.0.0:443")));
        assert!(!overlaps(addr("127.0.0.1:0"), addr("127.0.0.1:0")));
    }
}
