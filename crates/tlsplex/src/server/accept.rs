//! Accept errors: which ones to skip, and how to back off when the process runs out of resources.

use std::io;
use std::time::{Duration, Instant};

/// Backs off on resource exhaustion (EMFILE, ENFILE, ENOBUFS, ENOMEM) instead of spinning on a
/// listener that stays readable, and logs at most once per `LOG_INTERVAL`.
#[derive(Debug, Default)]
pub(super) struct AcceptBackoff {
    delay: Duration,
    last_log: Option<Instant>,
}

const FIRST_DELAY: Duration = Duration::from_millis(5);
const MAX_DELAY: Duration = Duration::from_secs(1);
const LOG_INTERVAL: Duration = Duration::from_secs(5);

impl AcceptBackoff {
    /// An accept succeeded: the next failure starts from the shortest delay.
    pub(super) fn reset(&mut self) {
        self.delay = Duration::ZERO;
    }

    /// Handles a failed accept; returns after the delay the error calls for.
    pub(super) async fn on_error(&mut self, server: &str, error: &io::Error) {
        if is_connection_error(error) {
            // The peer gave up between SYN and accept: nothing is wrong with us.
            tracing::debug!(server, %error, "accept: connection gone before accept");
            return;
        }
        self.delay = (self.delay * 2).clamp(FIRST_DELAY, MAX_DELAY);
        let now = Instant::now();
        if self.last_log.is_none_or(|at| now - at >= LOG_INTERVAL) {
            self.last_log = Some(now);
            tracing::warn!(
                server,
                %error,
                retry_in_ms = self.delay.as_millis() as u64,
                "accept failed; backing off (file descriptors or memory exhausted?)"
            );
        }
        tokio::time::sleep(self.delay).await;
    }
}

fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}
