//! The `static` handler: files from a folder over HTTP/1.1 and HTTP/2, on tower-http's
//! `ServeDir` (content types, `index.html`, `HEAD`, `Range`, `Last-Modified`), with additions:
//! weak `ETag`s with `If-None-Match`, and [`target`]'s rules on what may be served at all (inside
//! the folder, regular files only, no dotfiles unless allowed).
//!
//! Files asked for whole take shorter paths than ServeDir's, which is left the `Range` requests.
//! Small ones (up to 64 KiB, the usual page, script or icon; [`small_file`]) are read on the
//! serving thread when the connection is ready to send them, as nginx does, rather than through
//! ServeDir's blocking-pool hops for the metadata, the open and each read (measured: 56 µs of
//! server CPU per keep-alive request through ServeDir, against 9 µs for the status page).
//! Larger ones ([`large_file`]) are read a piece at a time into the buffers sent: on the serving
//! thread when the page cache has the piece, on the blocking pool when it would wait for the disk.

mod cache;
mod large_file;
mod small_file;
mod target;

use std::convert::Infallible;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
    LAST_MODIFIED, LOCATION, RANGE,
};
use hyper::{Method, Request, Response, StatusCode};
use tower_http::services::ServeDir;
use tower_service::Service as _;

use super::http::{HttpLimits, HttpServer};
use super::proxy::BodyError;
use super::{Handler, HandlerError, StrippedPrefix, TlsConn};
pub use cache::FileCacheOptions;
use cache::{Cached, FileCache, Lookup};
use large_file::LargeFile;
use small_file::SmallFile;
use target::Target;

type Body = UnsyncBoxBody<Bytes, io::Error>;

/// Serves the files under one folder; see the module docs.
#[derive(Clone)]
pub struct StaticHandler {
    site: Arc<Site>,
    http: HttpServer,
}

/// What answering a request needs.
struct Site {
    root: PathBuf,
    files: ServeDir,
    dotfiles: bool,
    /// Small files kept in memory, when asked for.
    cache: Option<FileCache>,
}

impl StaticHandler {
    /// Serves `root`, which must be a readable folder. Dotfiles (`.env`, `.git/…`) are refused
    /// with 404 unless [`StaticHandler::serve_dotfiles`] says otherwise; `.well-known` is served.
    pub fn new(root: impl AsRef<Path>) -> io::Result<Self> {
        let root = std::fs::canonicalize(root.as_ref())?;
        if !root.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a folder", root.display()),
            ));
        }
        Ok(Self {
            site: Arc::new(Site {
                files: ServeDir::new(&root).append_index_html_on_directories(true),
                root,
                dotfiles: false,
                cache: None,
            }),
            http: HttpServer::new(HttpLimits::default()),
        })
    }

    /// Serve files and folders whose names start with a dot too.
    pub fn serve_dotfiles(mut self, serve: bool) -> Self {
        self.site = Arc::new(Site {
            root: self.site.root.clone(),
            files: self.site.files.clone(),
            dotfiles: serve,
            cache: self.site.cache.as_ref().map(FileCache::same_options),
        });
        self
    }

    /// Keeps small files (up to 64 KiB) in memory, bounded by `options` (see
    /// [`FileCacheOptions`]): answered with no system call while fresh, looked at again (by
    /// the same rules as any request) at most every `revalidate`.
    pub fn cache(mut self, options: FileCacheOptions) -> Self {
        self.site = Arc::new(Site {
            root: self.site.root.clone(),
            files: self.site.files.clone(),
            dotfiles: self.site.dotfiles,
            cache: Some(FileCache::new(options)),
        });
        self
    }

    super::http::http_options!();

    /// The folder served (canonical).
    pub fn root(&self) -> &Path {
        &self.site.root
    }
}

impl std::fmt::Debug for StaticHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticHandler")
            .field("root", &self.site.root)
            .field("dotfiles", &self.site.dotfiles)
            .finish_non_exhaustive()
    }
}

impl StaticHandler {
    /// Its answers to a connection's requests, for path rules.
    pub(super) fn answering(&self) -> super::paths::Answering {
        let site = self.site.clone();
        Arc::new(move |request| {
            let site = site.clone();
            Box::pin(async move {
                let response = site.respond(request).await;
                response.map(|body| body.map_err(BodyError::new).boxed_unsync())
            })
        })
    }
}

impl Handler for StaticHandler {
    async fn serve(&self, conn: TlsConn) -> Result<(), HandlerError> {
        let site = self.site.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let site = site.clone();
            // Boxed: the answer's state is freed once the response is made, while an HTTP/2
            // stream's task keeps the size of its largest state for as long as the response
            // is sent (measured: ~1 KiB less per stream held open by a client).
            let answer = Box::pin(async move { site.respond(request).await });
            async move { Ok::<_, Infallible>(answer.await) }
        });
        self.http.serve(conn, service).await
    }
}

/// The largest file served by the short path.
const SMALL_FILE: u64 = 64 * 1024;

