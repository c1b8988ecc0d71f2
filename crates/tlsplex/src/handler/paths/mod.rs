//! Path rules: one name, several handlers by the request's path (nginx's `location`, Caddy's
//! `handle_path`, HAProxy's `path_beg`). A server's or route's rules are tried in order and the
//! first that takes the normalised path ([`matching`]) answers, with its own response headers,
//! compression and access rules; a path no rule takes goes to the server's (or route's) own
//! handler. One HTTP connection serves them all: each request is dispatched on its own.

mod matching;

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::http::uri::PathAndQuery;
use hyper::{Request, Response, StatusCode, Uri};

pub use matching::{PathMatch, PathMatchError};

use super::http::{unauthorized, BasicAuth, Encoders, HttpLimits, HttpServer, Verdict};
use super::proxy::{BodyError, TunnelSlot};
use super::{
    ConnectionHandler, Handler, HandlerError, ProxyHandler, ProxyOptions, RespondHandler,
    StaticHandler, TlsConn,
};
use matching::BadPath;

/// One path rule: the paths it takes and the handler that answers them.
#[derive(Clone)]
pub struct PathRule {
    pub(crate) paths: PathMatch,
    strip_prefix: bool,
    pub(crate) handler: ConnectionHandler,
}

impl PathRule {
    /// Proxies the paths `paths` takes ([`ProxyHandler`]); its pool is named after the server
    /// (or route) and the rule: `site /api/`.
    pub fn proxy(paths: PathMatch, options: ProxyOptions) -> Self {
        Self::new(paths, ConnectionHandler::Proxy(ProxyHandler::new(options)))
    }

    /// Serves files for the paths `paths` takes ([`StaticHandler`]).
    pub fn static_files(paths: PathMatch, files: StaticHandler) -> Self {
        Self::new(paths, ConnectionHandler::Static(files))
    }

    /// Answers the paths `paths` takes with one fixed response ([`RespondHandler`]).
    pub fn respond(paths: PathMatch, fixed: RespondHandler) -> Self {
        Self::new(paths, ConnectionHandler::Respond(fixed))
    }

    fn new(paths: PathMatch, handler: ConnectionHandler) -> Self {
        Self {
            paths,
            strip_prefix: false,
            handler,
        }
    }

    /// The handler sees the path with the rule's prefix taken off (`/api/users` → `/users`),
    /// as Caddy's `handle_path` and nginx's `proxy_pass http://app/;` do.
    pub fn strip_prefix(mut self, strip: bool) -> Self {
        self.strip_prefix = strip;
        self
    }

    /// The same rule with another handler (the server's limits and pool applied).
    pub(crate) fn with_handler(&self, handler: ConnectionHandler) -> Self {
        Self {
            handler,
            ..self.clone()
        }
    }
}

impl std::fmt::Debug for PathRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PathRule")
            .field("paths", &self.paths)
            .field("strip_prefix", &self.strip_prefix)
            .finish_non_exhaustive()
    }
}

/// The prefix a path rule took off the request's path (`/api`), in its extensions: a handler
/// that writes a path for the client (a folder's redirect) puts it back.
#[derive(Debug, Clone)]
pub(crate) struct StrippedPrefix(pub(crate) Arc<str>);

/// The body of a response given under path rules: each handler's, boxed to one type.
pub(crate) type RuleBody = UnsyncBoxBody<Bytes, BodyError>;

/// One request's answer by a built-in HTTP handler.
pub(crate) type Answer = Pin<Box<dyn Future<Output = Response<RuleBody>> + Send>>;

/// What answers the requests of one connection for one handler (made per connection: the
/// proxy's holds the connection's facts and its client certificate).
pub(crate) type Answering = Arc<dyn Fn(Request<Incoming>) -> Answer + Send + Sync>;

/// Dispatches each request by its path; see the module docs.
#[derive(Clone)]
pub(crate) struct PathsHandler {
    table: Arc<Table>,
    http: HttpServer,
}

struct Table {
    rules: Vec<PathRule>,
    fallback: ConnectionHandler,
}

impl PathsHandler {
    /// `rules` in front of `fallback`, under `limits`; `None` when `fallback` does not answer
    /// requests one by one (`forward`, an embedder's handler).
    pub(crate) fn new(
        rules: Vec<PathRule>,
        fallback: ConnectionHandler,
        limits: HttpLimits,
    ) -> Option<Self> {
        fallback.http()?;
        let proxies = std::iter::once(&fallback)
            .chain(rules.iter().map(|rule| &rule.handler))
            .any(|handler| matches!(handler, ConnectionHandler::Proxy(_)));
        let http = if proxies {
            HttpServer::tunnelling(limits)
        } else {
            HttpServer::new(limits)
        };
        Some(Self {
            table: Arc::new(Table { rules, fallback }),
            http,
        })
    }

    /// Every handler: the rules', then the fallback.
    pub(crate) fn handlers(&self) -> impl Iterator<Item = &ConnectionHandler> {
        let table = &self.table;
        (table.rules.iter().map(|rule| &rule.handler)).chain(std::iter::once(&table.fallback))
    }
}

