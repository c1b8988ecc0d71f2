//! Routes: many names on one port. A server may hold routes, each with the names it answers
//! (exact, and `*.` wildcards matching one label, as certificate selection matches them), its
//! own handler and, where it differs from the server's, its own ALPN and client
//! authentication. The first route whose names match the client's SNI takes the connection,
//! before the handshake; a client that matches none gets the server's own handler (or, under
//! `strict_sni`, the `unrecognized_name` alert).

use std::collections::HashMap;

use crate::handler::{
    ConnectionHandler, ForwardHandler, ForwardOptions, Handler, PassthroughHandler, PathRule,
    ProxyHandler, ProxyOptions, RespondHandler, StaticHandler, StatusHandler,
};
use crate::tls::client_auth::ClientAuth;

/// What a route does with its connections.
#[derive(Clone)]
pub(crate) enum RouteTarget {
    /// Terminate TLS here and run the handler.
    Terminate(ConnectionHandler),
    /// Terminate TLS here and serve the status page; `true`: it lists the process's servers.
    Status(bool),
    /// Pass the TLS connection through to a TLS backend.
    Passthrough(PassthroughHandler),
}

/// One route of a server: its names, its handler, and its TLS differences.
#[derive(Clone)]
pub struct Route {
    pub(crate) name: String,
    pub(crate) names: Vec<String>,
    pub(crate) target: RouteTarget,
    pub(crate) alpn: Option<Vec<String>>,
    pub(crate) client_auth: Option<ClientAuth>,
    pub(crate) strict_sni_host: Option<bool>,
    pub(crate) paths: Vec<PathRule>,
}

impl Route {
    /// A route called `name` (in logs, metrics and the status page) for `names`, serving the
    /// status page until a handler is set.
    pub fn new<I, S>(name: impl Into<String>, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            name: name.into(),
            names: names
                .into_iter()
                .map(|n| n.into().to_ascii_lowercase())
                .collect(),
            target: RouteTarget::Status(false),
            alpn: None,
            client_auth: None,
            strict_sni_host: None,
            paths: Vec::new(),
        }
    }

    /// Serves the route's connections with `handler`.
    pub fn handler(mut self, handler: impl Handler) -> Self {
        self.target = RouteTarget::Terminate(ConnectionHandler::custom(handler));
        self
    }

    /// Relays the route's connections to backends after terminating TLS.
    pub fn forward(mut self, options: ForwardOptions) -> Self {
        let handler = ConnectionHandler::Forward(ForwardHandler::new(options));
        self.target = RouteTarget::Terminate(handler);
        self
    }

    /// Proxies the route's HTTP requests to backends ([`ProxyHandler`]).
    pub fn proxy(mut self, options: ProxyOptions) -> Self {
        let handler = ConnectionHandler::Proxy(ProxyHandler::new(options));
        self.target = RouteTarget::Terminate(handler);
        self
    }

    /// Serves the files of a folder.
    pub fn static_files(mut self, files: StaticHandler) -> Self {
        self.target = RouteTarget::Terminate(ConnectionHandler::Static(files));
        self
    }

    /// Answers every request with one fixed response.
    pub fn respond(mut self, fixed: RespondHandler) -> Self {
        self.target = RouteTarget::Terminate(ConnectionHandler::Respond(fixed));
        self
    }

    /// Serves the status page; `list_servers`: it lists every server of the process.
    pub fn status(mut self, list_servers: bool) -> Self {
        self.target = RouteTarget::Status(list_servers);
        self
    }

    /// Serves the status page as `status` has it (response headers, compression, access).
    pub fn status_page(mut self, status: StatusHandler) -> Self {
        self.target = RouteTarget::Terminate(ConnectionHandler::Status(status));
        self
    }

    /// Passes the route's connections through, still encrypted, to TLS backends.
    pub fn passthrough(mut self, options: ForwardOptions) -> Self {
        self.target = RouteTarget::Passthrough(PassthroughHandler::new(options));
        self
    }

    /// Adds a path rule in front of the route's handler, as [`crate::ServerOptions::path`]
    /// does for a server's.
    pub fn path(mut self, rule: PathRule) -> Self {
        self.paths.push(rule);
        self
    }

    /// ALPN protocols for this route instead of the server's.
    pub fn alpn<I, S>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.alpn = Some(protocols.into_iter().map(Into::into).collect());
        self
    }

    /// Client authentication for this route instead of the server's.
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.client_auth = Some(auth);
        self
    }

    /// Whether HTTP requests on this route must name its connection's SNI (`421` otherwise);
    /// by default the server's `strict_sni_host`, which is on where client certificates are
    /// asked for.
    pub fn strict_sni_host(mut self, strict: bool) -> Self {
        self.strict_sni_host = Some(strict);
        self
    }

    /// The route's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The names it answers, lower-case.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Whether the route passes connections through rather than terminating them.
    pub fn is_passthrough(&self) -> bool {
        matches!(self.target, RouteTarget::Passthrough(_))
    }
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("name", &self.name)
            .field("names", &self.names)
            .field("passthrough", &self.is_passthrough())
            .finish_non_exhaustive()
    }
}

