//! Weak `ETag`s and `If-None-Match` (RFC 9110 §8.8.3, §13.1.2): a file's tag comes from its size
//! and modification date, made once for a cached file and per response for the others.

use hyper::header::{HeaderMap, HeaderValue, CONTENT_LENGTH, CONTENT_RANGE, ETAG, LAST_MODIFIED};
use hyper::{Response, StatusCode};

use super::Body;

/// A weak validator from a file's size and its `Last-Modified` date.
pub(super) fn weak_etag(
    size: impl std::fmt::Display,
    modified: &HeaderValue,
) -> Option<HeaderValue> {
    // FNV-1a of the date keeps the tag short and free of the spaces a tag may not contain.
    let hash = modified
        .as_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
        });
    HeaderValue::from_str(&format!("W/\"{size}-{hash:016x}\"")).ok()
}

/// Adds the weak `ETag` where the response has none (ServeDir's: from the size and date it
/// reported; a whole file's head has its own), and answers `304` when `If-None-Match` has it.
pub(super) fn validated(
    response: Response<Body>,
    if_none_match: Option<&HeaderValue>,
) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    if !parts.headers.contains_key(ETAG) {
        if let Some(etag) = etag(&parts.headers) {
            parts.headers.insert(ETAG, etag);
        }
    }
    not_modified(parts.status, &parts.headers, if_none_match)
        .unwrap_or_else(|| Response::from_parts(parts, body))
}

fn etag(headers: &HeaderMap) -> Option<HeaderValue> {
    let modified = headers.get(LAST_MODIFIED)?;
    match headers.get(CONTENT_RANGE) {
        // "bytes 0-99/1234": the whole file's size is after the slash.
        Some(range) => weak_etag(range.to_str().ok()?.rsplit('/').next()?, modified),
        None => weak_etag(headers.get(CONTENT_LENGTH)?.to_str().ok()?, modified),
    }
}

/// `304 Not Modified`, with the tag and the date, when a `200` carries an `ETag` that
/// `If-None-Match` names.
pub(super) fn not_modified(
    status: StatusCode,
    headers: &HeaderMap,
    if_none_match: Option<&HeaderValue>,
) -> Option<Response<Body>> {
    let etag = headers.get(ETAG)?;
    if status != StatusCode::OK || !matches(if_none_match?, etag) {
        return None;
    }
    let mut answer = super::status(StatusCode::NOT_MODIFIED);
    answer.headers_mut().insert(ETAG, etag.clone());
    if let Some(modified) = headers.get(LAST_MODIFIED) {
        answer.headers_mut().insert(LAST_MODIFIED, modified.clone());
    }
    Some(answer)
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

    #[test]
    fn a_tag_names_the_size_and_changes_with_the_date() {
        let date = HeaderValue::from_static("Wed, 02 Dec 2026 10:00:00 GMT");
        let tag = weak_etag(1234, &date).unwrap();
        assert!(tag.to_str().unwrap().starts_with("W/\"1234-"), "{tag:?}");
        let later = HeaderValue::from_static("Wed, 02 Dec 2026 10:00:01 GMT");
        assert_ne!(weak_etag(1234, &later), Some(tag.clone()));
        // ServeDir's headers give the same tag: from Content-Length, or a range's total.
        let mut headers = HeaderMap::new();
        headers.insert(LAST_MODIFIED, date.clone());
        headers.insert(CONTENT_LENGTH, HeaderValue::from(1234));
        assert_eq!(etag(&headers), Some(tag.clone()));
        headers.insert(CONTENT_RANGE, HeaderValue::from_static("bytes 0-9/1234"));
        assert_eq!(etag(&headers), Some(tag));
    }
}
