//! The config file: [`Config::load`] reads TOML, validates it, and loads every certificate, so a
//! [`Config`] is ready to run and `tlsplex check` finds everything that would stop a start.
//!
//! Two types, as sozu does it: what the file says (`file.rs`, `deny_unknown_fields`) and what
//! was validated ([`Config`]). Pure data and files: no sockets, no runtime.

mod acme;
mod admin;
mod dns01;
mod document;
mod error;
mod file;
mod global;
mod handler;
mod http;
mod http_redirect;
mod outline;
mod path;
mod pool;
mod proxy;
mod route;
mod server;
mod tls;
mod value;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use acme::validate_acme;
pub use acme::{AcmeCertificate, AcmeOptions, RedisUrl, LETSENCRYPT, LETSENCRYPT_STAGING};
use admin::validate_admin;
pub use admin::{AdminOptions, AdminToken, DEFAULT_TOKEN_FILE};
pub use dns01::{Challenge, Dns01Options, DnsHook, DnsProvider, Rfc2136, TsigAlgorithm, TsigKey};
use error::Problems;
pub use error::{ConfigError, Problem};
use global::validate_global;
pub use global::GlobalSettings;
pub use http_redirect::HttpRedirect;
pub use outline::{AdminOutline, ConfigOutline, ServerOutline};
use server::{validate_servers, ServerKeys};
use tls::LoadedIdentities;
use value::one_line;

use crate::handler::{
    ForwardOptions, HttpLimits, NamedHandlers, PathRule, ProxyOptions, RespondHandler,
    StaticHandler, StatusHandler,
};
use crate::rate::RequestRate;
use crate::route::Route;
use crate::server::{ServerInputs, ServerOptions};
use crate::tls::certs::CertStore;
use crate::tls::policy::TlsPolicy;

/// A validated config: global settings and servers, certificates loaded.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The file it came from.
    pub file: PathBuf,
    /// `[global]`.
    pub global: GlobalSettings,
    /// `[admin]`, when the file turns the admin endpoint on.
    pub admin: Option<AdminOptions>,
    /// `[acme]`, when servers take certificates from ACME.
    pub acme: Option<AcmeOptions>,
    /// `[http_redirect]`: the plain-HTTP port that redirects to https.
    pub http_redirect: Option<HttpRedirect>,
    /// Every `[[server]]`, in file order.
    pub servers: Vec<Arc<ServerSpec>>,
    /// What would run, but likely not as meant (a route name no certificate covers); `check`
    /// prints them and `run` logs them.
    pub warnings: Vec<Problem>,
    /// The text as read, for a load of the same text to start from.
    document: Option<Arc<document::Document>>,
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
    /// Connections one client address may hold on this server.
    pub max_connections_per_client: Option<usize>,
    /// Requests per second one client address may make, with a burst.
    pub request_rate_per_client: Option<RequestRate>,
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
    /// `[[server.route]]`, in file order.
    pub routes: Vec<Route>,
    /// `[[server.path]]`, in file order.
    pub paths: Vec<PathRule>,
    /// The other files this server's TLS material came from (OCSP responses, client CA, CRLs),
    /// for reload watching ([`Config::watched_files`]).
    pub(crate) material_files: Vec<PathBuf>,
    /// The certificates ACME provides (their files are among `certificate_files`).
    pub acme_certificates: Vec<AcmeCertificate>,
    /// What it was built from, for a reload to leave it alone when that did not change.
    pub(crate) inputs: Option<ServerInputs>,
    /// The digest of its table and the settings around it (part of `inputs`).
    pub(crate) table_digest: [u8; 32],
    /// The files its validation read, as they were (the rest of `inputs`).
    pub(crate) reads: Vec<crate::files::FileRead>,
}

/// The handler a config file can name.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum HandlerSpec {
    /// The built-in status page (`show_servers` lists every server of the process on it).
    Status(StatusHandler),
    /// TLS termination to a plaintext backend.
    Forward(ForwardOptions),
    /// An HTTP reverse proxy.
    Proxy(Box<ProxyOptions>),
    /// Files from a folder.
    Static(StaticHandler),
    /// One fixed response from memory.
    Respond(RespondHandler),
    /// TLS passed through, unterminated, to TLS backends (routes only).
    Passthrough(ForwardOptions),
    /// A handler the program running the config gives under this name
    /// ([`crate::handler::NamedHandlers`]).
    External(String),
}

