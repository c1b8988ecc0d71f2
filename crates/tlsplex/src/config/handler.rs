//! `handler = { type = ... }`: the built-in handlers as a config file names them.

use std::path::Path;

use super::error::Problems;
use super::file::{
    AccessFile, BackendTlsFile, FileCacheFile, HandlerFile, HeaderEditsFile, HealthCheckFile,
    PoolFile, ProxyProtocolFile,
};
use super::value::duration;
use super::HandlerSpec;
use crate::handler::{
    Backend, BackendTls, BackendTlsError, Balance, BasicAuth, BasicAuthError, Cidr, ClientAccess,
    ExpectedStatus, FileCacheOptions, ForwardOptions, HeaderEdits, HealthCheck, HttpPolicy,
    HttpProbe, ProxyProtocol, RespondError, RespondHandler, StaticHandler, StatusHandler,
};
use crate::registry::ServerRegistry;
use hyper::header::{HeaderName, HeaderValue};

/// Where a handler table sits: its server's label and the key path to it (`handler`, or
/// `route[1].handler`).
pub(super) struct HandlerAt<'a> {
    pub(super) label: &'a str,
    pub(super) key: &'a str,
}

impl HandlerAt<'_> {
    pub(super) fn report(&self, problems: &mut Problems, field: &str, message: impl Into<String>) {
        problems.server(self.label, &format!("{}.{field}", self.key), message);
    }
}

pub(super) fn validate_handler(
    raw: HandlerFile,
    at: &HandlerAt<'_>,
    base: &Path,
    problems: &mut Problems,
) -> Option<HandlerSpec> {
    match raw {
        HandlerFile::Status {
            show_servers,
            response_headers,
            compress,
            access,
        } => {
            let policy = http_policy((response_headers, compress, access), at, base, problems)?;
            // The server's registry is given when it binds.
            let page = StatusHandler::new(ServerRegistry::default()).list_servers(show_servers);
            Some(HandlerSpec::Status(page.with_policy(policy)))
        }
        HandlerFile::Static {
            root,
            serve_dotfiles,
            index,
            listing,
            precompressed,
            error_pages,
            cache,
            response_headers,
            compress,
            access,
        } => {
            let policy = http_policy((response_headers, compress, access), at, base, problems)?;
            let root = base.join(root);
            let cache = match cache {
                Some(raw) => Some(validate_file_cache(raw, at, problems)?),
                None => None,
            };
            match StaticHandler::new(&root) {
                Ok(files) => {
                    let files = files.serve_dotfiles(serve_dotfiles).listing(listing);
                    let mut files = files.precompressed(precompressed);
                    if let Some(index) = index {
                        if let Some(bad) = index.iter().find(|n| !plain_name(n)) {
                            let message = format!("{bad:?} is not a file name (no /, not . or ..)");
                            at.report(problems, "index", message);
                            return None;
                        }
                        files = files.index(index);
                    }
                    let mut pages_ok = true;
                    for (status, page) in error_pages {
                        let field = format!("error_pages.{status}");
                        let Ok(code) = status.parse::<u16>() else {
                            at.report(problems, &field, "not a status code");
                            pages_ok = false;
                            continue;
                        };
                        match files.clone().error_page(code, &page) {
                            Ok(with_page) => files = with_page,
                            Err(error) => {
                                let message = format!("{page}: {error}");
                                at.report(problems, &field, message);
                                pages_ok = false;
                            }
                        }
                    }
                    if !pages_ok {
                        return None;
                    }
                    let files = match cache {
                        Some(options) => files.cache(options),
                        None => files,
                    };
                    Some(HandlerSpec::Static(files.with_policy(policy)))
                }
                Err(e) => {
                    let message = format!("cannot serve {}: {e}", root.display());
                    at.report(problems, "root", message);
                    None
                }
            }
        }
        HandlerFile::Respond {
            status,
            headers,
            body,
            response_headers,
            compress,
            access,
        } => {
            let policy = http_policy((response_headers, compress, access), at, base, problems);
            let headers: Vec<(String, String)> = headers.into_iter().collect();
            match RespondHandler::new(status, &headers, body) {
                Ok(fixed) => Some(HandlerSpec::Respond(fixed.with_policy(policy?))),
                Err(error) => {
                    let field = match error {
                        RespondError::Status(_) => "status",
                        RespondError::Body(_) => "body",
                        _ => "headers",
                    };
                    at.report(problems, field, error.to_string());
                    None
                }
            }
        }
        HandlerFile::Forward(mut pool) => {
            let tls = pool.backend_tls.take();
            let tls = tls.map(|tls| validate_backend_tls(tls, at, base, problems));
            let mut options = validate_pool(pool, at, problems)?;
            if let Some(tls) = tls {
                options.backend_tls = Some(tls?);
            }
            Some(HandlerSpec::Forward(options))
        }
        HandlerFile::Proxy(raw) => super::proxy::validate_proxy(*raw, at, base, problems),
        HandlerFile::External { name } => {
            if name.is_empty() || name.len() > 64 {
                at.report(
                    problems,
                    "name",
                    "name the handler the program gives: 1 to 64 characters",
                );
                return None;
            }
            Some(HandlerSpec::External(name))
        }
        HandlerFile::Passthrough(pool) => {
            if pool.health_check.as_ref().is_some_and(|c| c.path.is_some()) {
                at.report(
                    problems,
                    "health_check.path",
                    "passthrough backends speak TLS to the client: an HTTP check is for proxy and forward",
                );
                return None;
            }
            if pool.backend_tls.is_some() {
                at.report(
                    problems,
                    "backend_tls",
                    "passthrough keeps the client's own TLS to the backend: backend_tls is for forward",
                );
                return None;
            }
            validate_pool(pool, at, problems).map(HandlerSpec::Passthrough)
        }
    }
}

