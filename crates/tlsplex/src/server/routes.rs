//! A server's routes as its connections use them: each route's handler (with its own backend
//! pool), its rustls configuration and client check, and the matcher that picks one by SNI.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::ServerConfig;

use super::settings::ClientCheck;
use super::ServerOptions;
use crate::context::Context;
use crate::handler::{
    BackendPool, BackendStats, ConnectionHandler, PassthroughHandler, PathRule, PathsHandler,
    PoolOrigin, StatusHandler,
};
use crate::metrics::BackendMetrics;
use crate::route::{RouteMatcher, RouteTarget};
use crate::tls::client_auth::ClientAuth;
use crate::tls::policy::{self, TlsPolicy};
use crate::tls::resumption::ResumptionState;

/// What a connection that took a route (or the server's own, `name: None`) runs.
pub(crate) struct LiveRoute {
    pub(crate) name: Option<Arc<str>>,
    pub(crate) target: LiveTarget,
    pub(crate) tls: Arc<ServerConfig>,
    pub(crate) client_check: Option<ClientCheck>,
    /// HTTP requests must name the connection's SNI.
    pub(crate) strict_sni_host: bool,
}

pub(crate) enum LiveTarget {
    Terminate(ConnectionHandler),
    Passthrough(PassthroughHandler),
}

impl LiveTarget {
    fn pools(&self) -> Vec<&Arc<BackendPool>> {
        match self {
            Self::Terminate(handler) => handler.pools(),
            Self::Passthrough(passthrough) => vec![passthrough.pool()],
        }
    }
}

/// The server's own route and its routes, with the matcher over their names.
pub(crate) struct RouteTable {
    pub(crate) own: LiveRoute,
    routes: Vec<LiveRoute>,
    matcher: RouteMatcher,
    /// Whether some route passes connections through: their ClientHello bytes are kept then.
    pub(crate) passthrough: bool,
}

/// What building a server's routes needs besides its options.
pub(crate) struct RouteBuild<'a> {
    pub(crate) ctx: &'a Context,
    pub(crate) provider: Arc<CryptoProvider>,
    pub(crate) resumption: &'a ResumptionState,
    pub(crate) metrics: &'a BackendMetrics,
    /// The table a reload replaces: its pools hand their backends' state on.
    pub(crate) previous: Option<&'a RouteTable>,
}

impl RouteTable {
    pub(crate) fn build(
        options: &ServerOptions,
        build: &RouteBuild<'_>,
    ) -> Result<Self, rustls::Error> {
        let own_tls = Arc::new(server_config(options, &options.tls, build)?);
        let own_check = client_check(&options.tls, build)?;
        let own_target = match &options.handler {
            Some(handler) => RouteTarget::Terminate(handler.clone()),
            None => RouteTarget::Status(options.status_lists_servers),
        };
        let own = LiveRoute {
            name: None,
            target: live_target(&own_target, &options.paths, &options.name, options, build),
            tls: own_tls.clone(),
            client_check: own_check.clone(),
            strict_sni_host: options.tls.strict_sni_host(),
        };
        let mut routes = Vec::with_capacity(options.routes.len());
        for route in &options.routes {
            let differs = route.alpn.is_some() || route.client_auth.is_some();
            let mut policy = options.tls.clone();
            if let Some(auth) = &route.client_auth {
                policy.client_auth = Some(auth.clone());
            }
            policy.strict_sni_host = route.strict_sni_host.or(policy.strict_sni_host);
            let strict_sni_host = policy.strict_sni_host();
            let (tls, client_check) = if differs {
                if let Some(alpn) = &route.alpn {
                    policy.alpn = alpn.clone();
                }
                let check = client_check(&policy, build)?;
                (Arc::new(server_config(options, &policy, build)?), check)
            } else {
                (own_tls.clone(), own_check.clone())
            };
            routes.push(LiveRoute {
                name: Some(route.name.as_str().into()),
                target: live_target(&route.target, &route.paths, &route.name, options, build),
                tls,
                client_check,
                strict_sni_host,
            });
        }
        let matcher = RouteMatcher::new(options.routes.iter().map(|r| r.names.as_slice()));
        let passthrough = options.routes.iter().any(|r| r.is_passthrough());
        let table = Self {
            own,
            routes,
            matcher,
            passthrough,
        };
        build.metrics.keep(
            table
                .pools()
                .flat_map(|pool| pool.labels().collect::<Vec<_>>()),
        );
        Ok(table)
    }

    /// Whether the server has routes at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The index of the route `sni` takes, if any.
    pub(crate) fn find(&self, sni: Option<&str>) -> Option<usize> {
        sni.and_then(|name| self.matcher.find(name))
    }

    /// The route at `index`, or the server's own.
    pub(crate) fn get(&self, index: Option<usize>) -> &LiveRoute {
        index.and_then(|i| self.routes.get(i)).unwrap_or(&self.own)
    }

    /// The routes' names, in order.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.routes.iter().filter_map(|route| route.name.as_deref())
    }

    /// Every backend pool: the server's own handler's, then the routes'.
    pub(crate) fn pools(&self) -> impl Iterator<Item = &Arc<BackendPool>> {
        std::iter::once(&self.own)
            .chain(&self.routes)
            .flat_map(|route| route.target.pools())
    }

    /// Every backend's figures.
    pub(crate) fn backend_stats(&self) -> Vec<BackendStats> {
        self.pools().flat_map(|pool| pool.stats()).collect()
    }

    fn previous_pool(&self, name: &str) -> Option<&BackendPool> {
        self.pools()
            .find(|pool| pool.name() == name)
            .map(Arc::as_ref)
    }
}

