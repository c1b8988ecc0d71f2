//! `[http_redirect]`: a plain-HTTP port (usually 80) that sends every request to the same host
//! and path over https with `308`, as nginx's `return 301 https://$host$request_uri` and Caddy's
//! automatic redirects do. It also answers ACME HTTP-01 validations, so with `[acme]` it is the
//! HTTP-01 listener (`[acme] http01_listen` is then not set as well).

use std::net::SocketAddr;

use serde::Deserialize;

use super::acme::AcmeOptions;
use super::error::Problems;
use super::value::{deserialize, listen_address};

/// `[http_redirect]`, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpRedirect {
    /// The plain-HTTP address.
    pub listen: SocketAddr,
    /// The https port redirects name; `None`: the default, 443.
    pub https_port: Option<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpRedirectFile {
    listen: String,
    https_port: Option<u16>,
}

/// `[http_redirect]`; with `[acme]`, it becomes the HTTP-01 listener.
pub(super) fn validate_http_redirect(
    value: toml::Value,
    acme: Option<&mut AcmeOptions>,
    problems: &mut Problems,
) -> Option<HttpRedirect> {
    let toml::Value::Table(table) = value else {
        problems.global("http_redirect", "must be a table: write [http_redirect]");
        return None;
    };
    let raw: HttpRedirectFile = deserialize(table, &mut |key, message| {
        let at = if key.is_empty() {
            "http_redirect".to_owned()
        } else {
            format!("http_redirect.{key}")
        };
        problems.global(&at, message)
    })?;
    let listen = match listen_address(&raw.listen) {
        Ok(listen) => listen,
        Err(message) => {
            problems.global("http_redirect.listen", message);
            return None;
        }
    };
    if raw.https_port == Some(0) {
        problems.global("http_redirect.https_port", "must be a port, 1 to 65535");
        return None;
    }
    if let Some(acme) = acme {
        if acme.http01_listen.is_some() {
            problems.global(
                "acme.http01_listen",
                "[http_redirect] answers HTTP-01 validations already: remove http01_listen",
            );
            return None;
        }
        acme.http01_listen = Some(listen);
    }
    Some(HttpRedirect {
        listen,
        https_port: raw.https_port,
    })
}
