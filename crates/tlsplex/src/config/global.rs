//! `[global]`: process-wide settings, their defaults, the context they build, and which of them
//! a reload cannot apply.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::Problems;
use super::file::GlobalFile;
use super::value::{deserialize, duration};
use crate::context::{Context, ContextBuilder};
use crate::defaults;
use crate::tls::tickets::{TicketKeyError, TicketKeys};

/// `[global]`, validated; see `docs/configuration.md` for the defaults.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GlobalSettings {
    /// Default time for a handshake.
    pub handshake_timeout: Duration,
    /// Connections across all servers.
    pub max_connections: usize,
    /// Default connections per server (default: half of `max_connections`).
    pub server_max_connections: usize,
    /// Time in-flight connections get once their server stops.
    pub shutdown_grace: Duration,
    /// Runtime worker threads; `None`: one per CPU.
    pub worker_threads: Option<usize>,
    /// Shared session-ticket master secret; `None`: a random one per process.
    pub ticket_key_file: Option<PathBuf>,
    /// How often ticket keys rotate.
    pub ticket_rotation: Duration,
    /// Poll the files the config names this often and reload when one changed; `None`: don't.
    pub reload_check_interval: Option<Duration>,
    /// Run as this user once every socket is bound (the process must start as root).
    pub user: Option<String>,
    /// Run as this group (default: the user's primary group).
    pub group: Option<String>,
    /// Refuse private key files readable by group or others (otherwise: a warning).
    pub strict_key_permissions: bool,
    /// Where tlsplex writes: the ACME storage's default folder and the generated admin token.
    /// Unless set: systemd's `$STATE_DIRECTORY`, else the config file's folder.
    pub state_dir: PathBuf,
}

/// The folder tlsplex writes to: `state_dir` as set (against `base`), else systemd's
/// `$STATE_DIRECTORY` (set by a unit's `StateDirectory=`; the first if it lists several), else
/// `base`, the config file's folder.
pub(crate) fn state_dir(set: Option<&Path>, base: &Path) -> PathBuf {
    if let Some(folder) = set {
        return base.join(folder);
    }
    let systemd = std::env::var_os("STATE_DIRECTORY");
    let systemd = systemd
        .as_ref()
        .and_then(|dirs| std::env::split_paths(dirs).next());
    match systemd {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => base.to_owned(),
    }
}

impl Default for GlobalSettings {
    fn default() -> Self {
        Self {
            handshake_timeout: defaults::DEFAULT_HANDSHAKE_TIMEOUT,
            max_connections: defaults::DEFAULT_MAX_CONNECTIONS,
            server_max_connections: defaults::default_server_max_connections(
                defaults::DEFAULT_MAX_CONNECTIONS,
            ),
            shutdown_grace: defaults::DEFAULT_SHUTDOWN_GRACE,
            worker_threads: None,
            ticket_key_file: None,
            ticket_rotation: defaults::DEFAULT_TICKET_ROTATION,
            reload_check_interval: None,
            user: None,
            group: None,
            strict_key_permissions: false,
            state_dir: PathBuf::from("."),
        }
    }
}

impl GlobalSettings {
    /// The context these settings describe (reading the ticket key file, if one is set).
    pub fn context(&self) -> Result<Context, TicketKeyError> {
        Ok(self.context_builder()?.build())
    }

    /// A builder preset with these settings.
    pub fn context_builder(&self) -> Result<ContextBuilder, TicketKeyError> {
        let builder = Context::builder()
            .handshake_timeout(self.handshake_timeout)
            .max_connections(self.max_connections)
            .server_max_connections(self.server_max_connections)
            .shutdown_grace(self.shutdown_grace)
            .worker_threads(self.worker_threads);
        let keys = match &self.ticket_key_file {
            Some(path) => TicketKeys::from_file(path, self.ticket_rotation)?,
            None => TicketKeys::generate(self.ticket_rotation)?,
        };
        Ok(builder.ticket_keys(keys))
    }
}

