//! `ControlError`: why the controller could not do what it was asked.

use crate::config::ConfigError;
use crate::server::ServerError;

/// Why a [`super::Controller`] request was refused. The servers keep what they have.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// A reload was asked for, but the servers were started without a config file.
    #[error("no config file to reload (the servers were started without one)")]
    NoConfigFile,
    /// The config file (or a server table) is invalid: every problem, one per line.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// A server could not be bound or built.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// No server of that name is running (or, to remove, listed).
    #[error("no server named {0:?} is running")]
    NotRunning(String),
    /// No server of that name is in the config file as last loaded.
    #[error("no server named {0:?} in the configuration")]
    NotConfigured(String),
    /// A server of that name is already running.
    #[error("server {0:?} is already running")]
    AlreadyRunning(String),
    /// A server of that name is stopped: start it, or remove it before adding another.
    #[error("server {0:?} is stopped: start it, or remove it before adding another of that name")]
    Stopped(String),
    /// The servers are shutting down.
    #[error("the servers are shutting down")]
    ShuttingDown,
}
