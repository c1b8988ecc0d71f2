//! Config errors: every problem found in one pass, each naming the server, the key and the file.

use std::fmt;
use std::path::PathBuf;

/// One thing wrong with a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Problem {
    /// The `[[server]]` it is in, by name (or `#N` when it has none); `None` for `[global]` and
    /// the file as a whole.
    pub server: Option<String>,
    /// The key, as a dotted path (`certificates[0].key`); empty for the file as a whole.
    pub key: String,
    /// What is wrong, naming any file it refers to.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.server.as_deref() {
            Some(unnamed) if unnamed.starts_with('#') => write!(f, "server {unnamed}: ")?,
            Some(name) => write!(f, "server {name:?}: ")?,
            None => {}
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// A config file that cannot be used, with every problem found in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// What is wrong, in file order.
    pub problems: Vec<Problem>,
}

impl ConfigError {
    /// One problem with the file as a whole (it cannot be read, say).
    pub fn whole_file(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            problems: vec![Problem {
                server: None,
                key: String::new(),
                message: message.into(),
            }],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{}: {problem}", self.file.display())?;
        }
        Ok(())
    }
}

/// Collects problems (and warnings: what would run, but likely not as meant) while a file is
/// validated.
#[derive(Debug, Default)]
pub(super) struct Problems(Vec<Problem>, Vec<Problem>);

impl Problems {
    pub(super) fn warn_server(&mut self, server: &str, key: &str, message: impl Into<String>) {
        self.1.push(Problem {
            server: Some(server.to_owned()),
            key: key.to_owned(),
            message: message.into(),
        });
    }

    pub(super) fn take_warnings(&mut self) -> Vec<Problem> {
        std::mem::take(&mut self.1)
    }

    pub(super) fn global(&mut self, key: &str, message: impl Into<String>) {
        self.push(None, key, message);
    }

    pub(super) fn server(&mut self, server: &str, key: &str, message: impl Into<String>) {
        self.push(Some(server.to_owned()), key, message);
    }

    fn push(&mut self, server: Option<String>, key: &str, message: impl Into<String>) {
        self.0.push(Problem {
            server,
            key: key.to_owned(),
            message: message.into(),
        });
    }

    pub(super) fn into_result<T>(self, file: PathBuf, value: T) -> Result<T, ConfigError> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(ConfigError {
                file,
                problems: self.0,
            })
        }
    }
}
