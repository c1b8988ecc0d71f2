//! A folder's listing (`listing = true`, nginx's `autoindex`): its names sorted, folders with a
//! trailing `/`, each escaped for HTML and percent-encoded in its link; dotfiles left out unless
//! the site serves them. At most [`MAX_LISTED`] names are read (a folder of a million files costs
//! one bounded page); the folder is read on the blocking pool.

use std::fmt::Write as _;
use std::path::PathBuf;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use percent_encoding::{percent_encode, AsciiSet, CONTROLS};

use super::super::status::escape;
use super::target::hidden;
use super::Body;

/// The most names a listing shows.
pub const MAX_LISTED: usize = 10_000;

/// What is escaped in a link to a name: all but unreserved characters.
const LINK: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'\'')
    .add(b'+')
    .add(b'/')
    .add(b':')
    .add(b';')
    .add(b'<')
    .add(b'=')
    .add(b'>')
    .add(b'?')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// The listing of `folder`, shown as `shown` (the path the client asked for).
pub(super) async fn listing(folder: PathBuf, shown: String, dotfiles: bool) -> Response<Body> {
    let read = tokio::task::spawn_blocking(move || names(&folder, dotfiles)).await;
    let Ok(Some((names, more))) = read else {
        let mut response = Response::new(super::empty());
        *response.status_mut() = StatusCode::NOT_FOUND;
        return response;
    };
    let page = page(&shown, &names, more);
    let mut response = Response::new(
        Full::new(Bytes::from(page))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// A name in a folder, and whether it is a folder.
type Entry = (Vec<u8>, bool);

/// The folder's names, sorted, and whether more were left out.
fn names(folder: &std::path::Path, dotfiles: bool) -> Option<(Vec<Entry>, bool)> {
    let mut names = Vec::new();
    let mut more = false;
    for entry in std::fs::read_dir(folder).ok()?.flatten() {
        let name = entry.file_name().into_encoded_bytes();
        if !dotfiles && hidden(&name) {
            continue;
        }
        if names.len() == MAX_LISTED {
            more = true;
            break;
        }
        // A link to a folder is listed as a folder; whether it may be followed is decided
        // when it is asked for.
        let folder = std::fs::metadata(entry.path()).is_ok_and(|m| m.is_dir());
        names.push((name, folder));
    }
    names.sort();
    Some((names, more))
}

fn page(shown: &str, names: &[Entry], more: bool) -> String {
    let title = escape(shown);
    let mut page = format!(
        "<!doctype html>\n<meta charset=\"utf-8\">\n<title>Index of {title}</title>\n\
         <h1>Index of {title}</h1>\n<ul>\n<li><a href=\"../\">../</a></li>\n"
    );
    for (name, folder) in names {
        let link = percent_encode(name, LINK);
        let slash = if *folder { "/" } else { "" };
        let shown = escape(&String::from_utf8_lossy(name));
        let _ = writeln!(
            page,
            "<li><a href=\"./{link}{slash}\">{shown}{slash}</a></li>"
        );
    }
    page.push_str("</ul>\n");
    if more {
        let _ = writeln!(page, "<p>Only the first {MAX_LISTED} names are listed.</p>");
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_of_more_names_costs_one_bounded_page() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for i in 0..MAX_LISTED + 5 {
            std::fs::write(dir.path().join(format!("f{i}")), "").unwrap_or_else(|e| panic!("{e}"));
        }
        let (names, more) = names(dir.path(), false).unwrap_or_else(|| panic!("readable"));
        assert_eq!((names.len(), more), (MAX_LISTED, true));
        let page = page("/big/", &names, more);
        assert!(page.len() < MAX_LISTED * 80, "{} bytes", page.len());
    }

    #[test]
    fn names_are_escaped_and_links_encoded() {
        let names = vec![
            (b"<script>alert(1)</script>".to_vec(), false),
            (b"a b&c".to_vec(), true),
            (b"javascript:x".to_vec(), false),
        ];
        let page = page("/files/<x>/", &names, true);
        assert!(page.contains("<title>Index of /files/&lt;x&gt;/</title>"));
        assert!(page.contains(
            "<a href=\"./%3Cscript%3Ealert(1)%3C%2Fscript%3E\">&lt;script&gt;alert(1)&lt;/script&gt;</a>"
        ));
        assert!(page.contains("<a href=\"./a%20b%26c/\">a b&amp;c/</a>"));
        assert!(
            page.contains("<a href=\"./javascript%3Ax\">"),
            "never a scheme"
        );
        assert!(!page.contains("<script>"));
        assert!(page.contains("Only the first"));
    }
}
