//! The `static` handler: files from a folder over HTTP/1.1 and HTTP/2, on tower-http's
//! `ServeDir` (content types, `index.html`, `HEAD`, `Range`, `Last-Modified`), with additions:
//! weak `ETag`s with `If-None-Match` ([`validators`]), and [`target`]'s rules on what may be
//! served at all (inside the folder, regular files only, no dotfiles unless allowed).
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
mod listing;
mod precompressed;
mod small_file;
mod target;
mod validators;

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::header::{
    HeaderMap, HeaderValue, ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
    LAST_MODIFIED, LOCATION, RANGE, VARY,
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
pub use listing::MAX_LISTED;
use precompressed::accepted;
use small_file::SmallFile;
use target::{Rules, Target};
use validators::{not_modified, validated, weak_etag};

type Body = UnsyncBoxBody<Bytes, io::Error>;

/// Serves the files under one folder; see the module docs.
#[derive(Clone)]
pub struct StaticHandler {
    site: Arc<Site>,
    http: HttpServer,
}

/// What answering a request needs.
#[derive(Clone)]
struct Site {
    root: PathBuf,
    files: ServeDir,
    rules: Rules,
    /// Small files kept in memory, when asked for.
    cache: Option<Arc<FileCache>>,
    /// Bodies for the error statuses the site answers with (`error_pages`).
    error_pages: Arc<HashMap<StatusCode, ErrorPage>>,
}

/// A page answered in place of an error's empty body.
#[derive(Clone)]
struct ErrorPage {
    content_type: HeaderValue,
    body: Bytes,
}

/// The largest error page, in bytes (held in memory).
pub const MAX_ERROR_PAGE: u64 = 1024 * 1024;

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
                files: ServeDir::new(&root),
                root,
                rules: Rules::default(),
                cache: None,
                error_pages: Arc::default(),
            }),
            http: HttpServer::new(HttpLimits::default()),
        })
    }

    /// The same site with `change` made to it.
    fn changed(mut self, change: impl FnOnce(&mut Site)) -> Self {
        let mut site = (*self.site).clone();
        // A cache belongs to one site's rules: a changed site starts its own.
        site.cache = site.cache.as_deref().map(|c| Arc::new(c.same_options()));
        change(&mut site);
        self.site = Arc::new(site);
        self
    }

    /// Serve files and folders whose names start with a dot too.
    pub fn serve_dotfiles(self, serve: bool) -> Self {
        self.changed(|site| site.rules.dotfiles = serve)
    }

    /// A folder asked for with its trailing slash is served by the first of `names` it holds
    /// (`["index.html"]` by default; empty: none).
    pub fn index<I, S>(self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let names = names.into_iter().map(Into::into).collect();
        self.changed(|site| site.rules.index = names)
    }

    /// A file asked for whole by a client that takes brotli or gzip is answered with its
    /// `.br` or `.gz` sibling when there is one (made ahead, as nginx's `gzip_static` serves
    /// them), with `Content-Encoding` and `Vary`; off by default.
    pub fn precompressed(self, serve: bool) -> Self {
        self.changed(|site| site.rules.precompressed = serve)
    }

    /// A folder without an index file is listed (its names, escaped, at most [`MAX_LISTED`]);
    /// off by default.
    pub fn listing(self, list: bool) -> Self {
        self.changed(|site| site.rules.listing = list)
    }

    /// Answers `status` (400 to 599) with the file `page` (relative to the root, read now, at
    /// most [`MAX_ERROR_PAGE`] bytes) wherever the site gives that status.
    pub fn error_page(self, status: u16, page: impl AsRef<Path>) -> io::Result<Self> {
        let invalid = |message: String| io::Error::new(io::ErrorKind::InvalidInput, message);
        let status = StatusCode::from_u16(status)
            .ok()
            .filter(|s| s.is_client_error() || s.is_server_error())
            .ok_or_else(|| invalid(format!("{status} is not an error status (400 to 599)")))?;
        let path = self.site.root.join(page.as_ref());
        let body = crate::files::read_limited(&path, MAX_ERROR_PAGE)?;
        let page = ErrorPage {
            content_type: content_type(&path),
            body: Bytes::from(body),
        };
        Ok(self.changed(|site| {
            let mut pages = (*site.error_pages).clone();
            pages.insert(status, page);
            site.error_pages = Arc::new(pages);
        }))
    }

    /// Keeps small files (up to 64 KiB) in memory, bounded by `options` (see
    /// [`FileCacheOptions`]): answered with no system call while fresh, looked at again (by
    /// the same rules as any request) at most every `revalidate`.
    pub fn cache(self, options: FileCacheOptions) -> Self {
        self.changed(|site| site.cache = Some(Arc::new(FileCache::new(options))))
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
            .field("rules", &self.site.rules)
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
        let response = self.answer(request).await;
        if response.status().is_success() || response.status().is_redirection() {
            return response;
        }
        match self.error_pages.get(&response.status()) {
            Some(page) => page.answer(response),
            None => response,
        }
    }

    async fn answer(&self, mut request: Request<Incoming>) -> Response<Body> {
        let decoded = percent_encoding::percent_decode_str(request.uri().path())
            .decode_utf8_lossy()
            .into_owned();
        let if_none_match = request.headers().get(IF_NONE_MATCH).cloned();
        let whole = matches!(*request.method(), Method::GET | Method::HEAD)
            && !request.headers().contains_key(RANGE);
        // With precompressed siblings, a client that takes an encoding may get one: not the
        // cache's copy.
        let encodings = self.rules.precompressed.then(|| accepted(&request));
        let encoding = encodings.filter(|e| e.any());
        let cache = (self.cache.as_deref()).filter(|_| whole && encoding.is_none());
        if let Some(Lookup::Fresh(file)) = cache.map(|cache| cache.lookup(&decoded)) {
            return cached(&file, if_none_match.as_ref());
        }
        let (path, metadata) = match target::resolve(&self.root, &decoded, &self.rules) {
            Target::File { path, metadata } => (path, metadata),
            other => {
                if let Some(cache) = cache {
                    cache.forget(&decoded);
                }
                return match other {
                    Target::Folder => folder_redirect(&request),
                    Target::Listing(folder) => {
                        let prefix = request.extensions().get::<StrippedPrefix>();
                        let shown = format!("{}{decoded}", prefix.map_or("", |p| &p.0));
                        listing::listing(folder, shown, self.rules.dotfiles).await
                    }
                    _ => status(StatusCode::NOT_FOUND),
                };
            }
        };
        if let Some(cache) = cache.filter(|_| metadata.len() <= SMALL_FILE) {
            let content_type = content_type(&path);
            if let Some(file) = cache.load(&decoded, &path, &metadata, content_type) {
                return cached(&file, if_none_match.as_ref());
            }
        }
        if let Some(encodings) = encoding.filter(|_| whole) {
            if let Some(response) = self.precompressed(&request, &decoded, &path, encodings) {
                return validated(response, if_none_match.as_ref());
            }
        }
        let response = match whole_file(&request, whole, path.clone(), &metadata) {
            Some(mut response) => {
                if self.rules.precompressed {
                    (response.headers_mut())
                        .insert(VARY, HeaderValue::from_static("accept-encoding"));
                }
                response
            }
            None => {
                // ServeDir is given the file resolved here (a folder's index among them).
                if !served_as(&mut request, &self.root, &path) {
                    return status(StatusCode::NOT_FOUND);
                }
                // Boxed: ServeDir's future is large, and inline it would size every request's
                // task (an HTTP/2 stream's, for as long as its response lasts).
                let Ok(response) = Box::pin(self.files.clone().call(request)).await;
                response.map(BodyExt::boxed_unsync)
            }
        };
        validated(response, if_none_match.as_ref())
    }
}

