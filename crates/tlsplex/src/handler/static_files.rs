//! The `static` handler: files from a folder over HTTP/1.1 and HTTP/2, on tower-http's
//! `ServeDir` (content types, `index.html`, `HEAD`, `Range`, `Last-Modified`), with two additions:
//! weak `ETag`s with `If-None-Match`, and a guard that nothing outside the folder is reachable —
//! not by `..`, not percent-encoded, not through a symlink that leads out.
//!
//! Small files (up to 64 KiB, the usual page, script or icon) asked for whole take a shorter
//! path: read at once with blocking calls, as nginx does, rather than through ServeDir's
//! blocking-pool hops for the metadata, the open and each read (measured: 56 µs of server CPU
//! per keep-alive request through ServeDir, against 9 µs for the status page).

use std::convert::Infallible;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::Full;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
    LAST_MODIFIED, RANGE,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use tower_http::services::ServeDir;
use tower_service::Service as _;

use super::{http, Handler, HandlerError, TlsConn};

type Body = UnsyncBoxBody<Bytes, io::Error>;

/// Serves the files under one folder; see the module docs.
#[derive(Clone)]
pub struct StaticHandler {
    root: Arc<PathBuf>,
    files: ServeDir,
    http: Arc<auto::Builder<TokioExecutor>>,
}

impl StaticHandler {
    /// Serves `root`, which must be a readable folder.
    pub fn new(root: impl AsRef<Path>) -> io::Result<Self> {
        let root = std::fs::canonicalize(root.as_ref())?;
        if !root.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a folder", root.display()),
            ));
        }
        Ok(Self {
            files: ServeDir::new(&root).append_index_html_on_directories(true),
            root: Arc::new(root),
            http: http::builder(),
        })
    }

    /// The folder served (canonical).
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl std::fmt::Debug for StaticHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticHandler")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl Handler for StaticHandler {
    async fn serve(&self, conn: TlsConn) -> Result<(), HandlerError> {
        let service = hyper::service::service_fn(|request: Request<Incoming>| {
            let (root, files) = (self.root.clone(), self.files.clone());
            async move { Ok::<_, Infallible>(respond(&root, files, request).await) }
        });
        http::serve(&self.http, conn, service).await
    }
}

/// The largest file served by the short path.
const SMALL_FILE: u64 = 64 * 1024;

async fn respond(root: &Path, mut files: ServeDir, request: Request<Incoming>) -> Response<Body> {
    // Decoded once, for both the guard and the short path.
    let decoded = percent_encoding::percent_decode_str(request.uri().path())
        .decode_utf8_lossy()
        .into_owned();
    if escapes(root, &decoded) {
        return status(StatusCode::NOT_FOUND);
    }
    let if_none_match = request.headers().get(IF_NONE_MATCH).cloned();
    let response = match small_file(root, &request, &decoded) {
        Some(response) => response,
        None => {
            let Ok(response) = files.call(request).await;
            response.map(BodyExt::boxed_unsync)
        }
    };
    let (mut parts, body) = response.into_parts();
    let etag = etag(&parts.headers);
    if let Some(etag) = &etag {
        parts.headers.insert(ETAG, etag.clone());
    }
    if let (Some(etag), Some(wanted)) = (&etag, &if_none_match) {
        if parts.status == StatusCode::OK && matches(wanted, etag) {
            let mut not_modified = status(StatusCode::NOT_MODIFIED);
            not_modified.headers_mut().insert(ETAG, etag.clone());
            if let Some(modified) = parts.headers.get(LAST_MODIFIED) {
                not_modified
                    .headers_mut()
                    .insert(LAST_MODIFIED, modified.clone());
            }
            return not_modified;
        }
    }
    Response::from_parts(parts, body)
}

