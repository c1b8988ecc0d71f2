//! The built-in `status` handler: HTTPS (HTTP/1.1 or HTTP/2, by ALPN) answering every path with a
//! page about the very connection it arrived on, and the list of servers in the process.
//!
//! HTML by default; JSON for `Accept: application/json` or `?format=json`. The JSON fields are
//! those of [`ConnInfo`] plus `http_version` and `servers` (see `docs/configuration.md`).

use std::convert::Infallible;
use std::fmt::Write as _;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{HeaderValue, ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Request, Response, Version};
use serde::Serialize;

use super::http::{HttpLimits, HttpServer};
use super::{ConnInfo, Handler, HandlerError, TlsConn};
use crate::registry::{ServerListing, ServerRegistry};

/// Serves the status page; see the module docs.
#[derive(Clone)]
pub struct StatusHandler {
    registry: ServerRegistry,
    list_servers: bool,
    http: HttpServer,
}

impl StatusHandler {
    /// A status handler that can list the servers in `registry` (see
    /// [`StatusHandler::list_servers`]).
    pub fn new(registry: ServerRegistry) -> Self {
        Self {
            registry,
            list_servers: false,
            http: HttpServer::new(HttpLimits::default()),
        }
    }

    /// The same page over `registry` (the server's, given when it binds).
    pub(crate) fn with_registry(mut self, registry: ServerRegistry) -> Self {
        self.registry = registry;
        self
    }

    /// Whether the page lists every server of the process. Off by default: it would tell any
    /// client what else the process runs.
    pub fn list_servers(mut self, list: bool) -> Self {
        self.list_servers = list;
        self
    }

    super::http::http_options!();

    fn respond(&self, info: &Arc<ConnInfo>, request: &Request<Incoming>) -> Response<PageBody> {
        let json = wants_json(request);
        let content_type = if json {
            "application/json"
        } else {
            "text/html; charset=utf-8"
        };
        let page = PendingPage {
            info: info.clone(),
            http_version: request.version(),
            json,
            registry: self.list_servers.then(|| self.registry.clone()),
        };
        // HTTP/1 carries one response at a time: made now, it goes with its length.
        let body = if request.version() == Version::HTTP_2 {
            PageBody::Pending(page)
        } else {
            PageBody::Made(page.render())
        };
        let mut response = Response::new(body);
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

impl StatusHandler {
    /// Its answers to `conn`'s requests, for path rules.
    pub(super) fn answering(&self, conn: &TlsConn) -> super::paths::Answering {
        let (status, info) = (self.clone(), conn.info.clone());
        Arc::new(move |request| {
            let response = status.respond(&info, &request);
            let response = response.map(|body| body.map_err(|never| match never {}));
            Box::pin(std::future::ready(
                response.map(http_body_util::BodyExt::boxed_unsync),
            ))
        })
    }
}

impl std::fmt::Debug for StatusHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusHandler")
            .field("list_servers", &self.list_servers)
            .finish_non_exhaustive()
    }
}

impl Handler for StatusHandler {
    async fn serve(&self, conn: TlsConn) -> Result<(), HandlerError> {
        let (status, info) = (self.clone(), conn.info.clone());
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let response = status.respond(&info, &request);
            async move { Ok::<_, Infallible>(response) }
        });
        self.http.serve(conn, service).await
    }
}

/// A status page to be written when the client can take it: a page made at once would be held
/// whole by every stream that a client with a zero HTTP/2 window keeps open (measured: 609-629
/// KiB per connection with 100 such streams, against 384 KiB for the other handlers).
struct PendingPage {
    info: Arc<ConnInfo>,
    http_version: Version,
    json: bool,
    /// `Some` when the page lists the process's servers.
    registry: Option<ServerRegistry>,
}

