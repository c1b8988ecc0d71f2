//! What a proxied request and response carry: hop-by-hop headers removed (RFC 9110 §7.6.1),
//! and the forwarded headers set by tlsplex (never passed on from a client it does not trust).

use std::net::IpAddr;

use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, HOST, TE, UPGRADE};

use super::trust::TrustedProxies;

/// Headers that describe one connection, not the message: never forwarded (with `proxy-*` and
/// every name `Connection` lists).
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Headers only tlsplex may set toward a backend: a client's copies are dropped unless it comes
/// from a trusted proxy (the forwarded ones) or always (the client certificate, RFC 9440).
const FORWARDED: [&str; 4] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "forwarded",
];
const CLIENT_CERT: [&str; 2] = ["client-cert", "client-cert-chain"];

/// The client's certificate as RFC 9440 headers: `Client-Cert` (the leaf) and
/// `Client-Cert-Chain` (the rest, when the client sent any), each DER in base64 between colons.
pub(super) struct ClientCert {
    leaf: HeaderValue,
    chain: Option<HeaderValue>,
}

impl ClientCert {
    /// The headers for `certificates` (leaf first), if the client presented any.
    pub(super) fn of(
        certificates: Option<&[rustls::pki_types::CertificateDer<'_>]>,
    ) -> Option<Self> {
        use base64::Engine as _;
        let encode = |der: &[u8]| {
            let text = format!(
                ":{}:",
                base64::engine::general_purpose::STANDARD.encode(der)
            );
            HeaderValue::from_str(&text).ok()
        };
        let (leaf, rest) = certificates?.split_first()?;
        let chain: Vec<String> = rest
            .iter()
            .filter_map(|der| encode(der))
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        Some(Self {
            leaf: encode(leaf)?,
            chain: (!chain.is_empty())
                .then(|| HeaderValue::from_str(&chain.join(", ")).ok())
                .flatten(),
        })
    }

    pub(super) fn set(&self, headers: &mut HeaderMap) {
        headers.insert(HeaderName::from_static("client-cert"), self.leaf.clone());
        if let Some(chain) = &self.chain {
            headers.insert(HeaderName::from_static("client-cert-chain"), chain.clone());
        }
    }
}

/// Who sent a request, as the forwarded headers tell it.
pub(super) struct Origin<'a> {
    /// The address the connection came from.
    pub(super) client: IpAddr,
    /// The host the request named (its `Host`, or HTTP/2's `:authority`).
    pub(super) host: &'a str,
    /// Whether to add RFC 7239 `Forwarded` too.
    pub(super) rfc7239: bool,
}

/// Removes `headers`' hop-by-hop fields: the fixed ones, `proxy-*`, and those `Connection`
/// names. `keep_upgrade`: an upgrade is being forwarded, so `Upgrade` (and `Connection:
/// upgrade`) stay.
pub(super) fn remove_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<String> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    for name in named {
        if keep_upgrade && name == "upgrade" {
            continue;
        }
        headers.remove(name.as_str());
    }
    for name in HOP_BY_HOP {
        if keep_upgrade && (name == "upgrade" || name == "connection") {
            continue;
        }
        headers.remove(name);
    }
    let proxy: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for name in proxy {
        headers.remove(name);
    }
    if keep_upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// The request headers a backend gets: hop-by-hop fields gone (after `Connection` was read, so
/// naming `X-Forwarded-For` there removes only the client's copy), the client's forwarded
/// headers gone unless `trusted` vouches for its address, then tlsplex's own.
pub(super) fn to_backend(
    headers: &mut HeaderMap,
    origin: &Origin<'_>,
    trusted: &TrustedProxies,
    upgrade: bool,
) {
    // `TE: trailers` is the one TE an HTTP/1.1 backend needs no more than any other.
    remove_hop_by_hop(headers, upgrade);
    headers.remove(TE);
    for name in CLIENT_CERT {
        headers.remove(name);
    }
    let trust = trusted.contains(origin.client);
    if !trust {
        for name in FORWARDED {
            headers.remove(name);
        }
    }
    let client = origin.client.to_string();
    let chain = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ");
    let forwarded_for = if chain.is_empty() {
        client.clone()
    } else {
        format!("{chain}, {client}")
    };
    set(headers, "x-forwarded-for", &forwarded_for);
    if !trust || !headers.contains_key("x-forwarded-proto") {
        headers.insert(
            HeaderName::from_static("x-forwarded-proto"),
            HeaderValue::from_static("https"),
        );
    }
    if !trust || !headers.contains_key("x-forwarded-host") {
        set(headers, "x-forwarded-host", origin.host);
    }
    if origin.rfc7239 {
        // RFC 7239 §6: an IPv6 address is quoted and bracketed.
        let node = match origin.client {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("\"[{v6}]\""),
        };
        let host = origin.host.replace('"', "");
        let element = format!("for={node};proto=https;host=\"{host}\"");
        let previous = headers
            .get_all("forwarded")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(", ");
        let value = if previous.is_empty() {
            element
        } else {
            format!("{previous}, {element}")
        };
        set(headers, "forwarded", &value);
    }
    if !headers.contains_key(HOST) {
        set(headers, "host", origin.host);
    }
}

