//! SIGTERM and SIGINT start a graceful shutdown (a second one exits at once); SIGHUP reloads.

use std::io;

use tokio::signal::unix::{signal, Signal, SignalKind};

/// What a signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// SIGTERM or SIGINT, named.
    Shutdown(&'static str),
    /// SIGHUP.
    Reload,
}

/// The signals tlsplex answers, registered up front so none is missed between two waits.
pub struct Signals {
    terminate: Signal,
    interrupt: Signal,
    hangup: Signal,
}

impl Signals {
    pub fn register() -> io::Result<Self> {
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for the next signal.
    pub async fn recv(&mut self) -> Request {
        tokio::select! {
            _ = self.terminate.recv() => Request::Shutdown("SIGTERM"),
            _ = self.interrupt.recv() => Request::Shutdown("SIGINT"),
            _ = self.hangup.recv() => Request::Reload,
        }
    }

    /// Waits for the next SIGTERM or SIGINT, ignoring SIGHUP.
    pub async fn shutdown(&mut self) -> &'static str {
        loop {
            if let Request::Shutdown(name) = self.recv().await {
                return name;
            }
        }
    }
}