impl HandlerSpec {
    /// Its `type` in a config file.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Status(_) => "status",
            Self::Forward(_) => "forward",
            Self::Proxy(_) => "proxy",
            Self::Static(_) => "static",
            Self::Respond(_) => "respond",
            Self::Passthrough(_) => "passthrough",
            Self::External(_) => "external",
        }
    }
}

impl ServerSpec {
    /// The options to bind this server with (an `external` handler closes its connections:
    /// see [`ServerSpec::options_with`]).
    pub fn options(&self) -> ServerOptions {
        self.options_with(&NamedHandlers::default())
    }

    /// The options to bind this server with, its `external` handler taken from `handlers`.
    pub fn options_with(&self, handlers: &NamedHandlers) -> ServerOptions {
        let mut options = ServerOptions::new(&self.name, self.listen, self.certs.clone());
        if let Some(inputs) = self.inputs {
            options = options.inputs(inputs);
        }
        if let Some(timeout) = self.handshake_timeout {
            options = options.handshake_timeout(timeout);
        }
        if let Some(limit) = self.max_connections {
            options = options.max_connections(limit);
        }
        if let Some(limit) = self.max_connections_per_client {
            options = options.max_connections_per_client(limit);
        }
        if let Some(rate) = self.request_rate_per_client {
            options = options.request_rate_per_client(rate);
        }
        options = options
            .tls(self.tls.clone())
            .http_limits(self.http)
            .access_log(self.access_log)
            .reuse_port(self.reuse_port);
        for route in &self.routes {
            options = options.route(route.clone());
        }
        for rule in &self.paths {
            options = options.path(rule.clone());
        }
        match &self.handler {
            HandlerSpec::Status(status) => options.status_page(status.clone()),
            HandlerSpec::Forward(forward) => options.forward(forward.clone()),
            HandlerSpec::Proxy(proxy) => options.proxy((**proxy).clone()),
            HandlerSpec::Static(files) => options.static_files(files.clone()),
            HandlerSpec::Respond(fixed) => options.respond(fixed.clone()),
            HandlerSpec::External(name) => options.with_handler(handlers.get(name)),
            // Refused by validation: the server's own connections are terminated.
            HandlerSpec::Passthrough(_) => options,
        }
    }
}

