//! `[acme]`: the ACME account every server of the process shares, and where its certificates
//! are kept; `{ acme = ["name", ...] }` certificate entries resolve to files in that storage.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::dns01::{validate_dns01, Challenge, Dns01File, Dns01Options};
use super::error::Problems;
use super::value::deserialize;

/// Let's Encrypt's production directory (`directory = "letsencrypt"`).
pub const LETSENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory (`directory = "letsencrypt-staging"`): try here first.
pub const LETSENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// `[acme]`, validated.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AcmeOptions {
    /// The directory URL.
    pub directory: String,
    /// `mailto:` addresses the CA may write to about the account.
    pub contact: Vec<String>,
    /// The folder holding the account, certificates and keys (with a fleet store, this
    /// process's copy of them).
    pub storage: PathBuf,
    /// The fleet store (`storage = "redis://…"`) shared by every process serving these names.
    pub redis: Option<RedisUrl>,
    /// A PEM root the directory's own HTTPS certificate chains to (test and private CAs).
    pub directory_ca: Option<PathBuf>,
    /// External account binding: the key id and the decoded HMAC key.
    pub eab: Option<(String, Vec<u8>)>,
    /// Where to answer HTTP-01 validations (port 80 of the names); orders then use HTTP-01, and
    /// every other request there is redirected to https.
    pub http01_listen: Option<SocketAddr>,
    /// `challenge = "..."`: how certificates are validated unless their entry says otherwise.
    pub challenge: Option<Challenge>,
    /// `[acme.dns01]`: how DNS-01's records are published and checked.
    pub dns01: Option<Dns01Options>,
    /// `profile = "..."`: the certificate profile asked of the CA unless an entry says
    /// otherwise (the CA must list it).
    pub profile: Option<String>,
}

impl fmt::Debug for AcmeOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the EAB HMAC key.
        f.debug_struct("AcmeOptions")
            .field("directory", &self.directory)
            .field("contact", &self.contact)
            .field("storage", &self.storage)
            .field("redis", &self.redis)
            .field("directory_ca", &self.directory_ca)
            .field("eab", &self.eab.as_ref().map(|(kid, _)| kid))
            .field("http01_listen", &self.http01_listen)
            .field("challenge", &self.challenge)
            .field("dns01", &self.dns01)
            .field("profile", &self.profile)
            .finish()
    }
}

impl AcmeOptions {
    /// The challenge a certificate entry is validated by: its own, else `[acme] challenge`,
    /// else HTTP-01 where there is an HTTP-01 listener, else TLS-ALPN-01.
    pub fn challenge_for(&self, entry: Option<Challenge>) -> Challenge {
        entry
            .or(self.challenge)
            .unwrap_or(match self.http01_listen {
                Some(_) => Challenge::Http01,
                None => Challenge::TlsAlpn01,
            })
    }

    /// The certificate chain and key files of the certificate for `names` (named after the
    /// first, `*` spelled `_`).
    pub fn certificate_files(&self, names: &[String]) -> (PathBuf, PathBuf) {
        let first = names.first().map_or("unnamed", String::as_str);
        let folder: String = first
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c == '*' { '_' } else { c })
            .collect();
        let folder = self.storage.join("certificates").join(folder);
        (folder.join("cert.pem"), folder.join("key.pem"))
    }
}

/// A Redis URL (`redis://`, `rediss://`, `redis+unix://`); shown without its password.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

