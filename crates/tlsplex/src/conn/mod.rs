//! One client connection as the layers above see it: the metered TCP stream, the decrypted
//! [`TlsStream`], and [`ConnInfo`], what its handshake settled. [`Negotiated::of`] describes any
//! rustls connection (server or client), for the status page, the access log and the probe.

mod info;
mod metered;
mod negotiated;
mod stream;

pub use info::{ConnInfo, TlsConn};
pub(crate) use metered::ConnectionBytes;
pub use metered::MeteredTcp;
pub use negotiated::{tls_version_name, Negotiated};
pub use stream::TlsStream;
