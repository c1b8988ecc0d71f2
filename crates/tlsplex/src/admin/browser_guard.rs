//! What keeps a web page in the operator's browser from using the admin endpoint.
//!
//! - **DNS rebinding**: a page on `attacker.example` whose name is made to resolve to 127.0.0.1
//!   is same-origin with the admin endpoint as far as the browser knows, so it could read the
//!   API. Its requests carry `Host: attacker.example`: only IP literals, `localhost` and the
//!   configured `allowed_hosts` are answered (421 otherwise).
//! - **Cross-site requests**: a page may send "simple" requests anywhere (a `no-cors` POST with
//!   `text/plain`, a form). A request whose `Origin` is not the admin's own, or whose
//!   `Sec-Fetch-Site` says `cross-site` or `same-site`, is refused (403), and every mutation must
//!   say `Content-Type: application/json` or `application/toml`, which a browser sends cross-origin
//!   only after a CORS preflight that is never granted (415 otherwise).

use std::net::IpAddr;

use hyper::header::{HeaderMap, CONTENT_TYPE, HOST, ORIGIN};
use hyper::{Method, StatusCode};

/// Why a request was refused, with the status to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// The `Host` is not one the admin endpoint answers to.
    UnknownHost,
    /// The request came from another origin.
    CrossOrigin,
    /// A mutation without a JSON or TOML content type.
    SimpleContentType,
}

impl Refusal {
    pub(super) fn status(self) -> StatusCode {
        match self {
            Self::UnknownHost => StatusCode::MISDIRECTED_REQUEST,
            Self::CrossOrigin => StatusCode::FORBIDDEN,
            Self::SimpleContentType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }

    pub(super) fn message(self) -> &'static str {
        match self {
            Self::UnknownHost => {
                "unknown Host: use an IP address, localhost, or a name in [admin] allowed_hosts\n"
            }
            Self::CrossOrigin => "requests from other origins are refused\n",
            Self::SimpleContentType => "send Content-Type: application/json or application/toml\n",
        }
    }
}

/// Checks one request; `allowed_hosts` are the extra names (lower-case) it may be addressed by.
pub(super) fn check(
    method: &Method,
    headers: &HeaderMap,
    allowed_hosts: &[String],
) -> Result<(), Refusal> {
    let name = crate::host::single_host(headers).ok_or(Refusal::UnknownHost)?;
    if !known_host(name, allowed_hosts) {
        return Err(Refusal::UnknownHost);
    }
    // One Host header, well formed (checked above).
    let host = headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if let Some(origin) = headers.get(ORIGIN) {
        let same = origin
            .to_str()
            .ok()
            .and_then(|o| o.strip_prefix("http://"))
            .is_some_and(|o| o.eq_ignore_ascii_case(host));
        if !same {
            return Err(Refusal::CrossOrigin);
        }
    }
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if matches!(fetch_site, Some("cross-site" | "same-site")) {
        return Err(Refusal::CrossOrigin);
    }
    let mutation = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if mutation {
        let content_type = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        if !matches!(
            content_type.as_deref(),
            Some("application/json" | "application/toml")
        ) {
            return Err(Refusal::SimpleContentType);
        }
    }
    Ok(())
}

fn known_host(name: &str, allowed_hosts: &[String]) -> bool {
    name.parse::<IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || allowed_hosts.iter().any(|h| h.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn hosts_origins_and_content_types() {
        let allowed = vec!["admin.internal".to_owned()];
        let get =
            |pairs: &[(&'static str, &'static str)]| check(&Method::GET, &headers(pairs), &allowed);
        assert_eq!(get(&[("host", "127.0.0.1:9440")]), Ok(()));
        assert_eq!(get(&[("host", "[::1]:9440")]), Ok(()));
        assert_eq!(get(&[("host", "localhost:9440")]), Ok(()));
        assert_eq!(get(&[("host", "admin.internal:9440")]), Ok(()));
        assert_eq!(
            get(&[("host", "rebound.example:9440")]),
            Err(Refusal::UnknownHost)
        );
        assert_eq!(get(&[]), Err(Refusal::UnknownHost));
        // Seen accepted by the attack run: text after an IPv6 literal, userinfo, two Hosts.
        assert_eq!(get(&[("host", "[::1]evil")]), Err(Refusal::UnknownHost));
        assert_eq!(
            get(&[("host", "localhost:31090@evil.example")]),
            Err(Refusal::UnknownHost)
        );
        assert_eq!(
            get(&[("host", "localhost"), ("host", "evil.example")]),
            Err(Refusal::UnknownHost)
        );
        let same_origin = [
            ("host", "127.0.0.1:9440"),
            ("origin", "http://127.0.0.1:9440"),
        ];
        assert_eq!(get(&same_origin), Ok(()));
        let other = [
            ("host", "127.0.0.1:9440"),
            ("origin", "http://127.0.0.1:8111"),
        ];
        assert_eq!(get(&other), Err(Refusal::CrossOrigin));
        let cross = [("host", "127.0.0.1:9440"), ("sec-fetch-site", "cross-site")];
        assert_eq!(get(&cross), Err(Refusal::CrossOrigin));

        let post = |pairs: &[(&'static str, &'static str)]| {
            check(&Method::POST, &headers(pairs), &allowed)
        };
        let plain = [("host", "127.0.0.1:9440"), ("content-type", "text/plain")];
        assert_eq!(post(&plain), Err(Refusal::SimpleContentType));
        assert_eq!(
            post(&[("host", "127.0.0.1:9440")]),
            Err(Refusal::SimpleContentType)
        );
        let json = [
            ("host", "127.0.0.1:9440"),
            ("content-type", "application/json; charset=utf-8"),
        ];
        assert_eq!(post(&json), Ok(()));
    }
}
