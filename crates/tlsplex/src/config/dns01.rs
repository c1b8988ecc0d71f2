//! The challenge each `{ acme = [...] }` certificate is validated by, and `[acme.dns01]`: how
//! DNS-01's TXT records are published (RFC 2136 updates signed with TSIG, or a hook command)
//! and how long to wait for the zone's servers to answer them.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::error::Problems;
use super::value::{duration, listen_address};
pub use crate::tls::Challenge;

/// `[acme.dns01]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Dns01Options {
    /// Who publishes and removes the TXT records.
    pub provider: DnsProvider,
    /// The servers asked for the TXT value before the CA is told to look: the zone's
    /// authoritative servers (by default the RFC 2136 primary).
    pub check_servers: Vec<SocketAddr>,
    /// How long those servers may take to answer the value (zero: not asked).
    pub propagation_timeout: Duration,
    /// How often they are asked meanwhile.
    pub propagation_interval: Duration,
    /// The TTL of the published records.
    pub ttl: u32,
}

/// Who publishes DNS-01's TXT records.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DnsProvider {
    /// RFC 2136 dynamic updates to the zone's primary, signed with TSIG.
    Rfc2136(Rfc2136),
    /// A command run for each record, for every other DNS provider.
    Hook(DnsHook),
}

/// `rfc2136 = { server, zone, key_name, algorithm, key_file }`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rfc2136 {
    /// The zone's primary, which takes updates.
    pub server: SocketAddr,
    /// The zone updated; found by asking the primary for the name's SOA when not given.
    pub zone: Option<String>,
    /// The TSIG key the updates are signed with.
    pub key: TsigKey,
}

/// A TSIG key (RFC 8945): its name, algorithm and secret; shown without the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct TsigKey {
    /// The key's name, as the DNS server knows it.
    pub name: String,
    /// The HMAC.
    pub algorithm: TsigAlgorithm,
    secret: Vec<u8>,
}

impl TsigKey {
    /// The decoded secret: for signing, never for logs.
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }
}

impl fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// The HMACs TSIG keys may use (SHA-1 and MD5 are refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum TsigAlgorithm {
    /// `hmac-sha256`, what `tsig-keygen` and `keymgr -t` make by default.
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    /// `hmac-sha384`.
    #[serde(rename = "hmac-sha384")]
    HmacSha384,
    /// `hmac-sha512`.
    #[serde(rename = "hmac-sha512")]
    HmacSha512,
}

/// `hook = { command = [...], timeout }`: run as `command… present|cleanup NAME VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DnsHook {
    /// The program (looked up in `PATH` when it names no folder) and its first arguments.
    pub command: Vec<String>,
    /// How long one run may take before it is killed.
    pub timeout: Duration,
}

