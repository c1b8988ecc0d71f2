//! [`ConfigOutline`]: what a config file says about where things listen, read without loading
//! anything it names, so an operator who may not read the private keys can still point
//! `tlsplex ctl` and `tlsplex probe` at the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::error::Problems;
use super::file::{AdminFile, GlobalFile, ServerFile};
use super::value::{deserialize, document, server_label, server_name, server_tables};
use super::ConfigError;

/// A config file's addresses and file names, nothing loaded.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConfigOutline {
    /// The file it came from.
    pub file: PathBuf,
    /// `[admin]`, when the file has one.
    pub admin: Option<AdminOutline>,
    /// Every `[[server]]`, in file order.
    pub servers: Vec<ServerOutline>,
}

/// `[admin]` in outline.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AdminOutline {
    /// The address.
    pub listen: SocketAddr,
    /// The bearer token's file (not read): the `token_file` set, against the config file's
    /// folder, or the generated token's (`admin.token` in `[global] state_dir`).
    pub token_file: PathBuf,
}

/// One `[[server]]` in outline.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerOutline {
    /// Its name.
    pub name: String,
    /// Its address.
    pub listen: SocketAddr,
    /// Its certificate files (public), resolved against the config file's folder; the keys are
    /// not named here.
    pub certificate_files: Vec<PathBuf>,
    /// The names of its `{ acme = [...] }` certificates, in order.
    pub acme_names: Vec<String>,
}

impl ConfigOutline {
    /// Reads `path` and the addresses in it; reads no file the config names. Every problem of
    /// the parts it reads is reported, as [`super::Config::load`] would.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = crate::files::read_text(path, crate::files::MAX_MATERIAL_FILE).map_err(|e| {
            ConfigError::whole_file(path, format!("cannot read the config file: {e}"))
        })?;
        let base = super::base_of(path);
        let document = document(&text, path)?;
        let mut problems = Problems::default();
        let mut outline = Self {
            file: path.to_owned(),
            admin: None,
            servers: Vec::new(),
        };
        let state_dir = match document.get("global").cloned() {
            Some(toml::Value::Table(table)) => {
                let raw: Option<GlobalFile> = deserialize(table, &mut |key, message| {
                    problems.global(&format!("global.{key}"), message)
                });
                raw.and_then(|raw| raw.state_dir)
            }
            _ => None,
        };
        let state_dir = super::global::state_dir(state_dir.as_deref(), base);
        if let Some(toml::Value::Table(table)) = document.get("admin").cloned() {
            let raw: Option<AdminFile> = deserialize(table, &mut |key, message| {
                problems.global(&format!("admin.{key}"), message)
            });
            if let Some(raw) = raw {
                match super::value::listen_address(&raw.listen) {
                    Ok(listen) => {
                        outline.admin = Some(AdminOutline {
                            listen,
                            token_file: raw.token_file.map_or_else(
                                || state_dir.join(super::DEFAULT_TOKEN_FILE),
                                |file| base.join(file),
                            ),
                        });
                    }
                    Err(message) => problems.global("admin.listen", message),
                }
            }
        }
        let tables = match document.get("server").cloned() {
            Some(value) => server_tables(value, &mut problems),
            None => Vec::new(),
        };
        for (index, table) in tables.into_iter().enumerate() {
            let label = server_label(server_name(&table), index);
            let raw: Option<ServerFile> = deserialize(table, &mut |key, message| {
                problems.server(&label, key, message)
            });
            let Some(raw) = raw else { continue };
            match super::value::listen_address(&raw.listen) {
                Ok(listen) => outline.servers.push(ServerOutline {
                    name: raw.name,
                    listen,
                    // ACME entries have their files in the [acme] storage, which the outline
                    // does not read.
                    certificate_files: raw
                        .certificates
                        .iter()
                        .filter_map(|c| c.cert.as_ref().map(|cert| base.join(cert)))
                        .collect(),
                    acme_names: raw
                        .certificates
                        .iter()
                        .filter_map(|c| c.acme.as_ref())
                        .flatten()
                        .cloned()
                        .collect(),
                }),
                Err(message) => problems.server(&label, "listen", message),
            }
        }
        problems.into_result(path.to_owned(), outline)
    }
}
