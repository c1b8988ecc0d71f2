//! The built-in `respond` handler: one fixed response (status, headers, body) from memory for
//! every request, as nginx's `return` and HAProxy's `http-request return` give: health
//! endpoints, maintenance pages, redirects (`status = 308` with a `location` header).

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};

use super::http::{HttpLimits, HttpServer};
use super::{Handler, HandlerError, TlsConn};

/// The largest body a fixed response may have (it is held in memory, once).
pub const MAX_RESPOND_BODY: usize = 1024 * 1024;

/// Why a fixed response cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RespondError {
    /// Not a final status code.
    #[error("{0} is not a status code from 200 to 599")]
    Status(u16),
    /// A header name or value HTTP does not allow.
    #[error("header {0:?}: not a valid HTTP header name and value")]
    Header(String),
    /// A header the server sets itself.
    #[error("header {0:?} is set by the server")]
    Reserved(String),
    /// Over [`MAX_RESPOND_BODY`].
    #[error("the body is {0} bytes; at most {MAX_RESPOND_BODY} are allowed")]
    Body(usize),
    /// A redirect (301, 302, 303, 307, 308) without a `location` header.
    #[error("a {0} redirect needs a location header")]
    NoLocation(u16),
}

/// Serves one fixed response; see the module docs.
#[derive(Clone)]
pub struct RespondHandler {
    response: Arc<Fixed>,
    http: HttpServer,
}

struct Fixed {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl RespondHandler {
    /// `status` with `headers` and `body`; `content-type` is `text/plain; charset=utf-8` unless
    /// given. `content-length`, `transfer-encoding` and `connection` are the server's.
    pub fn new(
        status: u16,
        headers: &[(String, String)],
        body: impl Into<Bytes>,
    ) -> Result<Self, RespondError> {
        let status = StatusCode::from_u16(status)
            .ok()
            .filter(|s| (200..600).contains(&s.as_u16()))
            .ok_or(RespondError::Status(status))?;
        let body = body.into();
        if body.len() > MAX_RESPOND_BODY {
            return Err(RespondError::Body(body.len()));
        }
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            let parsed = HeaderName::from_bytes(name.as_bytes())
                .ok()
                .zip(HeaderValue::from_str(value).ok());
            let (header, value) = parsed.ok_or_else(|| RespondError::Header(name.clone()))?;
            if ["content-length", "transfer-encoding", "connection"].contains(&header.as_str()) {
                return Err(RespondError::Reserved(name.clone()));
            }
            map.append(header, value);
        }
        let redirect = matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308);
        if redirect && !map.contains_key(hyper::header::LOCATION) {
            return Err(RespondError::NoLocation(status.as_u16()));
        }
        if !map.contains_key(CONTENT_TYPE) {
            map.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
        }
        Ok(Self {
            response: Arc::new(Fixed {
                status,
                headers: map,
                body,
            }),
            http: HttpServer::new(HttpLimits::default()),
        })
    }

    super::http::http_options!();

    /// The status code it answers with.
    pub fn status(&self) -> u16 {
        self.response.status.as_u16()
    }

    /// Its answer to every request of a connection, for path rules.
    pub(super) fn answering(&self) -> super::paths::Answering {
        let fixed = self.clone();
        std::sync::Arc::new(move |_| {
            let response = fixed.respond();
            let response = response.map(|body| body.map_err(|never| match never {}));
            Box::pin(std::future::ready(response.map(BodyExt::boxed_unsync)))
        })
    }

    fn respond(&self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(self.response.body.clone()));
        *response.status_mut() = self.response.status;
        *response.headers_mut() = self.response.headers.clone();
        response
    }
}

impl std::fmt::Debug for RespondHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RespondHandler")
            .field("status", &self.response.status)
            .field("body_bytes", &self.response.body.len())
            .finish_non_exhaustive()
    }
}

impl Handler for RespondHandler {
    async fn serve(&self, conn: TlsConn) -> Result<(), HandlerError> {
        let fixed = self.clone();
        let service = hyper::service::service_fn(move |_: Request<Incoming>| {
            let response = fixed.respond();
            async move { Ok::<_, Infallible>(response) }
        });
        self.http.serve(conn, service).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, value: &str) -> (String, String) {
        (name.to_owned(), value.to_owned())
    }

    #[test]
    fn fixed_responses_are_checked_once() {
        let ok = RespondHandler::new(200, &[], "ok\n").unwrap();
        assert_eq!(
            ok.respond().headers()[CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        let moved =
            RespondHandler::new(308, &[header("Location", "https://example.test/")], "").unwrap();
        assert_eq!(moved.respond().status(), 308);
        assert_eq!(
            moved.respond().headers()["location"],
            "https://example.test/"
        );
        assert_eq!(
            RespondHandler::new(99, &[], "").unwrap_err(),
            RespondError::Status(99)
        );
        assert_eq!(
            RespondHandler::new(101, &[], "").unwrap_err(),
            RespondError::Status(101)
        );
        assert_eq!(
            RespondHandler::new(301, &[], "").unwrap_err(),
            RespondError::NoLocation(301)
        );
        assert!(matches!(
            RespondHandler::new(200, &[header("bad name", "x")], ""),
            Err(RespondError::Header(_))
        ));
        assert!(matches!(
            RespondHandler::new(200, &[header("x", "line\nbreak")], ""),
            Err(RespondError::Header(_))
        ));
        assert!(matches!(
            RespondHandler::new(200, &[header("Content-Length", "5")], ""),
            Err(RespondError::Reserved(_))
        ));
        let big = vec![b'x'; MAX_RESPOND_BODY + 1];
        assert!(matches!(
            RespondHandler::new(200, &[], big),
            Err(RespondError::Body(_))
        ));
    }
}