/// The default wait for the zone's servers.
const PROPAGATION_TIMEOUT: Duration = Duration::from_secs(120);
/// The default time between two checks.
const PROPAGATION_INTERVAL: Duration = Duration::from_secs(2);
/// The default time a hook may take.
const HOOK_TIMEOUT: Duration = Duration::from_secs(30);
/// The default TTL of the records.
const TTL: u32 = 60;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Dns01File {
    rfc2136: Option<Rfc2136File>,
    hook: Option<HookFile>,
    #[serde(default)]
    check_servers: Vec<String>,
    propagation_timeout: Option<String>,
    propagation_interval: Option<String>,
    ttl: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rfc2136File {
    server: String,
    zone: Option<String>,
    key_name: String,
    algorithm: Option<TsigAlgorithm>,
    key_file: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HookFile {
    command: Vec<String>,
    timeout: Option<String>,
}

/// `[acme.dns01]`; relative files resolve against `base`; a key file readable by others is a
/// problem under `strict_permissions`, a warning otherwise.
pub(super) fn validate_dns01(
    raw: Dns01File,
    base: &Path,
    strict_permissions: bool,
    problems: &mut Problems,
) -> Option<Dns01Options> {
    let mut ok = true;
    let mut fail = |key: &str, message: String| {
        problems.global(&format!("acme.dns01.{key}"), message);
        ok = false;
    };
    let provider = match (raw.rfc2136, raw.hook) {
        (Some(rfc2136), None) => rfc2136_provider(rfc2136, base, strict_permissions, &mut fail),
        (None, Some(hook)) => hook_provider(hook, base, &mut fail),
        (None, None) => {
            fail(
                "",
                "name who publishes the records: rfc2136 = { server, key_name, key_file } or hook = { command = [...] }".to_owned(),
            );
            None
        }
        (Some(_), Some(_)) => {
            fail("hook", "either rfc2136 or hook, not both".to_owned());
            None
        }
    };
    let propagation_timeout = duration(raw.propagation_timeout.as_deref(), false, &mut |m| {
        fail("propagation_timeout", m)
    });
    let propagation_interval = duration(raw.propagation_interval.as_deref(), true, &mut |m| {
        fail("propagation_interval", m)
    });
    let ttl = raw.ttl.unwrap_or(TTL);
    if !(1..=86_400).contains(&ttl) {
        fail("ttl", format!("{ttl} is not between 1 and 86400 seconds"));
    }
    let mut check_servers = Vec::new();
    for (i, server) in raw.check_servers.iter().enumerate() {
        match listen_address(server) {
            Ok(addr) => check_servers.push(addr),
            Err(message) => fail(&format!("check_servers[{i}]"), message),
        }
    }
    let propagation_timeout = propagation_timeout.unwrap_or(PROPAGATION_TIMEOUT);
    let provider = provider?;
    if check_servers.is_empty() {
        match &provider {
            DnsProvider::Rfc2136(rfc2136) => check_servers.push(rfc2136.server),
            DnsProvider::Hook(_) if !propagation_timeout.is_zero() => fail(
                "check_servers",
                "a hook's records are checked on the zone's authoritative servers: name them (\"ns1.example.com:53\"), or set propagation_timeout = \"0s\" to tell the CA at once".to_owned(),
            ),
            DnsProvider::Hook(_) => {}
        }
    }
    ok.then_some(Dns01Options {
        provider,
        check_servers,
        propagation_timeout,
        propagation_interval: propagation_interval.unwrap_or(PROPAGATION_INTERVAL),
        ttl,
    })
}

fn rfc2136_provider(
    raw: Rfc2136File,
    base: &Path,
    strict_permissions: bool,
    fail: &mut dyn FnMut(&str, String),
) -> Option<DnsProvider> {
    let server = listen_address(&raw.server)
        .map_err(|message| fail("rfc2136.server", message))
        .ok();
    let zone = raw.zone.and_then(|zone| match dns_name(&zone) {
        Some(zone) => Some(zone),
        None => {
            fail("rfc2136.zone", format!("{zone:?} is not a DNS name"));
            None
        }
    });
    let name = dns_name(&raw.key_name);
    if name.is_none() {
        fail(
            "rfc2136.key_name",
            format!("{:?} is not a key name (a DNS name)", raw.key_name),
        );
    }
    let path = base.join(&raw.key_file);
    let secret = match crate::files::loose_permissions(&path) {
        Some(_) if strict_permissions => Err(format!(
            "{} is readable by group or others: chmod 600 it",
            path.display()
        )),
        loose => crate::files::read_text(&path, crate::files::MAX_SECRET_FILE)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
            .and_then(|text| {
                tsig_secret(&text).ok_or_else(|| {
                    format!("{} holds no base64 TSIG secret (the file `tsig-keygen` or `keymgr -t` writes, or the secret alone)", path.display())
                })
            })
            .inspect(|_| {
                if let Some(mode) = loose {
                    tracing::warn!(file = %path.display(), mode = format!("{mode:o}"), "the TSIG key file is readable by group or others: chmod 600 it");
                }
            }),
    };
    let secret = secret.map_err(|m| fail("rfc2136.key_file", m)).ok();
    Some(DnsProvider::Rfc2136(Rfc2136 {
        server: server?,
        zone,
        key: TsigKey {
            name: name?,
            algorithm: raw.algorithm.unwrap_or(TsigAlgorithm::HmacSha256),
            secret: secret?,
        },
    }))
}

fn hook_provider(
    raw: HookFile,
    base: &Path,
    fail: &mut dyn FnMut(&str, String),
) -> Option<DnsProvider> {
    let timeout = duration(raw.timeout.as_deref(), true, &mut |m| {
        fail("hook.timeout", m)
    })
    .unwrap_or(HOOK_TIMEOUT);
    let mut command = raw.command;
    let Some(program) = command.first_mut() else {
        fail(
            "hook.command",
            "name the program and its first arguments: [\"/usr/local/bin/dns-hook\"]".to_owned(),
        );
        return None;
    };
    // A path is the file named (relative to the config); a bare name is looked up in PATH.
    if program.contains('/') {
        use std::os::unix::fs::PermissionsExt as _;
        let path = base.join(&*program);
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o111 != 0 => {
                *program = path.display().to_string();
            }
            Ok(_) => {
                fail(
                    "hook.command",
                    format!("{} is not an executable file", path.display()),
                );
                return None;
            }
            Err(e) => {
                fail(
                    "hook.command",
                    format!("cannot use {}: {e}", path.display()),
                );
                return None;
            }
        }
    }
    Some(DnsProvider::Hook(DnsHook { command, timeout }))
}

/// A DNS name, lower-cased, without its final dot; `None` when it is not one.
fn dns_name(text: &str) -> Option<String> {
    let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    valid.then_some(name)
}

/// The secret of a TSIG key file: BIND's `secret "…";`, Knot's `secret: …`, or the base64
/// secret alone.
fn tsig_secret(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let after = match text.rfind("secret") {
        Some(at) => &text[at + "secret".len()..],
        None => text,
    };
    let encoded: String = after
        .trim_start_matches(|c: char| c.is_whitespace() || c == ':' || c == '"')
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
        .filter(|secret| !secret.is_empty())
}

#[cfg(test)]
mod tests {
    use super::{dns_name, tsig_secret};

    #[test]
    fn tsig_secrets_are_read_from_bind_knot_and_bare_files() {
        let bind = "key \"acme\" {\n\talgorithm hmac-sha256;\n\tsecret \"aGVsbG8=\";\n};\n";
        let knot = "key:\n  - id: acme\n    algorithm: hmac-sha256\n    secret: aGVsbG8=\n";
        for text in [bind, knot, "aGVsbG8=\n"] {
            assert_eq!(tsig_secret(text).as_deref(), Some(&b"hello"[..]), "{text}");
        }
        assert!(tsig_secret("secret \"\";").is_none());
        assert!(tsig_secret("not base64 !").is_none());
    }

    #[test]
    fn dns_names_are_lower_cased_without_the_final_dot() {
        assert_eq!(dns_name("Example.COM.").as_deref(), Some("example.com"));
        assert_eq!(dns_name("acme-key").as_deref(), Some("acme-key"));
        assert!(dns_name("a..b").is_none());
        assert!(dns_name("a b").is_none());
        assert!(dns_name("").is_none());
    }
}
