//! `[admin]`: where the admin endpoint listens and who may use it (the endpoint itself is
//! `crate::admin`, which serves these options).

use std::net::SocketAddr;
use std::path::Path;

use super::error::Problems;
use super::file::AdminFile;
use super::value::deserialize;

/// Where the admin endpoint listens and who may use it.
#[derive(Clone)]
#[non_exhaustive]
pub struct AdminOptions {
    /// The address; loopback unless a token is set.
    pub listen: SocketAddr,
    /// Required as `Authorization: Bearer <token>` on every request when set.
    pub token: Option<String>,
    /// Names besides IP addresses and `localhost` that requests may carry in `Host` (any
    /// other is refused, against DNS rebinding).
    pub allowed_hosts: Vec<String>,
}

impl AdminOptions {
    /// The endpoint on `listen`, with an optional bearer token.
    pub fn new(listen: SocketAddr, token: Option<String>) -> Self {
        Self {
            listen,
            token,
            allowed_hosts: Vec::new(),
        }
    }

    /// Names (besides IP addresses and `localhost`) the endpoint may be addressed by.
    pub fn allowed_hosts(mut self, hosts: Vec<String>) -> Self {
        self.allowed_hosts = hosts;
        self
    }
}

impl std::fmt::Debug for AdminOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: say whether there is one, never what it is.
        f.debug_struct("AdminOptions")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("allowed_hosts", &self.allowed_hosts)
            .finish()
    }
}

pub(super) fn validate_admin(
    value: toml::Value,
    base: &Path,
    strict_permissions: bool,
    problems: &mut Problems,
) -> Option<AdminOptions> {
    let toml::Value::Table(table) = value else {
        problems.global("admin", "must be a table: write [admin]");
        return None;
    };
    let key = |k: &str| {
        if k.is_empty() {
            "admin".to_owned()
        } else {
            format!("admin.{k}")
        }
    };
    let raw: AdminFile = deserialize(table, &mut |k, m| problems.global(&key(k), m))?;
    let Ok(listen) = raw.listen.parse::<SocketAddr>() else {
        problems.global(
            "admin.listen",
            format!("{:?} is not an IP:PORT address", raw.listen),
        );
        return None;
    };
    let token = match raw.token_file.map(|file| base.join(file)) {
        None => None,
        // A secret like a private key: readable by its owner only (a warning, or an error under
        // strict_key_permissions).
        Some(path) if strict_permissions && crate::files::loose_permissions(&path).is_some() => {
            problems.global(
                "admin.token_file",
                format!(
                    "{} is readable by group or others: chmod 600 it",
                    path.display()
                ),
            );
            return None;
        }
        Some(path) => match crate::files::read_text(&path, crate::files::MAX_SECRET_FILE) {
            Ok(text) if !text.trim().is_empty() => {
                if let Some(mode) = crate::files::loose_permissions(&path) {
                    tracing::warn!(file = %path.display(), mode = format!("{mode:o}"), "the admin token file is readable by group or others: chmod 600 it");
                }
                Some(text.trim().to_owned())
            }
            Ok(_) => {
                problems.global("admin.token_file", format!("{} is empty", path.display()));
                return None;
            }
            Err(e) => {
                problems.global(
                    "admin.token_file",
                    format!("cannot read {}: {e}", path.display()),
                );
                return None;
            }
        },
    };
    if !listen.ip().is_loopback() && token.is_none() {
        problems.global(
            "admin.listen",
            format!("{listen} is not a loopback address: set token_file so requests need a bearer token"),
        );
        return None;
    }
    Some(AdminOptions::new(listen, token).allowed_hosts(raw.allowed_hosts))
}
