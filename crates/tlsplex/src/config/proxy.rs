//! `handler = { type = "proxy", … }`: the HTTP reverse proxy as a config file names it.

use std::path::Path;

use super::error::Problems;
use super::file::{PoolFile, ProxyFile};
use super::handler::{validate_backend_tls, validate_pool, HandlerAt};
use super::value::duration;
use super::HandlerSpec;
use crate::handler::{BackendProtocol, ProxyOptions, TrustedProxies};

/// The most idle backend connections a proxy may keep.
const MAX_KEEPALIVE: usize = 10_000;

pub(super) fn validate_proxy(
    raw: ProxyFile,
    at: &HandlerAt<'_>,
    base: &Path,
    problems: &mut Problems,
) -> Option<HandlerSpec> {
    let mut ok = true;
    let tls = raw
        .backend_tls
        .map(|tls| validate_backend_tls(tls, at, base, problems));
    let pool = PoolFile {
        backend: raw.backend,
        backends: raw.backends,
        balance: raw.balance,
        health_check: raw.health_check,
        connect_timeout: raw.connect_timeout,
        idle_timeout: raw.idle_timeout,
        proxy_protocol: None,
        backend_tls: None,
    };
    let upstream = validate_pool(pool, at, problems);
    let mut options = ProxyOptions::new(
        upstream
            .clone()
            .unwrap_or_else(|| crate::handler::ForwardOptions::pool(Vec::new())),
    );
    ok &= upstream.is_some();
    match tls {
        Some(Some(tls)) => options.upstream.backend_tls = Some(tls),
        Some(None) => ok = false,
        None => {}
    }
    options.backend_protocol = match raw.backend_protocol.as_deref() {
        None | Some("http/1.1") => BackendProtocol::Http1,
        Some("h2") => BackendProtocol::H2,
        Some(other) => {
            at.report(
                problems,
                "backend_protocol",
                format!("{other:?} is not a protocol: use \"http/1.1\" or \"h2\""),
            );
            ok = false;
            BackendProtocol::Http1
        }
    };
    let mut timeout = |field: &str, text: Option<&str>, slot: &mut std::time::Duration| {
        let key = format!("{}.{field}", at.key);
        match duration(text, true, &mut |m| problems.server(at.label, &key, m)) {
            Some(value) => *slot = value,
            None => ok &= text.is_none(),
        }
    };
    timeout(
        "response_header_timeout",
        raw.response_header_timeout.as_deref(),
        &mut options.response_header_timeout,
    );
    timeout(
        "keepalive_timeout",
        raw.keepalive_timeout.as_deref(),
        &mut options.keepalive_timeout,
    );
    if let Some(count) = raw.keepalive {
        if count > MAX_KEEPALIVE {
            at.report(
                problems,
                "keepalive",
                format!("at most {MAX_KEEPALIVE} idle connections"),
            );
            ok = false;
        }
        options.keepalive = count;
    }
    match raw.trusted_proxies.join(",").parse::<TrustedProxies>() {
        _ if raw.trusted_proxies.is_empty() => {}
        Ok(trusted) => options.trusted_proxies = trusted,
        Err(message) => {
            at.report(problems, "trusted_proxies", message);
            ok = false;
        }
    }
    options.forwarded = raw.forwarded;
    options.max_request_body = raw.max_request_body;
    options.client_cert = raw.client_cert;
    options.compress = raw.compress;
    match super::handler::client_access(raw.access, at, base, problems) {
        Some((access, users)) => (options.access, options.basic_auth) = (access, users),
        None => ok = false,
    }
    for (field, edits, slot) in [
        (
            "request_headers",
            raw.request_headers,
            &mut options.request_headers,
        ),
        (
            "response_headers",
            raw.response_headers,
            &mut options.response_headers,
        ),
    ] {
        match edits.map(|edits| super::handler::header_edits(edits, field, at, problems)) {
            Some(Some(edits)) => *slot = edits,
            Some(None) => ok = false,
            None => {}
        }
    }
    ok.then_some(HandlerSpec::Proxy(Box::new(options)))
}