impl RedisUrl {
    /// The URL as written, password included: for connecting, never for logs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // scheme://user:password@host… → scheme://user:***@host…
        let (scheme, rest) = self.0.split_once("://").unwrap_or(("", &self.0));
        match rest.split_once('@') {
            Some((credentials, host)) => {
                let user = credentials.split_once(':').map_or("", |(user, _)| user);
                write!(f, "{scheme}://{user}:***@{host}")
            }
            None => f.write_str(&self.0),
        }
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

/// One certificate a server wants from ACME.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AcmeCertificate {
    /// The names, the first giving the files their folder.
    pub names: Vec<String>,
    /// Where the chain is kept.
    pub cert: PathBuf,
    /// Where the key is kept.
    pub key: PathBuf,
    /// How the CA validates the names.
    pub challenge: Challenge,
    /// The certificate profile asked of the CA.
    pub profile: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AcmeFile {
    directory: String,
    #[serde(default)]
    contact: Vec<String>,
    storage: Option<String>,
    directory_ca: Option<PathBuf>,
    key_type: Option<String>,
    eab: Option<EabFile>,
    http01_listen: Option<String>,
    challenge: Option<Challenge>,
    dns01: Option<Dns01File>,
    profile: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EabFile {
    kid: String,
    hmac_key_file: PathBuf,
}

/// `[acme]`; its storage defaults to `acme` in `state_dir`.
pub(super) fn validate_acme(
    value: toml::Value,
    base: &Path,
    state_dir: &Path,
    strict_permissions: bool,
    problems: &mut Problems,
) -> Option<AcmeOptions> {
    let toml::Value::Table(table) = value else {
        problems.global("acme", "must be a table: [acme]");
        return None;
    };
    let raw: AcmeFile = deserialize(table, &mut |key, message| {
        let key = if key.is_empty() {
            "acme".to_owned()
        } else {
            format!("acme.{key}")
        };
        problems.global(&key, message);
    })?;
    let mut ok = true;
    let directory = match raw.directory.as_str() {
        "letsencrypt" => LETSENCRYPT.to_owned(),
        "letsencrypt-staging" => LETSENCRYPT_STAGING.to_owned(),
        url if url.starts_with("https://") => url.to_owned(),
        other => {
            problems.global(
                "acme.directory",
                format!(
                    "{other:?} is not an https:// URL, \"letsencrypt\" or \"letsencrypt-staging\""
                ),
            );
            ok = false;
            String::new()
        }
    };
    for (i, contact) in raw.contact.iter().enumerate() {
        if !contact.starts_with("mailto:") || contact.len() <= "mailto:".len() {
            problems.global(
                &format!("acme.contact[{i}]"),
                format!("{contact:?} is not a mailto: address (write \"mailto:ops@example.com\")"),
            );
            ok = false;
        }
    }
    if let Some(key_type) = raw.key_type.as_deref().filter(|k| *k != "ecdsa-p256") {
        problems.global(
            "acme.key_type",
            format!(
                "{key_type:?} is not supported: certificates get ECDSA P-256 keys (\"ecdsa-p256\")"
            ),
        );
        ok = false;
    }
    let directory_ca = raw.directory_ca.map(|path| base.join(path));
    if let Some(path) = &directory_ca {
        if let Err(error) = crate::files::read_limited(path, crate::files::MAX_MATERIAL_FILE) {
            problems.global(
                "acme.directory_ca",
                format!("cannot read {}: {error}", path.display()),
            );
            ok = false;
        }
    }
    let eab = raw.eab.and_then(|eab| {
        let path = base.join(&eab.hmac_key_file);
        let text = crate::files::read_text(&path, crate::files::MAX_SECRET_FILE)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
            .and_then(|text| {
                decode_base64url(text.trim())
                    .ok_or_else(|| format!("{} does not hold a base64url HMAC key", path.display()))
            });
        match text {
            Ok(key) => Some((eab.kid, key)),
            Err(message) => {
                problems.global("acme.eab.hmac_key_file", message);
                ok = false;
                None
            }
        }
    });
    let http01_listen = raw.http01_listen.and_then(|listen| {
        super::value::listen_address(&listen)
            .map_err(|message| {
                problems.global("acme.http01_listen", message);
                ok = false;
            })
            .ok()
    });
    if let Some(profile) = raw.profile.as_deref() {
        if let Err(message) = check_profile(profile) {
            problems.global("acme.profile", message);
            ok = false;
        }
    }
    let dns01_given = raw.dns01.is_some();
    let dns01 = match raw.dns01 {
        Some(dns01) => {
            let dns01 = validate_dns01(dns01, base, strict_permissions, problems);
            ok &= dns01.is_some();
            dns01
        }
        None => None,
    };
    if raw.challenge == Some(Challenge::Dns01) && !dns01_given {
        problems.global(
            "acme.challenge",
            "dns-01 needs [acme.dns01] (rfc2136 = {...} or hook = {...})",
        );
        ok = false;
    }
    let (storage, redis) = match raw.storage {
        Some(url) if url.contains("://") => {
            #[cfg(feature = "acme")]
            if let Err(error) = redis::Client::open(url.as_str()) {
                problems.global(
                    "acme.storage",
                    format!(
                        "{:?} is not a usable Redis URL: {error}",
                        RedisUrl(url.clone()).to_string()
                    ),
                );
                ok = false;
            }
            (state_dir.join("acme"), Some(RedisUrl(url)))
        }
        Some(folder) => (base.join(folder), None),
        None => (state_dir.join("acme"), None),
    };
    ok.then_some(AcmeOptions {
        directory,
        contact: raw.contact,
        storage,
        redis,
        http01_listen,
        directory_ca,
        eab,
        challenge: raw.challenge,
        dns01,
        profile: raw.profile,
    })
}

/// A certificate profile's name as CAs spell them ("classic", "shortlived", "tlsserver").
pub(super) fn check_profile(profile: &str) -> Result<(), String> {
    let fine = !profile.is_empty()
        && profile.len() <= 64
        && profile
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    match fine {
        true => Ok(()),
        false => Err(format!(
            "{profile:?} is not a profile name (a word the CA's directory lists, e.g. \"shortlived\")"
        )),
    }
}

/// Base64url, padded or not (as CAs hand out EAB keys); `None` for anything else.
fn decode_base64url(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .ok()
        .filter(|key| !key.is_empty())
}

#[cfg(test)]
mod tests {
    use super::{decode_base64url, RedisUrl};

    #[test]
    fn redis_urls_are_shown_without_their_password() {
        let url = RedisUrl("rediss://fleet:s3cret@redis.internal:6380/2".to_owned());
        assert_eq!(url.to_string(), "rediss://fleet:***@redis.internal:6380/2");
        assert_eq!(
            format!("{url:?}"),
            "\"rediss://fleet:***@redis.internal:6380/2\""
        );
        let url = RedisUrl("redis://:s3cret@10.0.0.5".to_owned());
        assert_eq!(url.to_string(), "redis://:***@10.0.0.5");
        let url = RedisUrl("redis://127.0.0.1:6379/".to_owned());
        assert_eq!(url.to_string(), "redis://127.0.0.1:6379/");
    }

    #[test]
    fn base64url_decodes_with_or_without_padding() {
        assert_eq!(decode_base64url("aGk").as_deref(), Some(&b"hi"[..]));
        assert_eq!(decode_base64url("aGk=").as_deref(), Some(&b"hi"[..]));
        assert_eq!(decode_base64url("-_8").as_deref(), Some(&[0xfb, 0xff][..]));
        assert!(decode_base64url("a b").is_none());
    }
}
