//! `[admin]`: where the admin endpoint listens and who may use it (the endpoint itself is
//! `crate::admin`, which serves these options).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::error::Problems;
use super::file::AdminFile;
use super::value::deserialize;

/// The file a generated admin token is written to when `[admin] token_file` is not set, beside
/// the config file; `tlsplex ctl --config` reads it from there.
pub const DEFAULT_TOKEN_FILE: &str = "admin.token";

/// Where the admin endpoint listens and who may use it.
#[derive(Clone)]
#[non_exhaustive]
pub struct AdminOptions {
    /// The address (loopback unless the token was chosen by the operator).
    pub listen: SocketAddr,
    /// The bearer token every request must carry (or a dashboard session made from it).
    pub token: AdminToken,
    /// Names besides IP addresses and `localhost` that requests may carry in `Host` (any
    /// other is refused, against DNS rebinding).
    pub allowed_hosts: Vec<String>,
}

/// The admin endpoint's bearer token: every request needs it, loopback included, since any local
/// user can reach a loopback port.
#[derive(Clone)]
pub enum AdminToken {
    /// Chosen by the operator (`token_file`) or the embedder.
    Fixed(String),
    /// Made afresh each time the endpoint binds and written to this file, readable by the
    /// daemon's user only (mode 0600), where `tlsplex ctl` reads it.
    Generated(PathBuf),
}

impl AdminOptions {
    /// The endpoint on `listen`, with its token.
    pub fn new(listen: SocketAddr, token: AdminToken) -> Self {
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
            .field(
                "token",
                &match &self.token {
                    AdminToken::Fixed(_) => "<set>".to_owned(),
                    AdminToken::Generated(path) => format!("generated into {}", path.display()),
                },
            )
            .field("allowed_hosts", &self.allowed_hosts)
            .finish()
    }
}

/// `[admin]`; the generated token goes into `state_dir`.
pub(super) fn validate_admin(
    value: toml::Value,
    base: &Path,
    state_dir: &Path,
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
    let listen = match super::value::listen_address(&raw.listen) {
        Ok(listen) => listen,
        Err(message) => {
            problems.global("admin.listen", message);
            return None;
        }
    };
    let token = match raw.token_file.map(|file| base.join(file)) {
        None => AdminToken::Generated(state_dir.join(DEFAULT_TOKEN_FILE)),
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
                AdminToken::Fixed(text.trim().to_owned())
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
    if !listen.ip().is_loopback() && matches!(token, AdminToken::Generated(_)) {
        problems.global(
            "admin.listen",
            format!(
                "{listen} is not a loopback address: set token_file, a token you give its clients"
            ),
        );
        return None;
    }
    Some(AdminOptions::new(listen, token).allowed_hosts(raw.allowed_hosts))
}