/// A file name on its own: no `/`, not `.` or `..`, not empty.
fn plain_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && name != "." && name != ".." && !name.contains('\0')
}

/// `cache = { max_entries, max_bytes, revalidate }`, each defaulted.
fn validate_file_cache(
    raw: FileCacheFile,
    at: &HandlerAt<'_>,
    problems: &mut Problems,
) -> Option<FileCacheOptions> {
    let defaults = FileCacheOptions::default();
    let mut ok = true;
    let revalidate = match raw.revalidate {
        Some(text) => duration(Some(&text), false, &mut |message| {
            at.report(problems, "cache.revalidate", message);
            ok = false;
        }),
        None => Some(defaults.revalidate),
    };
    let mut options = defaults;
    options.max_entries = raw.max_entries.unwrap_or(defaults.max_entries);
    options.max_bytes = raw.max_bytes.unwrap_or(defaults.max_bytes);
    options.revalidate = revalidate.unwrap_or(defaults.revalidate);
    ok.then_some(options)
}

/// `backend` or `backends`, `balance`, `health_check`, the timeouts and the PROXY header.
pub(super) fn validate_pool(
    raw: PoolFile,
    at: &HandlerAt<'_>,
    problems: &mut Problems,
) -> Option<ForwardOptions> {
    let mut ok = true;
    let mut parse = |field: &str, text: &str| {
        let parsed = text
            .parse::<Backend>()
            .map_err(|e| at.report(problems, field, e))
            .ok();
        ok &= parsed.is_some();
        parsed
    };
    let backends: Vec<Backend> = match (raw.backend, raw.backends) {
        (Some(one), None) => parse("backend", &one).into_iter().collect(),
        (None, Some(list)) => list
            .iter()
            .enumerate()
            .filter_map(|(i, text)| parse(&format!("backends[{i}]"), text))
            .collect(),
        (Some(_), Some(_)) => {
            at.report(problems, "backends", "set backend or backends, not both");
            return None;
        }
        (None, None) => {
            at.report(
                problems,
                "backend",
                "missing field `backend`: name backend = \"HOST:PORT\", or backends = [\"HOST:PORT\", ...] for a pool",
            );
            return None;
        }
    };
    if backends.is_empty() && ok {
        at.report(
            problems,
            "backends",
            "the list is empty: name at least one backend",
        );
        return None;
    }
    let balance = match raw.balance.as_deref() {
        None => Balance::default(),
        Some(text) => match parse_balance(text) {
            Some(balance) => balance,
            None => {
                at.report(
                    problems,
                    "balance",
                    format!("{text:?} is not a policy: use \"round_robin\", \"least_connections\" or \"first\""),
                );
                ok = false;
                Balance::default()
            }
        },
    };
    let mut timeout = |field: &str, text: Option<&str>| {
        let key = format!("{}.{field}", at.key);
        let parsed = duration(text, true, &mut |m| problems.server(at.label, &key, m));
        ok &= text.is_none() || parsed.is_some();
        parsed
    };
    let connect_timeout = timeout("connect_timeout", raw.connect_timeout.as_deref());
    let idle_timeout = timeout("idle_timeout", raw.idle_timeout.as_deref());
    let health_check = raw.health_check.as_ref().map(|check| {
        let interval = timeout("health_check.interval", Some(&check.interval));
        let limit = timeout("health_check.timeout", check.timeout.as_deref());
        interval.map(|interval| {
            HealthCheck::new(
                interval,
                limit.unwrap_or(interval.min(DEFAULT_CHECK_TIMEOUT)),
            )
        })
    });
    let probe = match raw.health_check.as_ref() {
        Some(check) => http_probe(check, at, problems),
        None => Ok(None),
    };
    let (true, Ok(probe)) = (ok, probe) else {
        return None;
    };
    let health_check = match (health_check.flatten(), probe) {
        (Some(check), Some(probe)) => Some(check.http(probe)),
        (check, _) => check,
    };
    let mut options = ForwardOptions::pool(backends);
    options.balance = balance;
    options.health_check = health_check;
    options.connect_timeout = connect_timeout.unwrap_or(options.connect_timeout);
    options.idle_timeout = idle_timeout.or(options.idle_timeout);
    options.proxy_protocol = raw.proxy_protocol.map(|version| match version {
        ProxyProtocolFile::V1 => ProxyProtocol::V1,
        ProxyProtocolFile::V2 => ProxyProtocol::V2,
    });
    Some(options)
}