impl PendingPage {
    fn render(self) -> Bytes {
        let page = StatusPage {
            connection: &self.info,
            http_version: format!("{:?}", self.http_version),
            servers: self.registry.map(|r| r.list()).unwrap_or_default(),
        };
        let mut bytes = if self.json {
            serde_json::to_vec_pretty(&page).unwrap_or_default()
        } else {
            page.html().into_bytes()
        };
        // A page may wait on a slow client: it holds its length, not what growing it left.
        bytes.shrink_to_fit();
        Bytes::from(bytes)
    }
}

/// The status page's body. Over HTTP/2 it is rendered on its first poll, which hyper makes only
/// once the client can take data (flow control) and the connection's response budget has room.
enum PageBody {
    Pending(PendingPage),
    Made(Bytes),
    Sent,
}

impl Body for PageBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let page = match std::mem::replace(self.get_mut(), Self::Sent) {
            Self::Pending(page) => page.render(),
            Self::Made(page) => page,
            Self::Sent => return Poll::Ready(None),
        };
        Poll::Ready(Some(Ok(Frame::data(page))))
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Self::Sent)
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Pending(_) => SizeHint::default(),
            Self::Made(page) => SizeHint::with_exact(page.len() as u64),
            Self::Sent => SizeHint::with_exact(0),
        }
    }
}

fn wants_json(request: &Request<Incoming>) -> bool {
    let query_asks = request
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|pair| pair == "format=json"));
    let accept_asks = request
        .headers()
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    query_asks || accept_asks
}

#[derive(Serialize)]
struct StatusPage<'a> {
    #[serde(flatten)]
    connection: &'a ConnInfo,
    http_version: String,
    servers: Vec<ServerListing>,
}

impl StatusPage<'_> {
    fn html(&self) -> String {
        let c = self.connection;
        let none = || "none".to_owned();
        let rows = [
            ("Server", c.server.to_string()),
            ("Listening on", c.local_addr.to_string()),
            ("TLS version", c.tls_version.clone()),
            ("Cipher suite", c.cipher_suite.clone()),
            (
                "Key exchange",
                c.key_exchange_group.map_or_else(none, str::to_owned),
            ),
            ("ALPN", c.alpn.clone().unwrap_or_else(none)),
            ("SNI", c.sni.clone().unwrap_or_else(none)),
            ("HTTP version", self.http_version.clone()),
            ("Client address", c.peer_addr.to_string()),
            (
                "Session resumed",
                if c.resumed { "yes" } else { "no" }.to_owned(),
            ),
            (
                "Client certificate",
                c.client_cert
                    .as_ref()
                    .map_or_else(none, |cert| cert.subject.clone()),
            ),
            (
                "Handshake",
                format!("{:.2} ms", c.handshake_duration.as_secs_f64() * 1000.0),
            ),
        ];
        let mut html = String::with_capacity(4096);
        let _ = write!(
            html,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>tlsplex: {server}</title>\
             <style>body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}\
             table{{border-collapse:collapse;margin-bottom:2em}}\
             th,td{{text-align:left;padding:.3em 1em;border-bottom:1px solid #ddd}}\
             th{{color:#555;font-weight:600}}</style></head><body>\
             <h1>tlsplex: <span id=\"server\">{server}</span></h1>\
             <h2>This connection</h2><table id=\"connection\">",
            server = escape(&c.server)
        );
        for (label, value) in rows {
            let _ = write!(html, "<tr><th>{label}</th><td>{}</td></tr>", escape(&value));
        }
        html.push_str(
            "</table><h2>Servers in this process</h2><table id=\"servers\">\
             <tr><th>Name</th><th>Listening on</th><th>State</th></tr>",
        );
        for s in &self.servers {
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&s.name),
                s.listen,
                s.state
            );
        }
        html.push_str("</table></body></html>\n");
        html
    }
}

/// Escapes text for HTML element content and attribute values (the status page's, a folder's
/// listing).
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escape_neutralises_markup() {
        assert_eq!(
            escape("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
    }
}
