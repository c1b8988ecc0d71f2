//! `[[server.route]]`: names, handler and TLS differences of each route, validated; a route name
//! no certificate covers is a warning, as the client would get the default certificate.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::error::Problems;
use super::file::{HandlerFile, RouteFile};
use super::handler::{validate_handler, HandlerAt};
use super::path::{check_owner, validate_paths};
use super::tls::validate_client_auth;
use super::value::deserialize;
use super::HandlerSpec;
use crate::route::{name_covers, Route};
use crate::tls::certs::CertStore;

/// The routes, and the files their client auth came from; `None` if any is wrong.
pub(super) fn validate_routes(
    raw: Vec<toml::Table>,
    label: &str,
    base: &Path,
    problems: &mut Problems,
) -> Option<(Vec<Route>, Vec<PathBuf>)> {
    let mut ok = true;
    let mut claimed: HashMap<String, usize> = HashMap::new();
    let mut route_names: HashMap<String, usize> = HashMap::new();
    let mut routes = Vec::new();
    let mut files = Vec::new();
    for (i, table) in raw.into_iter().enumerate() {
        let key = |field: &str| format!("route[{i}].{field}");
        let report = &mut |k: &str, m: String| {
            let k = if k.is_empty() {
                format!("route[{i}]")
            } else {
                key(k)
            };
            problems.server(label, &k, m);
        };
        let Some(route) = deserialize::<RouteFile>(table, report) else {
            ok = false;
            continue;
        };
        let names = route.names.unwrap_or_default();
        if names.is_empty() {
            problems.server(
                label,
                &key("names"),
                "a route needs names = [\"name\", \"*.wildcard\", ...]",
            );
            ok = false;
        }
        for name in &names {
            let lower = name.to_ascii_lowercase();
            if !valid_route_name(&lower) {
                problems.server(
                    label,
                    &key("names"),
                    format!("{name:?} is not a DNS name or a *. wildcard"),
                );
                ok = false;
            } else if let Some(first) = claimed.insert(lower, i) {
                problems.server(
                    label,
                    &key("names"),
                    format!("{name:?} is already claimed by route[{first}]"),
                );
                ok = false;
            }
        }
        let name = route
            .name
            .clone()
            .or_else(|| names.first().cloned())
            .unwrap_or_default();
        if let Some(first) = route_names.insert(name.clone(), i) {
            problems.server(
                label,
                &key("name"),
                format!("route[{first}] is also called {name:?}: give each route its own name"),
            );
            ok = false;
        }
        let handler_key = key("handler");
        let at = HandlerAt {
            label,
            key: &handler_key,
        };
        let own = route.handler.unwrap_or_else(|| {
            if route.path.is_empty() {
                HandlerFile::default()
            } else {
                HandlerFile::not_found(super::server::NO_PATH_RULE)
            }
        });
        let handler = validate_handler(own, &at, base, problems);
        let owner = format!("route[{i}].");
        let paths = validate_paths(route.path, &owner, label, base, problems);
        if let (Some(handler), false) = (&handler, paths.as_ref().is_none_or(Vec::is_empty)) {
            ok &= check_owner(handler, &owner, label, problems);
        }
        if let Some(HandlerSpec::External(_)) = handler {
            problems.server(
                label,
                &key("handler.type"),
                "an external handler is a server's own for now: give this name its own server",
            );
            ok = false;
        }
        let mut alpn_ok = true;
        if let Some(alpn) = &route.alpn {
            if !alpn.iter().all(|p| !p.is_empty() && p.len() <= 255) {
                problems.server(
                    label,
                    &key("alpn"),
                    "each protocol name must be 1 to 255 bytes long",
                );
                alpn_ok = false;
            }
        }
        let client_auth = route
            .client_auth
            .as_ref()
            .map(|auth| validate_client_auth(auth, label, &key("client_auth"), base, problems));
        let (Some(handler), Some(paths), true, true) = (handler, paths, alpn_ok, ok) else {
            ok = false;
            continue;
        };
        let forward = matches!(handler, HandlerSpec::Forward(_));
        let mut built = Route::new(name, names);
        built = match handler {
            HandlerSpec::Status(status) => built.status_page(status),
            HandlerSpec::Forward(options) => built.forward(options),
            HandlerSpec::Proxy(options) => built.proxy(*options),
            HandlerSpec::Static(files) => built.static_files(files),
            HandlerSpec::Respond(fixed) => built.respond(fixed),
            HandlerSpec::Passthrough(options) => built.passthrough(options),
            HandlerSpec::External(_) => continue, // refused above
        };
        match route.alpn {
            Some(alpn) => built = built.alpn(alpn),
            None if forward => built = built.alpn([super::server::FORWARD_ALPN]),
            None => {}
        }
        if let Some(strict) = route.strict_sni_host {
            built = built.strict_sni_host(strict);
        }
        match client_auth {
            Some(Some((auth, auth_files))) => {
                built = built.client_auth(auth);
                files.extend(auth_files);
            }
            Some(None) => ok = false,
            None => {}
        }
        for rule in paths {
            built = built.path(rule);
        }
        routes.push(built);
    }
    ok.then_some((routes, files))
}

/// Warns for every route name no certificate of the server covers (its clients would get the
/// default certificate, which does not name them); passthrough routes present the backend's.
pub(super) fn uncovered_names(
    routes: &[Route],
    certs: &CertStore,
    label: &str,
    problems: &mut Problems,
) {
    for (i, route) in routes.iter().enumerate() {
        if route.is_passthrough() {
            continue;
        }
        for name in route.names() {
            let covered = certs.identities().iter().any(|identity| {
                identity
                    .summary()
                    .dns_names
                    .iter()
                    .any(|cert_name| name_covers(cert_name, name))
            });
            if !covered {
                problems.warn_server(
                    label,
                    &format!("route[{i}].names"),
                    format!("no certificate of this server covers {name:?}: its clients get the default certificate"),
                );
            }
        }
    }
}

/// A DNS name, or `*.` and a DNS name: letters, digits, `-` and `.`, labels of 1 to 63.
fn valid_route_name(name: &str) -> bool {
    let host = name.strip_prefix("*.").unwrap_or(name);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}