/// `path` and `expect` of a health check: an HTTP probe, or none (a TCP check).
fn http_probe(
    check: &HealthCheckFile,
    at: &HandlerAt<'_>,
    problems: &mut Problems,
) -> Result<Option<HttpProbe>, ()> {
    let expect = match check.expect.as_deref().map(str::parse::<ExpectedStatus>) {
        None => ExpectedStatus::default(),
        Some(Ok(expect)) => expect,
        Some(Err(message)) => {
            at.report(problems, "health_check.expect", message);
            return Err(());
        }
    };
    let Some(path) = &check.path else {
        if check.expect.is_some() {
            at.report(
                problems,
                "health_check.expect",
                "an expected status needs a path",
            );
            return Err(());
        }
        return Ok(None);
    };
    if !path.starts_with('/') || !path.bytes().all(|b| b.is_ascii_graphic()) {
        at.report(
            problems,
            "health_check.path",
            format!("{path:?} is not a request path: start with / and use no spaces"),
        );
        return Err(());
    }
    Ok(Some(HttpProbe::new(path.clone(), expect)))
}

/// A health check's time limit when the file gives none (or the interval, if shorter).
const DEFAULT_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

fn parse_balance(text: &str) -> Option<Balance> {
    [
        Balance::RoundRobin,
        Balance::LeastConnections,
        Balance::First,
    ]
    .into_iter()
    .find(|balance| balance.as_str() == text)
}

pub(super) fn validate_backend_tls(
    raw: BackendTlsFile,
    at: &HandlerAt<'_>,
    base: &Path,
    problems: &mut Problems,
) -> Option<BackendTls> {
    let client = match (&raw.cert, &raw.key) {
        (Some(cert), Some(key)) => Some((base.join(cert), base.join(key))),
        (None, None) => None,
        _ => {
            at.report(
                problems,
                "backend_tls.cert",
                "a client certificate needs both cert and key",
            );
            return None;
        }
    };
    let ca = base.join(&raw.ca);
    let client_paths = client.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
    match BackendTls::from_files(&ca, &raw.server_name, client_paths) {
        Ok(tls) => Some(tls),
        Err(error) => {
            let field = match &error {
                BackendTlsError::File { path, .. } if *path == ca => "ca",
                BackendTlsError::File { path, .. }
                    if client.as_ref().is_some_and(|(_, key)| key == path) =>
                {
                    "key"
                }
                BackendTlsError::ServerName(_) => "server_name",
                _ => "cert",
            };
            at.report(problems, &format!("backend_tls.{field}"), error.to_string());
            None
        }
    }
}