impl Site {
    async fn respond(&self, request: Request<Incoming>) -> Response<Body> {
        let decoded = percent_encoding::percent_decode_str(request.uri().path())
            .decode_utf8_lossy()
            .into_owned();
        let if_none_match = request.headers().get(IF_NONE_MATCH).cloned();
        let whole = matches!(*request.method(), Method::GET | Method::HEAD)
            && !request.headers().contains_key(RANGE);
        let cache = self.cache.as_ref().filter(|_| whole);
        if let Some(Lookup::Fresh(file)) = cache.map(|cache| cache.lookup(&decoded)) {
            return validated(cached(&file), if_none_match.as_ref());
        }
        let (path, metadata) = match target::resolve(&self.root, &decoded, self.dotfiles) {
            Target::File { path, metadata } => (path, metadata),
            other => {
                if let Some(cache) = cache {
                    cache.forget(&decoded);
                }
                return match other {
                    Target::Folder => folder_redirect(&request),
                    _ => status(StatusCode::NOT_FOUND),
                };
            }
        };
        if let Some(cache) = cache.filter(|_| metadata.len() <= SMALL_FILE) {
            let content_type = content_type(&path);
            if let Some(file) = cache.load(&decoded, &path, &metadata, content_type) {
                return validated(cached(&file), if_none_match.as_ref());
            }
        }
        let response = match whole_file(&request, whole, path, &metadata) {
            Some(response) => response,
            None => {
                // Boxed: ServeDir's future is large, and inline it would size every request's
                // task (an HTTP/2 stream's, for as long as its response lasts).
                let Ok(response) = Box::pin(self.files.clone().call(request)).await;
                response.map(BodyExt::boxed_unsync)
            }
        };
        validated(response, if_none_match.as_ref())
    }
}

/// Adds the weak `ETag`, and answers `304` when `If-None-Match` has it.
fn validated(response: Response<Body>, if_none_match: Option<&HeaderValue>) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    let etag = etag(&parts.headers);
    if let Some(etag) = &etag {
        parts.headers.insert(ETAG, etag.clone());
    }
    if let (Some(etag), Some(wanted)) = (&etag, if_none_match) {
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

fn content_type(path: &Path) -> HeaderValue {
    let guessed = mime_guess::from_path(path).first_or_octet_stream();
    HeaderValue::from_str(guessed.as_ref())
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
}

/// The response for a cached file (a HEAD's body is dropped by the HTTP layer).
fn cached(file: &Cached) -> Response<Body> {
    let body = http_body_util::Full::new(file.content.clone())
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, file.content_type.clone());
    headers.insert(CONTENT_LENGTH, HeaderValue::from(file.content.len()));
    headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(modified) = &file.last_modified {
        headers.insert(LAST_MODIFIED, modified.clone());
    }
    response
}

/// A file asked for whole (`GET` or `HEAD` without `Range`); `None` leaves the request to
/// ServeDir.
fn whole_file(
    request: &Request<Incoming>,
    whole: bool,
    path: PathBuf,
    metadata: &std::fs::Metadata,
) -> Option<Response<Body>> {
    if !whole {
        return None;
    }
    let content_type = content_type(&path);
    let body = if request.method() == Method::HEAD {
        Empty::new().map_err(|never| match never {}).boxed_unsync()
    } else if metadata.len() <= SMALL_FILE {
        SmallFile::new(path, metadata.len()).boxed_unsync()
    } else {
        LargeFile::new(path, metadata.len()).boxed_unsync()
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, content_type);
    headers.insert(CONTENT_LENGTH, HeaderValue::from(metadata.len()));
    headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(modified) = metadata.modified() {
        let date = httpdate::fmt_http_date(modified);
        headers.insert(LAST_MODIFIED, HeaderValue::from_str(&date).ok()?);
    }
    Some(response)
}

/// A folder asked for without its slash: `307` to the same path with one. The `Location` is the
/// path alone, never an absolute URI built from the client's `Host` or `:authority`.
fn folder_redirect(request: &Request<Incoming>) -> Response<Body> {
    let uri = request.uri();
    // One leading slash: `//host/dir` must not become a redirect to another site.
    let path = uri.path().trim_start_matches('/');
    // Under a path rule that strips its prefix, the client's path has it.
    let prefix = request.extensions().get::<StrippedPrefix>();
    let prefix = prefix.map_or("", |p| p.0.as_ref());
    let location = match uri.query() {
        Some(query) => format!("{prefix}/{path}/?{query}"),
        None => format!("{prefix}/{path}/"),
    };
    let mut response = status(StatusCode::TEMPORARY_REDIRECT);
    match HeaderValue::from_str(&location) {
        Ok(location) => {
            response.headers_mut().insert(LOCATION, location);
        }
        Err(_) => *response.status_mut() = StatusCode::NOT_FOUND,
    }
    response
}

fn status(code: StatusCode) -> Response<Body> {
    let mut response = Response::new(Empty::new().map_err(|never| match never {}).boxed_unsync());
    *response.status_mut() = code;
    response
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