impl ErrorPage {
    /// `response` with this page as its body (a HEAD's is dropped by the HTTP layer).
    fn answer(&self, response: Response<Body>) -> Response<Body> {
        let (mut parts, _) = response.into_parts();
        parts
            .headers
            .insert(CONTENT_TYPE, self.content_type.clone());
        parts
            .headers
            .insert(CONTENT_LENGTH, HeaderValue::from(self.body.len()));
        let body = http_body_util::Full::new(self.body.clone())
            .map_err(|never| match never {})
            .boxed_unsync();
        Response::from_parts(parts, body)
    }
}

/// Points `request` at `path` (under `root`), its query kept; `false` if it cannot be.
fn served_as(request: &mut Request<Incoming>, root: &Path, path: &Path) -> bool {
    let Ok(relative) = path.strip_prefix(root) else {
        return false;
    };
    let mut target = String::new();
    for part in relative.components() {
        target.push('/');
        let bytes = part.as_os_str().as_encoded_bytes();
        target.extend(percent_encoding::percent_encode(
            bytes,
            percent_encoding::NON_ALPHANUMERIC,
        ));
    }
    if let Some(query) = request.uri().query() {
        target = format!("{target}?{query}");
    }
    match hyper::Uri::builder().path_and_query(target).build() {
        Ok(uri) => {
            *request.uri_mut() = uri;
            true
        }
        Err(_) => false,
    }
}

fn content_type(path: &Path) -> HeaderValue {
    let guessed = mime_guess::from_path(path).first_or_octet_stream();
    HeaderValue::from_str(guessed.as_ref())
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
}

/// The response for a cached file (a HEAD's body is dropped by the HTTP layer), or `304` when
/// `If-None-Match` names its tag.
fn cached(file: &Cached, if_none_match: Option<&HeaderValue>) -> Response<Body> {
    let body = http_body_util::Full::new(file.content.clone())
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.headers_mut() = file.headers.clone();
    not_modified(StatusCode::OK, response.headers(), if_none_match).unwrap_or(response)
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
    *response.headers_mut() = file_head(content_type, metadata.len(), metadata.modified().ok());
    Some(response)
}

/// A whole file's response headers: type, length, `Accept-Ranges`, date and weak `ETag` (a
/// cached file keeps them).
fn file_head(content_type: HeaderValue, len: u64, modified: Option<SystemTime>) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(5);
    headers.insert(CONTENT_TYPE, content_type);
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let date = modified.and_then(|m| HeaderValue::from_str(&httpdate::fmt_http_date(m)).ok());
    if let Some(date) = date {
        let etag = weak_etag(len, &date);
        headers.insert(LAST_MODIFIED, date);
        if let Some(etag) = etag {
            headers.insert(ETAG, etag);
        }
    }
    headers
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

fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

fn status(code: StatusCode) -> Response<Body> {
    let mut response = Response::new(empty());
    *response.status_mut() = code;
    response
}