impl GlobalSettings {
    /// The `[global]` keys whose values differ from `running`'s and that apply only at
    /// restart. Every field is named here, so a new setting must be sorted into one kind or
    /// the other.
    pub fn restart_only_changes(&self, running: &GlobalSettings) -> Vec<&'static str> {
        let Self {
            handshake_timeout,
            max_connections,
            server_max_connections,
            shutdown_grace,
            worker_threads,
            ticket_key_file,
            ticket_rotation,
            reload_check_interval,
            user,
            group,
            state_dir,
            // Applies at every load: the next reload reads keys under the new rule.
            strict_key_permissions: _,
        } = self;
        let changed = [
            (
                "handshake_timeout",
                *handshake_timeout != running.handshake_timeout,
            ),
            (
                "max_connections",
                *max_connections != running.max_connections,
            ),
            (
                "server_max_connections",
                *server_max_connections != running.server_max_connections,
            ),
            ("shutdown_grace", *shutdown_grace != running.shutdown_grace),
            ("worker_threads", *worker_threads != running.worker_threads),
            (
                "ticket_key_file",
                *ticket_key_file != running.ticket_key_file,
            ),
            (
                "ticket_rotation",
                *ticket_rotation != running.ticket_rotation,
            ),
            (
                "reload_check_interval",
                *reload_check_interval != running.reload_check_interval,
            ),
            ("user", *user != running.user),
            ("group", *group != running.group),
            ("state_dir", *state_dir != running.state_dir),
        ];
        changed
            .into_iter()
            .filter(|(_, changed)| *changed)
            .map(|(key, _)| key)
            .collect()
    }
}

pub(super) fn validate_global(
    value: Option<toml::Value>,
    base: &Path,
    problems: &mut Problems,
) -> GlobalSettings {
    let raw = match value {
        None => GlobalFile::default(),
        Some(toml::Value::Table(table)) => {
            let key = |k: &str| {
                if k.is_empty() {
                    "global".to_owned()
                } else {
                    format!("global.{k}")
                }
            };
            deserialize(table, &mut |k, m| problems.global(&key(k), m)).unwrap_or_default()
        }
        Some(_) => {
            problems.global("global", "must be a table: write [global]");
            GlobalFile::default()
        }
    };
    let defaults = GlobalSettings::default();
    let mut positive = |key: &str, value: Option<usize>, default: usize| match value {
        Some(0) => {
            problems.global(key, "must be at least 1");
            default
        }
        Some(n) => n,
        None => default,
    };
    let max_connections = positive(
        "global.max_connections",
        raw.max_connections,
        defaults.max_connections,
    );
    let server_max_connections = positive(
        "global.server_max_connections",
        raw.server_max_connections,
        defaults::default_server_max_connections(max_connections),
    );
    let worker_threads = raw
        .worker_threads
        .map(|n| positive("global.worker_threads", Some(n), 1));
    let ticket_rotation = duration(raw.ticket_rotation.as_deref(), true, &mut |m| {
        problems.global("global.ticket_rotation", m)
    })
    .unwrap_or(defaults.ticket_rotation);
    let reload_check_interval = duration(raw.reload_check_interval.as_deref(), true, &mut |m| {
        problems.global("global.reload_check_interval", m)
    });
    let ticket_key_file = raw.ticket_key_file.map(|file| base.join(file));
    if let Some(path) = &ticket_key_file {
        if let Err(e) = TicketKeys::from_file(path, ticket_rotation) {
            problems.global("global.ticket_key_file", e.to_string());
        }
    }
    if raw.group.is_some() && raw.user.is_none() {
        problems.global(
            "global.group",
            "set user too: the group applies when dropping to a user",
        );
    }
    GlobalSettings {
        state_dir: state_dir(raw.state_dir.as_deref(), base),
        strict_key_permissions: raw.strict_key_permissions.unwrap_or(false),
        user: raw.user,
        group: raw.group,
        ticket_key_file,
        ticket_rotation,
        reload_check_interval,
        handshake_timeout: duration(raw.handshake_timeout.as_deref(), true, &mut |m| {
            problems.global("global.handshake_timeout", m)
        })
        .unwrap_or(defaults.handshake_timeout),
        shutdown_grace: duration(raw.shutdown_grace.as_deref(), false, &mut |m| {
            problems.global("global.shutdown_grace", m)
        })
        .unwrap_or(defaults.shutdown_grace),
        max_connections,
        server_max_connections,
        worker_threads,
    }
}
