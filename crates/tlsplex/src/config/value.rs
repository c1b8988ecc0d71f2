//! TOML plumbing and value parsers shared by the sections: the document, one-line messages,
//! `[[server]]` tables and their labels, per-table deserialising with the key a problem names,
//! durations.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::error::{ConfigError, Problems};

/// Parses a whole config file as TOML; a syntax error is one problem naming its line.
pub(super) fn document(text: &str, file: &Path) -> Result<toml::Table, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|span| format!("line {}: ", text[..span.start].matches('\n').count() + 1))
            .unwrap_or_default();
        ConfigError::whole_file(
            file,
            format!("{line}not valid TOML: {}", one_line(e.message())),
        )
    })
}

/// A `[[server]]` table's `name`, when it is a string.
pub(super) fn server_name(table: &toml::Table) -> Option<&str> {
    table.get("name").and_then(toml::Value::as_str)
}

/// The name problems of the `index`th `[[server]]` table (called `name`) are reported under:
/// its `name` when valid, else its position (`#1`, `#2`, …).
pub(super) fn server_label(name: Option<&str>, index: usize) -> String {
    match name {
        Some(name) if super::server::valid_name(name) => name.to_owned(),
        _ => format!("#{}", index + 1),
    }
}

/// Folds a multi-line message into one line, so each problem stays one line of output.
pub(super) fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

pub(super) fn server_tables(value: toml::Value, problems: &mut Problems) -> Vec<toml::Table> {
    match value {
        toml::Value::Array(entries) => entries
            .into_iter()
            .enumerate()
            .filter_map(|(i, entry)| match entry {
                toml::Value::Table(table) => Some(table),
                _ => {
                    problems.server(&format!("#{}", i + 1), "", "must be a table");
                    None
                }
            })
            .collect(),
        _ => {
            problems.global("server", "must be an array of tables: write [[server]]");
            Vec::new()
        }
    }
}

/// Deserialises one table, turning serde's message into a problem with the key it names.
pub(super) fn deserialize<T: for<'de> Deserialize<'de>>(
    table: toml::Table,
    report: &mut dyn FnMut(&str, String),
) -> Option<T> {
    match toml::Value::Table(table).try_into() {
        Ok(value) => Some(value),
        Err(e) => {
            let shown = e.to_string();
            // toml puts the path last, as "…\nin `a.b`".
            let (message, key) = match shown.trim_end().rsplit_once("\nin `") {
                Some((message, key)) => (message, key.trim_end_matches('`')),
                None => (shown.as_str(), ""),
            };
            report(key, one_line(message));
            None
        }
    }
}

/// Parses a human duration ("10s", "500ms", "1m 30s"); `None` when absent or invalid.
pub(super) fn duration(
    text: Option<&str>,
    must_be_positive: bool,
    report: &mut dyn FnMut(String),
) -> Option<Duration> {
    let text = text?;
    match humantime::parse_duration(text) {
        Ok(d) if must_be_positive && d.is_zero() => {
            report("must be longer than zero".to_owned());
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            report(format!(
                "invalid duration {text:?}: {e} (write e.g. \"10s\", \"500ms\", \"1m 30s\")"
            ));
            None
        }
    }
}

/// A `listen` address: `IP:PORT` (`[::]:443` for IPv6), `*:PORT` (every IPv4 address), or
/// `HOST:PORT` with a host name resolved now, once (as nginx does: `localhost:443`), taking its
/// first IPv4 address, else its first. The error is the sentence a problem shows.
pub(super) fn listen_address(text: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::{SocketAddr, ToSocketAddrs as _};
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let usage =
        "write IP:PORT or HOST:PORT, e.g. \"127.0.0.1:1440\", \"[::]:443\", \"localhost:8443\"";
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!("{text:?} is not an address with a port ({usage})"));
    };
    let Ok(port) = port.parse::<u16>() else {
        return Err(format!("{text:?}: {port:?} is not a port ({usage})"));
    };
    if host == "*" {
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    let valid_name = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !valid_name {
        return Err(format!("{text:?} is not an address ({usage})"));
    }
    let resolved: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("{text:?}: cannot resolve {host:?}: {e}"))?
        .collect();
    resolved
        .iter()
        .find(|addr| addr.is_ipv4())
        .or_else(|| resolved.first())
        .copied()
        .ok_or_else(|| format!("{text:?}: {host:?} resolves to no address"))
}