impl Config {
    /// Every file this config was read from, whose change a reload would pick up: the config
    /// file, the ticket key file, each server's certificates and keys, OCSP responses, client
    /// CAs and CRLs.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let global = std::iter::once(&self.file).chain(&self.global.ticket_key_file);
        let servers = self.servers.iter().flat_map(|server| {
            let pairs = server.certificate_files.iter();
            pairs
                .flat_map(|(cert, key)| [cert, key])
                .chain(&server.material_files)
        });
        // Each file once, however many servers name it: the watcher stats and digests each.
        // (Told apart by the path's bytes: hashing 20,000 paths' components took a tenth of a
        // reload.)
        let mut seen = std::collections::HashSet::new();
        global
            .chain(servers)
            .filter(|path| seen.insert(path.as_os_str()))
            .cloned()
            .collect()
    }

    /// Reads, validates and loads `path`; relative paths inside resolve against its folder.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        Self::load_after(path.as_ref(), None)
    }

    /// As [`Config::load`], after `previous` (the last load): each server whose table, the
    /// settings around it and the files it read are unchanged is taken from it without being
    /// validated again, and the same text is not parsed again.
    pub fn load_after(path: &Path, previous: Option<&Config>) -> Result<Self, ConfigError> {
        let text = crate::files::read_text(path, crate::files::MAX_MATERIAL_FILE).map_err(|e| {
            ConfigError::whole_file(path, format!("cannot read the config file: {e}"))
        })?;
        Self::parse_after(&text, path, base_of(path), previous)
    }

    /// Validates one `[[server]]` table given on its own (as the admin API receives it), against
    /// the same rules as a file; relative paths resolve against `base`.
    pub fn parse_server(text: &str, base: &Path) -> Result<ServerSpec, ConfigError> {
        let source = Path::new("<server table>");
        let fail = |message: String| ConfigError::whole_file(source, message);
        let table: toml::Table = toml::from_str(text)
            .map_err(|e| fail(format!("not valid TOML: {}", one_line(e.message()))))?;
        let mut problems = Problems::default();
        let identities = LoadedIdentities::default();
        let keys = ServerKeys {
            previous: &HashMap::new(),
            strict_key_permissions: false,
            acme: None,
            identities: &identities,
        };
        let read = document::single(table, base);
        let servers = &read.document.servers;
        let mut specs = validate_servers(servers, read.tables, base, keys, &mut problems);
        let spec = problems.into_result(source.to_owned(), specs.pop())?;
        spec.map(Arc::unwrap_or_clone)
            .ok_or_else(|| fail("no server in the table".to_owned()))
    }

    /// Validates `text` as if read from `file`; relative paths resolve against `base`.
    pub fn parse(text: &str, file: &Path, base: &Path) -> Result<Self, ConfigError> {
        Self::parse_after(text, file, base, None)
    }

    /// As [`Config::parse`], after `previous` ([`Config::load_after`]).
    pub fn parse_after(
        text: &str,
        file: &Path,
        base: &Path,
        previous: Option<&Config>,
    ) -> Result<Self, ConfigError> {
        let mut problems = Problems::default();
        let last = previous.and_then(|p| p.document.as_ref());
        let read = document::read(text, file, base, last, &mut problems)?;
        let mut global = None;
        let mut admin = None;
        let mut acme = None;
        let mut http_redirect = None;
        for (key, value) in read.document.top.clone() {
            match key.as_str() {
                "global" => global = Some(value),
                "admin" => admin = Some(value),
                "acme" => acme = Some(value),
                "http_redirect" => http_redirect = Some(value),
                other => problems.global(
                    other,
                    "unknown top-level key (expected [global], [admin], [acme], [http_redirect], [[pool]] or [[server]])",
                ),
            }
        }
        // What a lean build leaves out is refused by name, not ignored.
        #[cfg(not(feature = "acme"))]
        if acme.take().is_some() {
            problems.global(
                "acme",
                "this tlsplex is built without ACME (the cargo feature `acme`)",
            );
        }
        #[cfg(not(feature = "admin"))]
        if admin.take().is_some() {
            problems.global(
                "admin",
                "this tlsplex is built without the admin endpoint (the cargo feature `admin`)",
            );
        }
        let global = validate_global(global, base, &mut problems);
        let admin = admin.and_then(|value| {
            let strict = global.strict_key_permissions;
            validate_admin(value, base, &global.state_dir, strict, &mut problems)
        });
        let mut acme = acme.and_then(|value| {
            let strict = global.strict_key_permissions;
            validate_acme(value, base, &global.state_dir, strict, &mut problems)
        });
        let http_redirect = http_redirect.and_then(|value| {
            http_redirect::validate_http_redirect(value, acme.as_mut(), &mut problems)
        });
        let identities = LoadedIdentities::default();
        let previous = previous.map_or_else(HashMap::new, |p| {
            p.servers.iter().map(|s| (s.name.as_str(), s)).collect()
        });
        let keys = ServerKeys {
            previous: &previous,
            strict_key_permissions: global.strict_key_permissions,
            acme: acme.as_ref(),
            identities: &identities,
        };
        let servers = &read.document.servers;
        let servers = validate_servers(servers, read.tables, base, keys, &mut problems);
        let warnings = problems.take_warnings();
        problems.into_result(
            file.to_owned(),
            Self {
                file: file.to_owned(),
                global,
                admin,
                acme,
                http_redirect,
                servers,
                warnings,
                document: Some(read.document),
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

#[cfg(all(test, not(feature = "acme")))]
mod lean_build {
    #[test]
    fn a_build_without_acme_or_admin_refuses_their_tables_by_name() {
        let text = "[acme]\ndirectory = \"letsencrypt\"\n[admin]\nlisten = \"127.0.0.1:9440\"\n";
        let error = super::Config::parse(
            text,
            std::path::Path::new("lean.toml"),
            std::path::Path::new("."),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            error.contains("acme: this tlsplex is built without ACME (the cargo feature `acme`)"),
            "{error}"
        );
        #[cfg(not(feature = "admin"))]
        assert!(error.contains("admin: this tlsplex is built without the admin endpoint"));
    }
}