/// `name: value`, replacing; a value that is not a valid header is left out (it came from a
/// header already, so it is).
fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), value);
    }
}

/// Makes an RFC 8441 WebSocket request (HTTP/2 extended CONNECT) the HTTP/1.1 Upgrade an
/// HTTP/1.1 backend expects: `Upgrade`, `Connection` and a fresh `Sec-WebSocket-Key` (HTTP/2
/// clients send none); `Sec-WebSocket-Version`, `-Protocol` and `-Extensions` stay as sent.
pub(super) fn websocket_upgrade(headers: &mut HeaderMap) {
    use base64::Engine as _;
    let mut nonce = [0u8; 16];
    let _ = aws_lc_rs::rand::fill(&mut nonce);
    let key = base64::engine::general_purpose::STANDARD.encode(nonce);
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    set(headers, "sec-websocket-key", &key);
    if !headers.contains_key("sec-websocket-version") {
        headers.insert(
            HeaderName::from_static("sec-websocket-version"),
            HeaderValue::from_static("13"),
        );
    }
}

/// Whether a request asks for a protocol upgrade (HTTP/1.1 `Connection: upgrade` with
/// `Upgrade`), which the proxy tunnels after the backend's `101`.
pub(super) fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(UPGRADE)
        && headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    fn origin(host: &str) -> Origin<'_> {
        Origin {
            client: "192.0.2.7".parse().unwrap(),
            host,
            rfc7239: false,
        }
    }

    #[test]
    fn an_untrusted_clients_forwarded_headers_are_replaced() {
        let mut headers = map(&[
            ("host", "app.test"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-proto", "http"),
            ("x-forwarded-host", "evil.test"),
            ("forwarded", "for=10.0.0.1"),
            ("client-cert", ":abc:"),
            ("connection", "keep-alive, x-forwarded-for, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic x"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("accept", "*/*"),
        ]);
        to_backend(
            &mut headers,
            &origin("app.test"),
            &TrustedProxies::default(),
            false,
        );
        assert_eq!(headers["x-forwarded-for"], "192.0.2.7");
        assert_eq!(headers["x-forwarded-proto"], "https");
        assert_eq!(headers["x-forwarded-host"], "app.test");
        assert_eq!(headers["host"], "app.test");
        assert_eq!(headers["accept"], "*/*");
        for gone in [
            "forwarded",
            "client-cert",
            "connection",
            "x-secret",
            "keep-alive",
            "proxy-authorization",
            "te",
            "upgrade",
        ] {
            assert!(!headers.contains_key(gone), "{gone} is still there");
        }
    }

    #[test]
    fn a_trusted_proxys_chain_is_extended() {
        let trusted: TrustedProxies = "192.0.2.0/24".parse().unwrap();
        let mut headers = map(&[
            ("x-forwarded-for", "203.0.113.9, 198.51.100.1"),
            ("x-forwarded-proto", "http"),
            ("forwarded", "for=203.0.113.9"),
        ]);
        let mut from = origin("app.test");
        from.rfc7239 = true;
        to_backend(&mut headers, &from, &trusted, false);
        assert_eq!(
            headers["x-forwarded-for"],
            "203.0.113.9, 198.51.100.1, 192.0.2.7"
        );
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(
            headers["forwarded"],
            "for=203.0.113.9, for=192.0.2.7;proto=https;host=\"app.test\""
        );
        assert_eq!(headers["host"], "app.test", "set from the authority");
    }

    #[test]
    fn an_upgrade_keeps_its_headers() {
        let mut headers = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(wants_upgrade(&headers));
        to_backend(&mut headers, &origin("a"), &TrustedProxies::default(), true);
        assert_eq!(headers["upgrade"], "websocket");
        assert_eq!(headers["connection"], "upgrade");
        assert!(!wants_upgrade(&map(&[("upgrade", "websocket")])));
    }
}
