//! The upstream layer: how handlers reach backends, below the handlers that use it. A backend
//! address and its connection (TCP, Unix, optionally TLS: `backend.rs`), a pool of them with
//! balance, passive and active health and their figures (`pool.rs`), and the HTTP health check
//! (`probe.rs`). `forward`, `passthrough` and `proxy` each hold a pool; nothing here knows which
//! handler uses it.

pub(crate) mod backend;
pub(crate) mod pool;
pub(crate) mod probe;

pub use backend::{Backend, BackendTls, BackendTlsError};
pub use pool::{BackendHealth, BackendStats, Balance, HealthCheck, PASSIVE_DOWN_TIME};
pub use probe::{ExpectedStatus, HttpProbe};
