//! `precompressed = true`: a file's `.br` or `.gz` sibling, made ahead of time, for a client
//! whose `Accept-Encoding` takes it (nginx's `gzip_static`), found by the same rules as any file.

use std::path::Path;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, VARY};
use hyper::{Request, Response};

use super::target::{self, Target};
use super::{content_type, whole_file, Body, Site};

impl Site {
    /// The `.br` or `.gz` sibling of `path` (the file `decoded` names) the client takes, by
    /// the same rules as any file, as `path`'s content in that encoding.
    pub(super) fn precompressed(
        &self,
        request: &Request<Incoming>,
        decoded: &str,
        path: &Path,
        encodings: Encodings,
    ) -> Option<Response<Body>> {
        let named = if decoded.ends_with('/') {
            // A folder's index file: its sibling is found by the file's own name.
            let relative = path.strip_prefix(&self.root).ok()?;
            format!("/{}", relative.to_str()?)
        } else {
            decoded.to_owned()
        };
        let candidates = [(encodings.br, "br", ".br"), (encodings.gzip, "gzip", ".gz")];
        for (_, coding, extension) in candidates.into_iter().filter(|(taken, ..)| *taken) {
            let sibling = format!("{named}{extension}");
            let Target::File {
                path: file,
                metadata,
            } = target::resolve(&self.root, &sibling, &self.rules)
            else {
                continue;
            };
            let mut response = whole_file(request, true, file, &metadata)?;
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, content_type(path));
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static(coding));
            headers.insert(VARY, HeaderValue::from_static("accept-encoding"));
            return Some(response);
        }
        None
    }
}

/// The content codings a request takes (`Accept-Encoding`, `q=0` meaning no).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Encodings {
    br: bool,
    gzip: bool,
}

impl Encodings {
    pub(super) fn any(self) -> bool {
        self.br || self.gzip
    }
}

pub(super) fn accepted(request: &Request<Incoming>) -> Encodings {
    let mut taken = Encodings::default();
    for value in request.headers().get_all(ACCEPT_ENCODING) {
        for item in value.to_str().unwrap_or_default().split(',') {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or_default().to_ascii_lowercase();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q <= 0.0))
            });
            match coding.as_str() {
                "br" => taken.br = !refused,
                "gzip" | "x-gzip" => taken.gzip = !refused,
                _ => {}
            }
        }
    }
    taken
}
