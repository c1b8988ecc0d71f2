//! Requests per second per client address (nginx's `limit_req`, HAProxy's `http_req_rate`
//! stick table): a token bucket per address, `burst` deep, refilled at `per_second`. A request
//! that finds its bucket empty is answered `429` with `Retry-After`.
//!
//! The table is bounded: at most `clients` addresses at once (nginx's zone size). An address
//! whose bucket has refilled carries no state and is dropped when room is needed; when every
//! entry is still refilling, a new address is refused as over its rate (nginx answers `503`
//! when its zone is full): a flood of distinct addresses costs the table's size and no more.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A rate per client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestRate {
    /// Requests per second, sustained.
    pub per_second: u32,
    /// Requests at once above that (the bucket's depth, at least 1).
    pub burst: u32,
    /// Client addresses tracked at once, at most.
    pub clients: usize,
}

/// The default number of client addresses a server tracks: about 1 MiB of table.
pub const DEFAULT_RATE_CLIENTS: usize = 16_384;

impl RequestRate {
    /// `per_second` sustained with `burst` at once, over [`DEFAULT_RATE_CLIENTS`] addresses.
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self {
            per_second: per_second.max(1),
            burst: burst.max(1),
            clients: DEFAULT_RATE_CLIENTS,
        }
    }

    /// The same over at most `clients` addresses.
    pub fn clients(mut self, clients: usize) -> Self {
        self.clients = clients.max(1);
        self
    }

    /// How long an emptied bucket takes to fill.
    fn refill(&self) -> Duration {
        Duration::from_secs_f64(f64::from(self.burst) / f64::from(self.per_second))
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A server's buckets, kept across reloads (a new rate applies to them from then on).
#[derive(Debug, Default)]
pub(crate) struct RateTable(Mutex<Table>);

#[derive(Debug, Default)]
struct Table {
    rate: Option<RequestRate>,
    buckets: HashMap<IpAddr, Bucket>,
    /// When full, the table is swept at most this often.
    swept: Option<Instant>,
}

impl RateTable {
    pub(crate) fn new(rate: Option<RequestRate>) -> Self {
        let table = Self::default();
        table.set(rate);
        table
    }

    /// A new rate (`None`: no limit, and the table is emptied).
    pub(crate) fn set(&self, rate: Option<RequestRate>) {
        let mut table = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        table.rate = rate;
        if rate.is_none() {
            table.buckets = HashMap::new();
        }
    }

    /// Whether there is a limit.
    pub(crate) fn is_on(&self) -> bool {
        (self.0.lock().unwrap_or_else(PoisonError::into_inner))
            .rate
            .is_some()
    }

    /// Takes a request from `addr`'s bucket; `Err(wait)` when it is empty.
    pub(crate) fn take(&self, addr: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut table = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(rate) = table.rate else {
            return Ok(());
        };
        let addr = addr.to_canonical();
        if !table.buckets.contains_key(&addr) && table.buckets.len() >= rate.clients {
            table.sweep(rate, now);
            if table.buckets.len() >= rate.clients {
                return Err(Duration::from_secs(1));
            }
        }
        let full = f64::from(rate.burst);
        let bucket = (table.buckets).entry(addr).or_insert(Bucket {
            tokens: full,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * f64::from(rate.per_second)).min(full);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let missing = (1.0 - bucket.tokens) / f64::from(rate.per_second);
            Err(Duration::from_secs_f64(missing))
        }
    }

    /// Addresses tracked now.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        (self.0.lock().unwrap_or_else(PoisonError::into_inner))
            .buckets
            .len()
    }
}

impl Table {
    /// Drops the buckets that have refilled (they hold nothing a new one would not), at most
    /// once a second.
    fn sweep(&mut self, rate: RequestRate, now: Instant) {
        if self
            .swept
            .is_some_and(|at| now.saturating_duration_since(at) < Duration::from_secs(1))
        {
            return;
        }
        self.swept = Some(now);
        let refill = rate.refill();
        self.buckets
            .retain(|_, bucket| now.saturating_duration_since(bucket.at) < refill);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0x7f00_0000 + n))
    }

    #[test]
    fn a_burst_then_the_rate() {
        let table = RateTable::new(Some(RequestRate::new(2, 3)));
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(table.take(ip(1), start), Ok(()));
        }
        let wait = table.take(ip(1), start).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 0.01, "{wait:?}");
        assert_eq!(table.take(ip(2), start), Ok(()), "another address");
        let later = start + Duration::from_millis(500);
        assert_eq!(table.take(ip(1), later), Ok(()), "refilled by one");
        assert!(table.take(ip(1), later).is_err());
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(
            table.take(mapped, later).is_err(),
            "IPv4-mapped is the IPv4 address"
        );
    }

    #[test]
    fn a_flood_of_addresses_costs_the_table_size() {
        let table = RateTable::new(Some(RequestRate::new(1, 1).clients(100)));
        let start = Instant::now();
        let admitted = (0..10_000)
            .filter(|n| table.take(ip(*n), start).is_ok())
            .count();
        assert_eq!((admitted, table.tracked()), (100, 100));
        // Once their buckets have refilled, they make room for new addresses.
        let later = start + Duration::from_secs(2);
        assert_eq!(table.take(ip(20_000), later), Ok(()));
        assert_eq!(table.tracked(), 1);
        table.set(None);
        assert_eq!((table.tracked(), table.take(ip(1), later)), (0, Ok(())));
    }
}
