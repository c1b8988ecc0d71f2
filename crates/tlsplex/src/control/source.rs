//! `ConfigSource`: the config file servers were loaded from, and what every file it names looked
//! like (modification time and a digest of the contents) when last loaded, so a change can be
//! seen without signals (mounted secrets, `reload_check_interval`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crate::config::{
    AcmeCertificate, AcmeOptions, Config, ConfigError, GlobalSettings, ServerSpec,
};

/// A config file, as last loaded.
#[derive(Debug)]
pub struct ConfigSource {
    path: PathBuf,
    files: Vec<(PathBuf, Seen)>,
    /// The config as last loaded: its servers for `start` of a stopped one, and what the next
    /// load starts from (the text as read, the servers that did not change).
    last: Arc<Config>,
    /// `[global]` as the process started with it: what a reload compares against.
    started_with: GlobalSettings,
}

impl ConfigSource {
    /// The source of `config`, loaded from `path`: every file it names as they are now.
    pub fn new(path: &Path, config: &Config) -> Self {
        Self::from_config(path, config.clone())
    }

    /// As [`ConfigSource::new`], keeping `config` instead of copying it (a config of 10,000
    /// servers would otherwise be held twice).
    pub fn from_config(path: &Path, config: Config) -> Self {
        Self::from_shared(path, Arc::new(config))
    }

    /// As [`ConfigSource::from_config`], sharing `config` with its other holder.
    pub(crate) fn from_shared(path: &Path, config: Arc<Config>) -> Self {
        Self {
            path: path.to_owned(),
            files: seen_now(&config),
            started_with: config.global.clone(),
            last: config,
        }
    }

    /// `[acme]` and every certificate the servers want from it (each set of names once), as
    /// last loaded.
    pub fn acme(&self) -> Option<(AcmeOptions, Vec<AcmeCertificate>)> {
        let acme = self.last.acme.clone()?;
        let mut wanted: Vec<AcmeCertificate> = Vec::new();
        for certificate in self.last.servers.iter().flat_map(|s| &s.acme_certificates) {
            if !wanted.iter().any(|w| w.names == certificate.names) {
                wanted.push(certificate.clone());
            }
        }
        Some((acme, wanted))
    }

    /// `[global]` as the process started with it.
    pub fn started_with(&self) -> &GlobalSettings {
        &self.started_with
    }

    /// After a reload of `config`: its files and servers are the ones watched now.
    pub(crate) fn loaded(&mut self, config: Config) {
        self.files = seen_now(&config);
        self.last = Arc::new(config);
    }

    /// The config file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The configured server called `name`, as last loaded.
    pub fn server(&self, name: &str) -> Option<&ServerSpec> {
        let spec = self.last.servers.iter().find(|spec| spec.name == name);
        spec.map(|spec| &**spec)
    }

    /// The folder relative paths resolve against: the config file's.
    pub fn base(&self) -> PathBuf {
        crate::config::base_of(&self.path).to_owned()
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

    /// Loads the file again, off the async workers (reads never wait: FIFOs and devices are
    /// refused, but a slow disk should not stall connections). Servers whose table and files
    /// did not change are taken from the last load ([`Config::load_after`]).
    pub(crate) async fn load(&self) -> Result<Config, ConfigError> {
        let path = self.path.clone();
        let last = self.last.clone();
        let loaded =
            tokio::task::spawn_blocking(move || Config::load_after(&path, Some(&last))).await;
        loaded.unwrap_or_else(|panicked| {
            Err(ConfigError::whole_file(
                &self.path,
                format!("the config loader failed: {panicked}"),
            ))
        })
    }

    /// After a refused load: remembers the files as they are, so a broken file is not retried
    /// until it changes again.
    pub(crate) fn remember_refused(&mut self) {
        for (path, seen) in &mut self.files {
            *seen = Seen::of(path);
        }
    }
}

fn seen_now(config: &Config) -> Vec<(PathBuf, Seen)> {
    config
        .watched_files()
        .into_iter()
        .map(|p| {
            let seen = Seen::of(&p);
            (p, seen)
        })
        .collect()
}

/// One watched file as last seen.
#[derive(Debug)]
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
/// `None` for anything [`crate::files::read_limited`] refuses (a FIFO, a device, a file too
/// large), so the control loop never waits on one.
fn digest(path: &Path) -> Option<u64> {
    use std::hash::{Hash as _, Hasher as _};
    let contents = crate::files::read_limited(path, crate::files::MAX_MATERIAL_FILE).ok()?;
    let mut hasher = std::hash::DefaultHasher::new();
    contents.hash(&mut hasher);
    Some(hasher.finish())
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}