/// A fingerprint of every client-auth policy of the server and its routes: resumption state is
/// bound to it, so a session never outlives a change to any of them.
pub(crate) fn client_auth_binding(options: &ServerOptions) -> Option<[u8; 32]> {
    let policies: Vec<(&str, &ClientAuth)> = options
        .tls
        .client_auth
        .iter()
        .map(|auth| ("", auth))
        .chain(options.routes.iter().filter_map(|route| {
            route
                .client_auth
                .as_ref()
                .map(|auth| (route.name.as_str(), auth))
        }))
        .collect();
    if let [("", only)] = policies.as_slice() {
        return Some(only.fingerprint());
    }
    if policies.is_empty() {
        return None;
    }
    let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for (route, auth) in policies {
        digest.update(&(route.len() as u64).to_be_bytes());
        digest.update(route.as_bytes());
        digest.update(&auth.fingerprint());
    }
    let mut binding = [0u8; 32];
    binding.copy_from_slice(digest.finish().as_ref());
    Some(binding)
}

fn client_check(
    policy: &TlsPolicy,
    build: &RouteBuild<'_>,
) -> Result<Option<ClientCheck>, rustls::Error> {
    let Some(auth) = &policy.client_auth else {
        return Ok(None);
    };
    Ok(Some(ClientCheck {
        verifier: auth.verifier(build.provider.clone())?,
        mode: auth.mode(),
        max_session_age: policy.max_session_age,
    }))
}

fn server_config(
    options: &ServerOptions,
    policy: &TlsPolicy,
    build: &RouteBuild<'_>,
) -> Result<ServerConfig, rustls::Error> {
    let verifier = match &policy.client_auth {
        Some(auth) => Some(auth.verifier(build.provider.clone())?),
        None => None,
    };
    policy::server_config(
        build.provider.clone(),
        options.certs.clone(),
        policy,
        verifier,
        build.resumption,
    )
}

/// The handler a route runs: the status page when none is set, HTTP limits applied to the
/// built-in HTTP handlers, a pool of its own for the relaying ones, and its path rules (each
/// proxy rule's pool named after the route and the rule: `site /api/`) in front.
fn live_target(
    target: &RouteTarget,
    paths: &[PathRule],
    pool_name: &str,
    options: &ServerOptions,
    build: &RouteBuild<'_>,
) -> LiveTarget {
    let handler = match target {
        RouteTarget::Passthrough(passthrough) => {
            let origin = pool_origin(pool_name, build);
            return LiveTarget::Passthrough(passthrough.renamed(pool_name, origin));
        }
        RouteTarget::Terminate(handler) => handler.clone(),
        RouteTarget::Status(list_servers) => ConnectionHandler::Status(
            StatusHandler::new(build.ctx.registry().clone()).list_servers(*list_servers),
        ),
    };
    let handler = live_handler(handler, pool_name, options, build);
    if paths.is_empty() {
        return LiveTarget::Terminate(handler);
    }
    let rules = paths
        .iter()
        .map(|rule| {
            let name = format!("{pool_name} {}", rule.paths);
            rule.with_handler(live_handler(rule.handler.clone(), &name, options, build))
        })
        .collect();
    let limits = options.http_limits.unwrap_or_default();
    match PathsHandler::new(rules, handler.clone(), limits) {
        Some(paths) => LiveTarget::Terminate(ConnectionHandler::Paths(paths)),
        None => {
            tracing::warn!(
                server = %options.name,
                handler = pool_name,
                "path rules need a built-in HTTP handler in front of which to sit: left out"
            );
            LiveTarget::Terminate(handler)
        }
    }
}

fn pool_origin<'a>(pool_name: &str, build: &RouteBuild<'a>) -> PoolOrigin<'a> {
    PoolOrigin {
        metrics: Some(build.metrics),
        previous: build
            .previous
            .and_then(|table| table.previous_pool(pool_name)),
    }
}

/// `handler` with the server's HTTP limits, and a pool of its own called `pool_name`.
fn live_handler(
    handler: ConnectionHandler,
    pool_name: &str,
    options: &ServerOptions,
    build: &RouteBuild<'_>,
) -> ConnectionHandler {
    match (handler, options.http_limits) {
        (ConnectionHandler::Status(status), limits) => {
            let status = status.with_registry(build.ctx.registry().clone());
            ConnectionHandler::Status(match limits {
                Some(limits) => status.limits(limits),
                None => status,
            })
        }
        (ConnectionHandler::Static(files), Some(limits)) => {
            ConnectionHandler::Static(files.limits(limits))
        }
        (ConnectionHandler::Respond(fixed), Some(limits)) => {
            ConnectionHandler::Respond(fixed.limits(limits))
        }
        (ConnectionHandler::Forward(forward), _) => {
            let origin = pool_origin(pool_name, build);
            ConnectionHandler::Forward(forward.renamed(pool_name, origin))
        }
        (ConnectionHandler::Proxy(proxy), limits) => {
            let proxy = proxy.renamed(pool_name, pool_origin(pool_name, build));
            ConnectionHandler::Proxy(match limits {
                Some(limits) => proxy.limits(limits),
                None => proxy,
            })
        }
        (handler, _) => handler,
    }
}
