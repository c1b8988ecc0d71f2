//! The plain-HTTP listener (`[http_redirect]` or `[acme] http01_listen`, usually port 80):
//! answers `GET /.well-known/acme-challenge/<token>` for pending challenges of the context, and
//! redirects every other request to the same host and path over https (on `https_port` when
//! given), as Caddy and Certbot's nginx setups do. Bounded like the admin endpoint: a connection cap, a header timeout and
//! size, and a whole-connection deadline.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::tls::ChallengeStore;

/// Connections served at once; more wait in the listen backlog.
pub const MAX_HTTP01_CONNECTIONS: usize = 256;
/// How long a client may take to send its request head.
pub const HTTP01_HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection may last, whatever it does.
pub const HTTP01_CONNECTION_TIME: Duration = Duration::from_secs(10);
const HEADER_BYTES: usize = 8 * 1024;
const CHALLENGE_PATH: &str = "/.well-known/acme-challenge/";

/// A bound HTTP-01 listener; bind it before dropping privileges (port 80).
#[derive(Debug)]
pub struct Http01Listener {
    listener: TcpListener,
}

impl Http01Listener {
    /// Binds `addr`.
    pub async fn bind(addr: SocketAddr) -> io::Result<Self> {
        Ok(Self {
            listener: TcpListener::bind(addr).await?,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `stop`, answering from `challenges`; redirects name `https_port` when
    /// given (none: the https default, 443).
    pub async fn run(
        self,
        challenges: Arc<ChallengeStore>,
        https_port: Option<u16>,
        stop: CancellationToken,
    ) {
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(HTTP01_HEADER_TIMEOUT)
            .max_buf_size(HEADER_BYTES)
            .keep_alive(false);
        let permits = Arc::new(Semaphore::new(MAX_HTTP01_CONNECTIONS));
        loop {
            let permit = tokio::select! {
                () = stop.cancelled() => return,
                permit = permits.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
            };
            let (tcp, _) = tokio::select! {
                () = stop.cancelled() => return,
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::debug!(%error, "HTTP-01 accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let challenges = challenges.clone();
            let connection = http.serve_connection(
                TokioIo::new(tcp),
                hyper::service::service_fn(move |request| {
                    let response = answer(&challenges, &request, https_port);
                    async move { Ok::<_, Infallible>(response) }
                }),
            );
            tokio::spawn(async move {
                let _ = tokio::time::timeout(HTTP01_CONNECTION_TIME, connection).await;
                drop(permit);
            });
        }
    }
}

/// The answer to one request: a key authorization, or a redirect to https.
fn answer<B>(
    challenges: &ChallengeStore,
    request: &Request<B>,
    https_port: Option<u16>,
) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    if let Some(token) = path.strip_prefix(CHALLENGE_PATH) {
        return match challenges.http_answer(token) {
            Some(key_authorization) => {
                tracing::info!(token, "answered an ACME HTTP-01 validation");
                respond(
                    StatusCode::OK,
                    &[("content-type", "text/plain")],
                    key_authorization,
                )
            }
            None => respond(StatusCode::NOT_FOUND, &[], String::new()),
        };
    }
    // The host without its port (https is elsewhere), from exactly one well-formed Host header.
    match crate::host::single_host(request.headers()) {
        Some(host) => {
            let target = request.uri().path_and_query().map_or("/", |p| p.as_str());
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host.to_owned()
            };
            let location = match https_port {
                Some(port) if port != 443 => format!("https://{host}:{port}{target}"),
                _ => format!("https://{host}{target}"),
            };
            respond(
                StatusCode::PERMANENT_REDIRECT,
                &[("location", &location)],
                String::new(),
            )
        }
        None => respond(
            StatusCode::BAD_REQUEST,
            &[("content-type", "text/plain")],
            "exactly one valid Host header is required\n".to_owned(),
        ),
    }
}

fn respond(status: StatusCode, headers: &[(&str, &str)], body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    for (name, value) in headers {
        if let Ok(value) = hyper::header::HeaderValue::from_str(value) {
            if let Ok(name) = hyper::header::HeaderName::from_bytes(name.as_bytes()) {
                response.headers_mut().insert(name, value);
            }
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(store: &ChallengeStore, uri: &str, host: Option<&str>) -> Response<Full<Bytes>> {
        get_via(store, uri, host, None)
    }

    fn get_via(
        store: &ChallengeStore,
        uri: &str,
        host: Option<&str>,
        https_port: Option<u16>,
    ) -> Response<Full<Bytes>> {
        let mut request = Request::builder().uri(uri);
        if let Some(host) = host {
            request = request.header("host", host);
        }
        answer(store, &request.body(()).unwrap(), https_port)
    }

    #[test]
    fn tokens_are_answered_and_everything_else_is_sent_to_https() {
        let store = ChallengeStore::default();
        store.insert_http("Example.test", "tok3n", "tok3n.thumbprint");
        let ok = get(
            &store,
            "/.well-known/acme-challenge/tok3n",
            Some("example.test"),
        );
        assert_eq!(ok.status(), StatusCode::OK);
        let missing = get(
            &store,
            "/.well-known/acme-challenge/other",
            Some("example.test"),
        );
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        let moved = get(&store, "/a/b?c=d", Some("example.test:80"));
        assert_eq!(moved.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(moved.headers()["location"], "https://example.test/a/b?c=d");
        let junk = get(&store, "/", Some("bad host\\"));
        assert_eq!(junk.status(), StatusCode::BAD_REQUEST);
        assert_eq!(get(&store, "/", None).status(), StatusCode::BAD_REQUEST);
        let two = Request::builder()
            .uri("/")
            .header("host", "example.test")
            .header("host", "evil.test")
            .body(())
            .unwrap();
        assert_eq!(answer(&store, &two, None).status(), StatusCode::BAD_REQUEST);
        let v6 = get(&store, "/x", Some("[::1]:80"));
        assert_eq!(v6.headers()["location"], "https://[::1]/x");
        // https elsewhere than 443: named in the Location.
        let port = get_via(&store, "/x?y", Some("example.test"), Some(8443));
        assert_eq!(port.headers()["location"], "https://example.test:8443/x?y");
        let v6 = get_via(&store, "/x", Some("[::1]:80"), Some(8443));
        assert_eq!(v6.headers()["location"], "https://[::1]:8443/x");
        let default = get_via(&store, "/x", Some("example.test"), Some(443));
        assert_eq!(default.headers()["location"], "https://example.test/x");
        store.remove("example.test");
        let gone = get(
            &store,
            "/.well-known/acme-challenge/tok3n",
            Some("example.test"),
        );
        assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    }
}
