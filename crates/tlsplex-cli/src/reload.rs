//! Reloading from the config file: on SIGHUP, and when `reload_check_interval` is set, whenever a
//! file the config names changes (for deployments without signals, such as mounted secrets).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use tlsplex::{Config, ReloadReport, ServerSpec, Supervisor};

/// The config file and what every file it names looked like (modification time, and a digest
/// of the contents), as last loaded.
pub struct Watched {
    config: PathBuf,
    files: Vec<(PathBuf, Seen)>,
    /// The servers of the config as last loaded, for `start` through the admin API.
    servers: Vec<ServerSpec>,
}

impl Watched {
    pub fn new(config_path: &Path, config: &Config) -> Self {
        let mut paths = vec![config_path.to_owned()];
        paths.extend(config.global.ticket_key_file.clone());
        for server in &config.servers {
            for (cert, key) in &server.certificate_files {
                paths.extend([cert.clone(), key.clone()]);
            }
            paths.extend(server.material_files.iter().cloned());
        }
        Self {
            config: config_path.to_owned(),
            files: paths
                .into_iter()
                .map(|p| {
                    let seen = Seen::of(&p);
                    (p, seen)
                })
                .collect(),
            servers: config.servers.clone(),
        }
    }

    /// The configured server called `name`, as last loaded.
    pub fn server(&self, name: &str) -> Option<&ServerSpec> {
        self.servers.iter().find(|spec| spec.name == name)
    }

    /// The folder relative paths resolve against: the config file's.
    pub fn base(&self) -> std::path::PathBuf {
        match self.config.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => std::path::PathBuf::from("."),
        }
    }

    /// Whether any watched file changed (or appeared, or vanished) since the last load. A file
    /// rewritten with the same contents (a Kubernetes secret swapped for an identical one: a
    /// new folder, new times) is not a change; its new time is remembered.
    pub fn changed(&mut self) -> bool {
        let mut changed = false;
        for (path, seen) in &mut self.files {
            let modified = modified(path);
            if modified == seen.modified {
                continue;
            }
            let digest = digest(path);
            if digest.is_some() && digest == seen.digest {
                tracing::debug!(file = %path.display(), "touched, contents unchanged: no reload");
                seen.modified = modified;
            } else {
                changed = true;
            }
        }
        changed
    }

    /// Loads the config again and applies it; on any error the running servers keep what they
    /// have. Returns the new watch list either way (so a broken file is not retried in a loop),
    /// with the report or why the new config was refused.
    pub async fn reload(
        self,
        supervisor: &mut Supervisor,
        why: &str,
    ) -> (Self, Result<ReloadReport, String>) {
        tracing::info!(config = %self.config.display(), reason = why, "reloading");
        let metrics = supervisor.context().metrics().clone();
        // Off the async workers: file reads never wait here (FIFOs and devices are refused),
        // but a slow disk should not stall the servers' connections either.
        let path = self.config.clone();
        let loaded = tokio::task::spawn_blocking(move || Config::load(&path)).await;
        let loaded = loaded.unwrap_or_else(|panicked| {
            Err(tlsplex::ConfigError::whole_file(
                &self.config,
                format!("the config loader failed: {panicked}"),
            ))
        });
        let config = match loaded {
            Ok(config) => config,
            Err(error) => {
                for problem in error.to_string().lines() {
                    tracing::error!(%problem, "reload refused; the previous configuration keeps serving");
                }
                metrics.reload(false);
                let files = self
                    .files
                    .iter()
                    .map(|(p, _)| (p.clone(), Seen::of(p)))
                    .collect();
                return (Self { files, ..self }, Err(error.to_string()));
            }
        };
        let report = supervisor.reload(&config).await;
        for error in &report.errors {
            tracing::error!(%error, "reload: not applied; the previous material keeps serving");
        }
        for change in &report.needs_restart {
            tracing::warn!(%change, "reload: needs a restart");
        }
        tracing::info!(
            added = %report.added.join(","),
            removed = %report.removed.join(","),
            rebound = %report.rebound.join(","),
            updated = %report.updated.join(","),
            "reloaded"
        );
        metrics.reload(report.errors.is_empty());
        (Self::new(&self.config, &config), Ok(report))
    }
}

/// One watched file as last seen.
struct Seen {
    modified: Option<SystemTime>,
    digest: Option<u64>,
}

impl Seen {
    fn of(path: &Path) -> Self {
        Self {
            modified: modified(path),
            digest: digest(path),
        }
    }
}

/// A digest of a regular file's contents (not for security: to tell a rewrite from a change);
/// `None` for anything [`tlsplex::files::read_limited`] refuses (a FIFO, a device, a file too
/// large to be a config's), so the control loop never waits on one.
fn digest(path: &Path) -> Option<u64> {
    use std::hash::{Hash as _, Hasher as _};
    let contents = tlsplex::files::read_limited(path, tlsplex::files::MAX_MATERIAL_FILE).ok()?;
    let mut hasher = std::hash::DefaultHasher::new();
    contents.hash(&mut hasher);
    Some(hasher.finish())
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}
