//! The host an HTTP request names: one place that reads it, for every listener that looks at it
//! (the HTTP handlers' SNI check, the admin endpoint's rebinding guard, the HTTP-01 redirect).
//!
//! RFC 9110 §7.2: `Host = uri-host [ ":" port ]`. Anything else (userinfo such as
//! `localhost:31090@evil.example`, text after an IPv6 literal such as `[::1]evil`, an empty or
//! non-numeric port, two `Host` headers) names no host, and the caller refuses the request.

use std::net::{IpAddr, Ipv6Addr};

use hyper::header::{HeaderMap, HOST};

/// The host of a request: HTTP/2's `:authority` (in the URI) or else the single `Host` header.
/// `None` when there is none, more than one `Host`, or it does not parse.
pub(crate) fn request_host<'r>(uri: &'r hyper::Uri, headers: &'r HeaderMap) -> Option<&'r str> {
    if let Some(authority) = uri.authority() {
        return host_of(authority.as_str());
    }
    single_host(headers)
}

/// The host of the one `Host` header, without its port; `None` if it is missing, repeated or
/// malformed.
pub(crate) fn single_host(headers: &HeaderMap) -> Option<&str> {
    let mut hosts = headers.get_all(HOST).iter();
    let value = hosts.next()?;
    if hosts.next().is_some() {
        return None;
    }
    host_of(value.to_str().ok()?)
}

/// The host part of `uri-host [":" port]` (`[::1]:9440` → `::1`, `Example.com` → `Example.com`).
pub(crate) fn host_of(value: &str) -> Option<&str> {
    let (host, port) = match value.strip_prefix('[') {
        Some(rest) => {
            let (inside, after) = rest.split_once(']')?;
            inside.parse::<Ipv6Addr>().ok()?;
            let port = match after {
                "" => None,
                after => Some(after.strip_prefix(':')?),
            };
            (inside, port)
        }
        None => {
            let (host, port) = match value.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (value, None),
            };
            let name_chars = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
            if host.is_empty() || !host.bytes().all(name_chars) {
                return None;
            }
            (host, port)
        }
    };
    if let Some(port) = port {
        if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    }
    Some(host)
}

/// Whether `host` names what the client asked for in its TLS handshake: the SNI, compared
/// without case (a trailing dot aside), or, when it sent none (it connected by address), an IP
/// address.
pub(crate) fn matches_sni(host: &str, sni: Option<&str>) -> bool {
    match sni {
        Some(sni) => host
            .trim_end_matches('.')
            .eq_ignore_ascii_case(sni.trim_end_matches('.')),
        None => host.parse::<IpAddr>().is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn hosts_that_parse_and_hosts_that_do_not() {
        assert_eq!(host_of("localhost:31090"), Some("localhost"));
        assert_eq!(host_of("Example.COM"), Some("Example.COM"));
        assert_eq!(host_of("127.0.0.1"), Some("127.0.0.1"));
        assert_eq!(host_of("[::1]:9440"), Some("::1"));
        assert_eq!(host_of("[::1]"), Some("::1"));
        for bad in [
            "[::1]evil",
            "[::1]:",
            "[evil]:80",
            "localhost:31090@evil.example",
            "user@localhost",
            "localhost:",
            "localhost:80:80",
            "localhost:8o",
            "",
            ":80",
            "bad host",
            "a\\b",
        ] {
            assert_eq!(host_of(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn one_host_header_only() {
        let mut headers = HeaderMap::new();
        assert_eq!(single_host(&headers), None);
        headers.append(HOST, HeaderValue::from_static("a.test:443"));
        assert_eq!(single_host(&headers), Some("a.test"));
        headers.append(HOST, HeaderValue::from_static("b.test"));
        assert_eq!(single_host(&headers), None);
    }

    #[test]
    fn sni_comparison() {
        assert!(matches_sni("App.Test", Some("app.test")));
        assert!(matches_sni("app.test.", Some("app.test")));
        assert!(!matches_sni("other.test", Some("app.test")));
        assert!(matches_sni("127.0.0.1", None));
        assert!(!matches_sni("app.test", None));
    }
}
