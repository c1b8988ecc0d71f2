//! The built-in `status` handler: HTTPS (HTTP/1.1 or HTTP/2, by ALPN) answering every path with a
//! page about the very connection it arrived on, and the list of servers in the process.
//!
//! HTML by default; JSON for `Accept: application/json` or `?format=json`. The JSON fields are
//! those of [`ConnInfo`] plus `http_version` and `servers` (see `docs/configuration.md`).

use std::convert::Infallible;
use std::fmt::Write as _;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Request, Response};
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

    /// Whether the page lists every server of the process. Off by default: it would tell any
    /// client what else the process runs.
    pub fn list_servers(mut self, list: bool) -> Self {
        self.list_servers = list;
        self
    }

    /// The timeouts and sizes this handler's connections are held to.
    pub fn limits(mut self, limits: HttpLimits) -> Self {
        self.http = HttpServer::new(limits);
        self
    }

    fn respond(&self, info: &ConnInfo, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        let page = StatusPage {
            connection: info,
            http_version: format!("{:?}", request.version()),
            servers: if self.list_servers {
                self.registry.list()
            } else {
                Vec::new()
            },
        };
        let (content_type, body) = if wants_json(request) {
            let json = serde_json::to_vec_pretty(&page).unwrap_or_default();
            ("application/json", Bytes::from(json))
        } else {
            ("text/html; charset=utf-8", Bytes::from(page.html()))
        };
        let mut response = Response::new(Full::new(body));
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

impl Handler for StatusHandler {
    async fn serve(&self, conn: TlsConn) -> Result<(), HandlerError> {
        let info = conn.info.clone();
        let service = hyper::service::service_fn(|request: Request<Incoming>| {
            let response = self.respond(&info, &request);
            async move { Ok::<_, Infallible>(response) }
        });
        self.http.serve(conn, service).await
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

/// Escapes text for HTML element content and attribute values.
fn escape(text: &str) -> String {
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