/// A handler's `access` rules, every block checked, and the users of its `basic_auth` file:
/// open when absent, `None` after a problem.
pub(super) fn client_access(
    raw: Option<AccessFile>,
    at: &HandlerAt<'_>,
    base: &Path,
    problems: &mut Problems,
) -> Option<(ClientAccess, Option<BasicAuth>)> {
    let Some(raw) = raw else {
        return Some((ClientAccess::default(), None));
    };
    let mut ok = true;
    let mut blocks = |key: &str, texts: &[String]| -> Vec<Cidr> {
        let mut blocks = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            match text.parse() {
                Ok(block) => blocks.push(block),
                Err(message) => {
                    at.report(problems, &format!("access.{key}[{i}]"), message);
                    ok = false;
                }
            }
        }
        blocks
    };
    let allow = blocks("allow", &raw.allow);
    let deny = blocks("deny", &raw.deny);
    let realm = raw.realm.as_deref().unwrap_or(DEFAULT_REALM);
    let users = match (&raw.basic_auth, &raw.realm) {
        (Some(file), _) => {
            let path = base.join(file);
            match BasicAuth::from_file(&path, realm) {
                Ok(users) => Some(users),
                Err(error) => {
                    let message = match error {
                        BasicAuthError::Line { .. } => format!("{}: {error}", path.display()),
                        _ => error.to_string(),
                    };
                    let field = match error {
                        BasicAuthError::Realm(_) => "access.realm",
                        _ => "access.basic_auth",
                    };
                    at.report(problems, field, message);
                    ok = false;
                    None
                }
            }
        }
        (None, Some(_)) => {
            at.report(
                problems,
                "access.realm",
                "a realm is for basic_auth: name its file",
            );
            ok = false;
            None
        }
        (None, None) => None,
    };
    ok.then(|| (ClientAccess::new(allow, deny), users))
}

/// The realm a browser shows when `access.realm` is not set.
const DEFAULT_REALM: &str = "restricted";

/// A handler table's `response_headers`, `compress` and `access`, every part checked (so one
/// pass reports every problem); `None` after any.
fn http_policy(
    (response_headers, compress, access): (Option<HeaderEditsFile>, bool, Option<AccessFile>),
    at: &HandlerAt<'_>,
    base: &Path,
    problems: &mut Problems,
) -> Option<HttpPolicy> {
    let edits = match response_headers {
        Some(raw) => header_edits(raw, "response_headers", at, problems),
        None => Some(HeaderEdits::default()),
    };
    let access = client_access(access, at, base, problems);
    let (edits, (access, users)) = (edits?, access?);
    Some(HttpPolicy {
        edits,
        compress,
        access,
        users,
    })
}

/// `{ set, add, remove }`, every name and value checked; `None` after reporting any problem.
pub(super) fn header_edits(
    raw: HeaderEditsFile,
    field: &str,
    at: &HandlerAt<'_>,
    problems: &mut Problems,
) -> Option<HeaderEdits> {
    let mut ok = true;
    let mut name = |key: &str, text: &str| match HeaderName::from_bytes(text.as_bytes()) {
        Ok(name) => Some(name),
        Err(_) => {
            at.report(
                problems,
                &format!("{field}.{key}"),
                format!("{text:?} is not a header name"),
            );
            ok = false;
            None
        }
    };
    let mut edits = HeaderEdits::default();
    for text in &raw.remove {
        edits.remove.extend(name("remove", text));
    }
    let mut pairs = Vec::new();
    for (key, map) in [("set", &raw.set), ("add", &raw.add)] {
        for (header, value) in map {
            let parsed = name(key, header);
            pairs.push((key, header.clone(), parsed, value.clone()));
        }
    }
    for (key, header, parsed, value) in pairs {
        let Some(parsed) = parsed else { continue };
        match HeaderValue::from_str(&value) {
            Ok(value) if key == "set" => edits.set.push((parsed, value)),
            Ok(value) => edits.add.push((parsed, value)),
            Err(_) => {
                at.report(
                    problems,
                    &format!("{field}.{key}.{header}"),
                    "the value holds a control character (CR, LF, NUL…)",
                );
                ok = false;
            }
        }
    }
    ok.then_some(edits)
}
