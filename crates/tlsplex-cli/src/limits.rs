//! The open-files limit: each connection costs a descriptor, and the usual soft limit (1,024)
//! is far below what a TLS front end holds. Raised to the hard limit at start, as HAProxy does.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; warns when that is still below what
/// `max_connections` needs (a descriptor per connection, plus listeners and files).
pub fn raise_open_files(max_connections: usize) {
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(error) => {
            tracing::warn!(%error, "cannot read the open-files limit");
            return;
        }
    };
    let limit = if soft < hard {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(error) => {
                tracing::warn!(%error, soft, hard, "cannot raise the open-files limit");
                soft
            }
        }
    } else {
        soft
    };
    let wanted = u64::try_from(max_connections)
        .unwrap_or(u64::MAX)
        .saturating_add(64);
    if limit < wanted {
        tracing::warn!(
            open_files = limit,
            max_connections,
            "the open-files limit is below max_connections: accepts will back off when it is reached (raise LimitNOFILE or ulimit -n)"
        );
    } else {
        tracing::debug!(open_files = limit, "open-files limit");
    }
}
