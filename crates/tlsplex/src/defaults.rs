//! The process-wide defaults in one place: the context builder and `[global]` both use these.
//! Per-server defaults live with their types (`TlsPolicy::default`, `HttpLimits::default`,
//! `tls::DEFAULT_*`, `handler::DEFAULT_FORWARD_IDLE_TIMEOUT`). A leaf: it imports nothing.

use std::time::Duration;

/// Time for a TLS handshake, from accept to its end.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections open at once across every server of a context.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// Time in-flight connections get once their server stops.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// How often session-ticket keys rotate.
pub const DEFAULT_TICKET_ROTATION: Duration = Duration::from_secs(12 * 3600);

/// A server's connection limit when not told otherwise: half the process limit, so one flooded
/// server cannot take every connection.
pub const fn default_server_max_connections(max_connections: usize) -> usize {
    let half = max_connections / 2;
    if half == 0 {
        1
    } else {
        half
    }
}
