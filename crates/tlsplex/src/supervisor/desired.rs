//! `Desired`: a server a reload wants. The plan needs its name, address and inputs; its options
//! (handlers, pools, TLS configuration) are built only for a server that needs them: with 10,000
//! servers and one changed, building every server's options was a third of a reload.

use std::fmt;
use std::net::SocketAddr;

use crate::server::{ServerInputs, ServerOptions};

/// A server a reload wants: built options, or what to build them from.
pub struct Desired<'a>(Want<'a>);

enum Want<'a> {
    /// Boxed: options are large, and most servers of a reload stay `Lazy`.
    Built(Box<ServerOptions>),
    Lazy {
        name: &'a str,
        listen: SocketAddr,
        inputs: ServerInputs,
        build: Box<dyn FnOnce() -> ServerOptions + Send + 'a>,
    },
}

impl fmt::Debug for Desired<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Desired")
            .field("name", &self.name())
            .field("listen", &self.listen())
            .finish_non_exhaustive()
    }
}

impl From<ServerOptions> for Desired<'_> {
    fn from(options: ServerOptions) -> Self {
        Self(Want::Built(Box::new(options)))
    }
}

impl<'a> Desired<'a> {
    /// The server called `name` on `listen`, made of `inputs`: `build` makes its options when a
    /// running server of that name is made of other inputs (or none runs).
    pub(crate) fn lazy(
        name: &'a str,
        listen: SocketAddr,
        inputs: ServerInputs,
        build: impl FnOnce() -> ServerOptions + Send + 'a,
    ) -> Self {
        Self(Want::Lazy {
            name,
            listen,
            inputs,
            build: Box::new(build),
        })
    }

    pub(super) fn name(&self) -> &str {
        match &self.0 {
            Want::Built(options) => options.name(),
            Want::Lazy { name, .. } => name,
        }
    }

    pub(super) fn listen(&self) -> SocketAddr {
        match &self.0 {
            Want::Built(options) => options.listen,
            Want::Lazy { listen, .. } => *listen,
        }
    }

    /// What it is made of (`None`: options built in code, always applied).
    pub(super) fn inputs(&self) -> Option<ServerInputs> {
        match &self.0 {
            Want::Built(options) => options.inputs,
            Want::Lazy { inputs, .. } => Some(*inputs),
        }
    }

    /// Its options, when already built.
    pub(super) fn built(&self) -> Option<&ServerOptions> {
        match &self.0 {
            Want::Built(options) => Some(&**options),
            Want::Lazy { .. } => None,
        }
    }

    pub(super) fn build(self) -> ServerOptions {
        match self.0 {
            Want::Built(options) => *options,
            Want::Lazy { build, .. } => build(),
        }
    }
}
