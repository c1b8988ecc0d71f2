//! Handlers an embedding program provides by name, for a config to use: `handler = { type =
//! "external", name = "app" }` (a C program's callback, a Rust embedder's own [`Handler`]). The
//! config names them; the program that runs it gives them ([`crate::daemon::DaemonPlan`]), and
//! a reload finds them again. A name the program did not give closes each connection with an
//! error in the log.

use std::collections::HashMap;

use super::{ConnectionHandler, Handler, HandlerError, TlsConn};

/// Handlers by name; see the module docs.
#[derive(Clone, Default)]
pub struct NamedHandlers(HashMap<String, ConnectionHandler>);

impl NamedHandlers {
    /// Gives `handler` under `name` (replacing one given before).
    pub fn add(&mut self, name: impl Into<String>, handler: impl Handler) {
        self.0
            .insert(name.into(), ConnectionHandler::custom(handler));
    }

    /// The handler called `name`, or one that says it is missing.
    pub(crate) fn get(&self, name: &str) -> ConnectionHandler {
        match self.0.get(name) {
            Some(handler) => handler.clone(),
            None => ConnectionHandler::custom(Missing(name.to_owned())),
        }
    }
}

impl std::fmt::Debug for NamedHandlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// A name the program gave no handler for.
struct Missing(String);

impl Handler for Missing {
    async fn serve(&self, _conn: TlsConn) -> Result<(), HandlerError> {
        tracing::error!(handler = %self.0, "no external handler of this name was given by the program running the config: connection closed");
        Err(format!("no external handler called {:?}", self.0).into())
    }
}
