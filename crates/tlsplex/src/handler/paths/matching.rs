//! Which path rule a request takes: its path normalised once (percent-decoded, dot segments
//! resolved, repeated slashes merged, as nginx matches `location`s), then the rules tried in
//! order, whole segments at a time. The request goes on with the normalised path, so a handler
//! or a backend can never read it as one another rule would have taken.

use std::fmt;

use percent_encoding::{percent_decode, percent_encode, AsciiSet, CONTROLS};

/// Which paths a rule takes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathMatch {
    /// This path only.
    Exact(String),
    /// This path and everything under it, segment by segment: `/api` (or `/api/`) takes `/api`,
    /// `/api/` and `/api/users`, never `/apix`.
    Prefix(String),
}

/// Why a path cannot be a rule's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathMatchError {
    /// It does not start with `/`.
    #[error("{0:?} does not start with /")]
    NotAbsolute(String),
    /// A request path never looks like this once normalised (`//`, `.`, `..`, `%`, `?`, `#`,
    /// control characters or spaces): the rule could not be reached.
    #[error("{0:?} is not a normalised path: write it without //, . or .. segments, %-escapes, ?, # or spaces")]
    NotNormalised(String),
}

impl PathMatch {
    /// Rules for exactly `path`.
    pub fn exact(path: &str) -> Result<Self, PathMatchError> {
        checked(path).map(|p| Self::Exact(p.to_owned()))
    }

    /// Rules for `prefix` and what is under it; a trailing `/` changes nothing.
    pub fn prefix(prefix: &str) -> Result<Self, PathMatchError> {
        let trimmed = prefix.trim_end_matches('/');
        checked(prefix).map(|_| Self::Prefix(trimmed.to_owned()))
    }

    /// Whether it takes the normalised `path`.
    pub(crate) fn takes(&self, path: &str) -> bool {
        match self {
            Self::Exact(exact) => path == exact,
            Self::Prefix(prefix) => under(path, prefix),
        }
    }

    /// Whether every path `other` takes is taken by this one (which, tried first, leaves it
    /// nothing).
    pub fn covers(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Prefix(prefix), Self::Prefix(other) | Self::Exact(other)) => {
                under(other, prefix)
            }
            (Self::Exact(exact), Self::Exact(other)) => exact == other,
            (Self::Exact(_), Self::Prefix(_)) => false,
        }
    }

    /// `path` with this rule's prefix taken off (`/api/users` → `/users`; `/api` → `/`).
    pub(crate) fn strip<'p>(&self, path: &'p str) -> &'p str {
        let rest = match self {
            Self::Prefix(prefix) => path.get(prefix.len()..).unwrap_or(path),
            Self::Exact(_) => path,
        };
        if rest.is_empty() {
            "/"
        } else {
            rest
        }
    }

    /// The prefix it strips, empty for an exact rule.
    pub(crate) fn prefix_text(&self) -> &str {
        match self {
            Self::Prefix(prefix) => prefix,
            Self::Exact(_) => "",
        }
    }
}

impl fmt::Display for PathMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(path) => write!(f, "exact {path}"),
            Self::Prefix(prefix) => write!(f, "prefix {prefix}/"),
        }
    }
}

/// Whether `path` is `prefix` or under it (`prefix` without its trailing slash; empty: the root,
/// which takes everything).
fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

fn checked(path: &str) -> Result<&str, PathMatchError> {
    if !path.starts_with('/') {
        return Err(PathMatchError::NotAbsolute(path.to_owned()));
    }
    let plain = path
        .bytes()
        .all(|b| b.is_ascii_graphic() && !matches!(b, b'%' | b'?' | b'#'));
    let segments_ok = path
        .trim_end_matches('/')
        .split('/')
        .skip(1)
        .all(|segment| !matches!(segment, "" | "." | ".."));
    if plain && segments_ok {
        Ok(path)
    } else {
        Err(PathMatchError::NotNormalised(path.to_owned()))
    }
}

/// Why a request path is refused before any rule sees it (`400`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadPath {
    /// A `%` not followed by two hex digits.
    Escape,
    /// `%2F` or `%5C`: a slash the rules would not see as one (Apache's `AllowEncodedSlashes
    /// Off`), or a backslash some backends take for one.
    EncodedSlash,
    /// `%00`.
    Nul,
}

impl BadPath {
    pub(crate) fn message(self) -> &'static str {
        match self {
            Self::Escape => "400 Bad Request: a % in the path is not followed by two hex digits\n",
            Self::EncodedSlash => "400 Bad Request: the path holds an encoded slash (%2F or %5C)\n",
            Self::Nul => "400 Bad Request: the path holds an encoded NUL\n",
        }
    }
}