impl Handler for PathsHandler {
    async fn serve(&self, conn: TlsConn) -> Result<(), HandlerError> {
        let tunnels = TunnelSlot::default();
        let answering = self
            .handlers()
            .map(|handler| handler.answering(&conn, &tunnels))
            .collect();
        let dispatch = Dispatch {
            paths: self.clone(),
            answering,
            encoders: Encoders::new(),
            client: conn.info.peer_addr.ip(),
        };
        // Boxed, as the proxy's (an upgraded connection lives on as its tunnel).
        Box::pin(self.http.serve(conn, dispatch)).await?;
        tunnels.finish().await
    }
}

/// One connection's dispatcher: `answering` holds each rule's handler, then the fallback's.
struct Dispatch {
    paths: PathsHandler,
    answering: Vec<Option<Answering>>,
    /// The connection's share of compressing encoders, for the rules that compress.
    encoders: Encoders,
    client: IpAddr,
}

impl hyper::service::Service<Request<Incoming>> for Dispatch {
    type Response = Response<RuleBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<RuleBody>, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let response = self.dispatch(request);
        Box::pin(async move { Ok(response.await) })
    }
}

impl Dispatch {
    fn dispatch(&self, mut request: Request<Incoming>) -> Answer {
        let rules = &self.paths.table.rules;
        // `*` (OPTIONS) and authority-form (CONNECT) name no path: the fallback's.
        let mut index = rules.len();
        if request.uri().path().starts_with('/') {
            let normal = match matching::normalise(request.uri().path()) {
                Ok(normal) => normal,
                Err(bad) => return ready(refusal(StatusCode::BAD_REQUEST, bad)),
            };
            index = (rules.iter())
                .position(|rule| rule.paths.takes(&normal))
                .unwrap_or(rules.len());
            let rule = rules.get(index).filter(|rule| rule.strip_prefix);
            let path = match rule {
                Some(rule) => {
                    let prefix = rule.paths.prefix_text();
                    (request.extensions_mut()).insert(StrippedPrefix(prefix.into()));
                    rule.paths.strip(&normal)
                }
                None => &normal,
            };
            if path != request.uri().path() && !rewrite(&mut request, path) {
                return ready(refusal(StatusCode::BAD_REQUEST, BadPath::Escape));
            }
        }
        let handler = rules
            .get(index)
            .map_or(&self.paths.table.fallback, |rule| &rule.handler);
        let answering = self.answering.get(index).and_then(Option::as_ref);
        let (Some(http), Some(answering)) = (handler.http(), answering) else {
            return ready(plain(StatusCode::NOT_FOUND, ""));
        };
        if !http.admits(self.client) {
            return ready(plain(StatusCode::FORBIDDEN, ""));
        }
        let answer = match http.basic_auth() {
            None => answered(http, answering, request, &self.encoders),
            Some(auth) => {
                let verdict = auth.verdict(request.headers());
                request.headers_mut().remove(AUTHORIZATION);
                match verdict {
                    Verdict::Allowed => answered(http, answering, request, &self.encoders),
                    Verdict::Refused => return ready(refused(auth)),
                    Verdict::Check(check) => {
                        let (http, answering) = (http.clone(), answering.clone());
                        let (auth, encoders) = (auth.clone(), self.encoders.clone());
                        return Box::pin(async move {
                            if check.await {
                                answered(&http, &answering, request, &encoders).await
                            } else {
                                refused(&auth)
                            }
                        });
                    }
                }
            }
        };
        answer
    }
}

/// `answering`'s answer to `request`, compressed and edited as `http` says.
fn answered(
    http: &HttpServer,
    answering: &Answering,
    request: Request<Incoming>,
    encoders: &Encoders,
) -> Answer {
    let answer = if http.compresses() {
        let compressed = super::http::compressed(&**answering, request, encoders);
        Box::pin(async move {
            let response = compressed.await;
            response.map(|body| body.map_err(BodyError::new).boxed_unsync())
        })
    } else {
        answering(request)
    };
    match http.response_edits().cloned() {
        None => answer,
        Some(edits) => Box::pin(async move {
            let mut response = answer.await;
            edits.apply(response.headers_mut());
            response
        }),
    }
}

fn refused(auth: &BasicAuth) -> Response<RuleBody> {
    let response = unauthorized(auth);
    response.map(|body| body.map_err(|never| match never {}).boxed_unsync())
}

/// Puts `path` in place of the request's path, its query kept; `false` if it cannot be.
fn rewrite(request: &mut Request<Incoming>, path: &str) -> bool {
    let target = match request.uri().query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let mut parts = request.uri().clone().into_parts();
    parts.path_and_query = PathAndQuery::try_from(target).ok();
    match Uri::from_parts(parts) {
        Ok(uri) => {
            *request.uri_mut() = uri;
            true
        }
        Err(_) => false,
    }
}

fn ready(response: Response<RuleBody>) -> Answer {
    Box::pin(std::future::ready(response))
}

fn refusal(status: StatusCode, bad: BadPath) -> Response<RuleBody> {
    plain(status, bad.message())
}

fn plain(status: StatusCode, message: &'static str) -> Response<RuleBody> {
    let body = if message.is_empty() {
        Empty::new().map_err(|never| match never {}).boxed_unsync()
    } else {
        let text = Full::new(Bytes::from_static(message.as_bytes()));
        text.map_err(|never| match never {}).boxed_unsync()
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    if !message.is_empty() {
        (response.headers_mut()).insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    response
}
