//! `max_connections_per_client`: how many connections one client address may hold on a server
//! at once (nginx's `limit_conn` on `$binary_remote_addr`, HAProxy's `conn_cur` stick table).
//! One more is closed at accept, before any TLS. Only addresses with a connection open have an
//! entry, so the table is bounded by the server's connection limit however many addresses a
//! flood comes from; without a limit there is no bookkeeping at all.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// A server's per-client connection counts and limit (0: none).
#[derive(Debug, Default)]
pub(crate) struct ClientLimit {
    limit: AtomicUsize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl ClientLimit {
    pub(crate) fn new(limit: Option<usize>) -> Self {
        let this = Self::default();
        this.set(limit);
        this
    }

    /// A new limit, for connections accepted from now on.
    pub(crate) fn set(&self, limit: Option<usize>) {
        self.limit.store(limit.unwrap_or(0), Ordering::Relaxed);
    }

    /// A slot for one more connection from `addr`; `None` when it holds the limit already.
    pub(crate) fn admit(self: &Arc<Self>, addr: IpAddr) -> Option<ClientSlot> {
        let limit = self.limit.load(Ordering::Relaxed);
        if limit == 0 {
            return Some(ClientSlot(None));
        }
        let addr = addr.to_canonical(); // an IPv4-mapped IPv6 address is its IPv4 one
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(addr).or_insert(0);
        if *count >= limit {
            return None; // at least 1: the entry belongs to connections still open
        }
        *count += 1;
        Some(ClientSlot(Some((self.clone(), addr))))
    }

    /// Addresses with a connection counted now.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// One counted connection; dropping it gives the slot back (and the entry, at zero).
#[derive(Debug)]
pub(crate) struct ClientSlot(Option<(Arc<ClientLimit>, IpAddr)>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let Some((limits, addr)) = self.0.take() else {
            return;
        };
        let mut open = limits.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&addr) {
            *count -= 1;
            if *count == 0 {
                open.remove(&addr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_holds_at_most_the_limit_and_entries_go_with_the_connections() {
        let limits = Arc::new(ClientLimit::new(Some(2)));
        let a: IpAddr = [192, 0, 2, 1].into();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap_or(a);
        let first = limits.admit(a);
        let second = limits.admit(mapped);
        assert!(first.is_some() && second.is_some());
        assert!(limits.admit(a).is_none(), "a third from the same address");
        assert!(limits.admit([192, 0, 2, 2].into()).is_some_and(|s| {
            drop(s);
            true
        }));
        drop(first);
        let third = limits.admit(a);
        assert!(third.is_some(), "a slot given back is taken again");
        drop((second, third));
        assert_eq!(limits.tracked(), 0, "no entry without a connection");
        limits.set(None);
        let free: Vec<_> = (0..10).map(|_| limits.admit(a)).collect();
        assert!(free.iter().all(Option::is_some) && limits.tracked() == 0);
    }
}