/// Which route a name goes to: exact names and `*.` wildcards (one label), the first route
/// listed winning.
#[derive(Debug, Default)]
pub(crate) struct RouteMatcher {
    exact: HashMap<String, usize>,
    wildcard: HashMap<String, usize>,
}

impl RouteMatcher {
    pub(crate) fn new<'a>(routes: impl Iterator<Item = &'a [String]>) -> Self {
        let mut matcher = Self::default();
        for (index, names) in routes.enumerate() {
            for name in names {
                match name.strip_prefix("*.") {
                    Some(parent) => matcher.wildcard.entry(parent.to_owned()).or_insert(index),
                    None => matcher.exact.entry(name.clone()).or_insert(index),
                };
            }
        }
        matcher
    }

    /// The index of the first route that matches `sni`.
    pub(crate) fn find(&self, sni: &str) -> Option<usize> {
        let name = sni.to_ascii_lowercase();
        let exact = self.exact.get(&name).copied();
        let wildcard = name
            .split_once('.')
            .and_then(|(_, parent)| self.wildcard.get(parent).copied());
        match (exact, wildcard) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Whether a certificate name (exact or `*.` wildcard) covers a route name; a wildcard route
/// name is covered only by the same wildcard.
pub(crate) fn name_covers(cert_name: &str, route_name: &str) -> bool {
    let (cert_name, route_name) = (
        cert_name.to_ascii_lowercase(),
        route_name.to_ascii_lowercase(),
    );
    if cert_name == route_name {
        return true;
    }
    match (cert_name.strip_prefix("*."), route_name.split_once('.')) {
        (Some(parent), Some((label, rest))) => label != "*" && parent == rest,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::{name_covers, RouteMatcher};

    #[test]
    fn first_matching_route_wins_and_wildcards_match_one_label() {
        let routes = [
            vec!["*.apps.test".to_owned()],
            vec!["api.apps.test".to_owned(), "api.test".to_owned()],
        ];
        let matcher = RouteMatcher::new(routes.iter().map(Vec::as_slice));
        assert_eq!(matcher.find("web.apps.test"), Some(0));
        assert_eq!(
            matcher.find("API.apps.test"),
            Some(0),
            "the wildcard is listed first"
        );
        assert_eq!(matcher.find("api.test"), Some(1));
        assert_eq!(matcher.find("a.b.apps.test"), None);
        assert_eq!(matcher.find("apps.test"), None);
    }

    #[test]
    fn certificate_names_cover_route_names() {
        assert!(name_covers("a.test", "A.test"));
        assert!(name_covers("*.apps.test", "web.apps.test"));
        assert!(name_covers("*.apps.test", "*.apps.test"));
        assert!(!name_covers("web.apps.test", "*.apps.test"));
        assert!(!name_covers("*.apps.test", "a.b.apps.test"));
    }
}