/// A whole small regular file (a folder's `index.html` for a path ending in `/`), for `GET` or
/// `HEAD` without `Range`; `None` leaves the request to ServeDir (also for anything missing).
/// `decoded` is the request's path, percent-decoded.
fn small_file(root: &Path, request: &Request<Incoming>, decoded: &str) -> Option<Response<Body>> {
    let head = request.method() == Method::HEAD;
    if !(head || request.method() == Method::GET) || request.headers().contains_key(RANGE) {
        return None;
    }
    let mut path = root.join(decoded.trim_start_matches('/'));
    if decoded.ends_with('/') {
        path.push("index.html");
    }
    let file = std::fs::File::open(&path).ok()?;
    let metadata = file.metadata().ok()?;
    if !metadata.is_file() || metadata.len() > SMALL_FILE {
        return None;
    }
    // The length sent is what was read, should the file change meanwhile.
    let contents = if head {
        Vec::new()
    } else {
        let mut contents = Vec::with_capacity(metadata.len() as usize);
        std::io::Read::read_to_end(&mut &file, &mut contents).ok()?;
        contents
    };
    let length = if head {
        metadata.len()
    } else {
        contents.len() as u64
    };
    let content_type = mime_guess::from_path(&path).first_or_octet_stream();
    let mut response = Response::new(
        Full::new(Bytes::from(contents))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_str(content_type.as_ref()).ok()?,
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(modified) = metadata.modified() {
        let date = httpdate::fmt_http_date(modified);
        headers.insert(LAST_MODIFIED, HeaderValue::from_str(&date).ok()?);
    }
    Some(response)
}

fn status(code: StatusCode) -> Response<Body> {
    let mut response = Response::new(Empty::new().map_err(|never| match never {}).boxed_unsync());
    *response.status_mut() = code;
    response
}

/// Whether the request path (`decoded`: percent-decoded) would leave `root`, by `..` or by a
/// symlink.
fn escapes(root: &Path, decoded: &str) -> bool {
    let relative = Path::new(decoded.trim_start_matches('/'));
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return true;
    }
    // Only a symlink beneath the root can lead out. An lstat per component finds one (for `/`:
    // none), where canonicalizing would read every link of the root's own path on each request.
    let mut path = root.to_path_buf();
    for component in relative.components() {
        path.push(component);
        match std::fs::symlink_metadata(&path) {
            Ok(found) if found.file_type().is_symlink() => {
                return match std::fs::canonicalize(root.join(relative)) {
                    Ok(real) => !real.starts_with(root),
                    Err(_) => false, // a dangling link: ServeDir answers 404
                };
            }
            Ok(_) => {}
            Err(_) => return false, // not there: ServeDir answers 404
        }
    }
    false
}

/// A weak validator from the file's size and modification time, as ServeDir reported them.
fn etag(headers: &hyper::HeaderMap) -> Option<HeaderValue> {
    let modified = headers.get(LAST_MODIFIED)?.as_bytes();
    let size = match headers.get(CONTENT_RANGE) {
        // "bytes 0-99/1234": the whole file's size is after the slash.
        Some(range) => range.to_str().ok()?.rsplit('/').next()?.to_owned(),
        None => headers.get(CONTENT_LENGTH)?.to_str().ok()?.to_owned(),
    };
    // FNV-1a of the date keeps the tag short and free of the spaces a tag may not contain.
    let hash = modified.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    });
    HeaderValue::from_str(&format!("W/\"{size}-{hash:016x}\"")).ok()
}

/// `If-None-Match` against a tag, by weak comparison (RFC 9110 §13.1.2).
fn matches(wanted: &HeaderValue, etag: &HeaderValue) -> bool {
    let strip = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
    let Ok(wanted) = wanted.to_str() else {
        return false;
    };
    let ours = etag.to_str().map(strip).unwrap_or_default();
    wanted
        .split(',')
        .any(|tag| tag.trim() == "*" || strip(tag) == ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_comparison() {
        let ours = HeaderValue::from_static("W/\"12-ab\"");
        assert!(matches(&HeaderValue::from_static("W/\"12-ab\""), &ours));
        assert!(matches(
            &HeaderValue::from_static("\"x\", \"12-ab\""),
            &ours
        ));
        assert!(matches(&HeaderValue::from_static("*"), &ours));
        assert!(!matches(&HeaderValue::from_static("\"12-ac\""), &ours));
    }
}