/// What is escaped when the normalised path is written back: what may not stand in a path
/// segment (RFC 3986 `pchar`), and `%` itself.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// The normalised form of a request path that starts with `/`: segments decoded, `.` and
/// empty ones dropped, `..` taking the one before (never above the root), a trailing slash
/// kept; written back with only what must be escaped escaped.
pub(crate) fn normalise(path: &str) -> Result<String, BadPath> {
    let bytes = path.as_bytes();
    for (i, _) in path.match_indices('%') {
        let escape = bytes.get(i + 1..i + 3).ok_or(BadPath::Escape)?;
        if !escape.iter().all(u8::is_ascii_hexdigit) {
            return Err(BadPath::Escape);
        }
        match escape.to_ascii_lowercase().as_slice() {
            b"2f" | b"5c" => return Err(BadPath::EncodedSlash),
            b"00" => return Err(BadPath::Nul),
            _ => {}
        }
    }
    let mut segments: Vec<String> = Vec::new();
    let mut trailing = false;
    for raw in path.split('/').skip(1) {
        // Bytes, not text: a path in another encoding than UTF-8 passes unchanged.
        let segment: Vec<u8> = percent_decode(raw.as_bytes()).collect();
        trailing = matches!(segment.as_slice(), b"" | b"." | b"..");
        match segment.as_slice() {
            b"" | b"." => {}
            b".." => {
                segments.pop();
            }
            _ => segments.push(percent_encode(&segment, SEGMENT).to_string()),
        }
    }
    let mut normal = String::with_capacity(path.len());
    for segment in &segments {
        normal.push('/');
        normal.push_str(segment);
    }
    if trailing || normal.is_empty() {
        normal.push('/');
    }
    Ok(normal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(text: &str) -> PathMatch {
        PathMatch::prefix(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn exact(text: &str) -> PathMatch {
        PathMatch::exact(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn normal(path: &str) -> String {
        normalise(path).unwrap_or_else(|e| panic!("{path}: {e:?}"))
    }

    #[test]
    fn prefixes_take_whole_segments() {
        let api = prefix("/api/");
        assert_eq!(api, prefix("/api"));
        for path in ["/api", "/api/", "/api/users/7"] {
            assert!(api.takes(path), "{path}");
        }
        for path in ["/apix", "/ap", "/", "/v1/api/"] {
            assert!(!api.takes(path), "{path}");
        }
        assert!(prefix("/").takes("/anything/at/all"));
        assert!(exact("/healthz").takes("/healthz"));
        assert!(!exact("/healthz").takes("/healthz/"));
    }

    #[test]
    fn stripping_leaves_an_absolute_path() {
        let api = prefix("/api/");
        assert_eq!(api.strip("/api/users"), "/users");
        assert_eq!(api.strip("/api/"), "/");
        assert_eq!(api.strip("/api"), "/");
        assert_eq!(prefix("/").strip("/x"), "/x");
    }

    #[test]
    fn earlier_rules_cover_later_ones() {
        assert!(prefix("/api/").covers(&prefix("/api/v2/")));
        assert!(prefix("/api/").covers(&exact("/api/health")));
        assert!(prefix("/").covers(&exact("/x")));
        assert!(exact("/a").covers(&exact("/a")));
        assert!(!prefix("/api/v2/").covers(&prefix("/api/")));
        assert!(!exact("/api").covers(&prefix("/api")));
        assert!(!prefix("/api").covers(&prefix("/apix")));
    }

    #[test]
    fn rule_paths_must_be_normalised() {
        for bad in ["api", ""] {
            assert!(matches!(
                PathMatch::prefix(bad),
                Err(PathMatchError::NotAbsolute(_))
            ));
        }
        for bad in ["//api", "/a/../b", "/./a", "/a%2fb", "/a b", "/a?x", "/a/#"] {
            assert!(
                matches!(
                    PathMatch::prefix(bad),
                    Err(PathMatchError::NotNormalised(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn request_paths_are_normalised_before_matching() {
        assert_eq!(normal("/"), "/");
        assert_eq!(normal("/a/b"), "/a/b");
        assert_eq!(normal("/a/b/"), "/a/b/");
        assert_eq!(normal("//api//users"), "/api/users");
        assert_eq!(normal("/api/../admin"), "/admin");
        assert_eq!(normal("/api/%2e%2e/admin"), "/admin");
        assert_eq!(normal("/api/%2E./admin"), "/admin");
        assert_eq!(normal("/../../etc/passwd"), "/etc/passwd");
        assert_eq!(normal("/a/./b/."), "/a/b/");
        assert_eq!(normal("/a/.."), "/");
        assert_eq!(normal("/%61pi/x"), "/api/x");
        assert_eq!(normal("/a%20b/%3F"), "/a%20b/%3F");
        assert_eq!(normal("/caf%C3%A9"), "/caf%C3%A9");
        assert_eq!(normal("/caf%E9"), "/caf%E9", "not UTF-8: unchanged");
        assert_eq!(normalise("/api%2f..%2fadmin"), Err(BadPath::EncodedSlash));
        assert_eq!(normalise("/a%5Cb"), Err(BadPath::EncodedSlash));
        assert_eq!(normalise("/a%00"), Err(BadPath::Nul));
        assert_eq!(normalise("/a%zz"), Err(BadPath::Escape));
        assert_eq!(normalise("/a%4"), Err(BadPath::Escape));
        // What a rule takes is what the normalised path names.
        assert!(!prefix("/api").takes(&normal("/api/%2e%2e/admin")));
        assert!(prefix("/admin").takes(&normal("/api/%2e%2e/admin")));
    }
}
