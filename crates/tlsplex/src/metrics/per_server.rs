//! The series every server has (accepted, active, handshakes, failures, bytes, …), kept per
//! server in one table that encodes itself at scrape time.
//!
//! A `Family` per metric would cost each server some twenty hash-map entries, each with its
//! own copy of the server's name (about 2.5 KB a server, and most of the time to bind 10,000
//! of them); here a server costs one entry and its atomics, in one allocation
//! ([`values`](super::values)). The series of a name live until
//! the server is stopped or removed: a server rebound under the same name keeps counting where
//! its predecessor stopped.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;

use super::values::{Count, Level, Timings};
use super::FailureReason;

/// One server's series.
#[derive(Debug)]
pub(crate) struct ServerSeries {
    pub(crate) accepted: Count,
    pub(crate) active: Level,
    pub(crate) server_limited: Count,
    pub(crate) process_limited: Count,
    pub(crate) client_limited: Count,
    pub(crate) handshakes: Count,
    pub(crate) resumed: Count,
    /// Failed handshakes, by [`FailureReason`] in the order of [`FailureReason::ALL`].
    failures: [Count; FailureReason::ALL.len()],
    /// Accept to the end of the handshake.
    pub(crate) duration: Timings,
    /// Bytes read from clients, as on the wire.
    pub(crate) received: Count,
    /// Bytes written to clients, as on the wire.
    pub(crate) sent: Count,
    pub(crate) backend_errors: Count,
    /// HTTP responses by status class, 1xx to 5xx.
    pub(super) requests: [Count; 5],
    pub(super) request_duration: Timings,
}

impl ServerSeries {
    fn new() -> Self {
        Self {
            accepted: Count::default(),
            active: Level::default(),
            server_limited: Count::default(),
            process_limited: Count::default(),
            client_limited: Count::default(),
            handshakes: Count::default(),
            resumed: Count::default(),
            failures: Default::default(),
            // 0.1 ms to ~3.3 s.
            duration: Timings::new(0.0001),
            received: Count::default(),
            sent: Count::default(),
            backend_errors: Count::default(),
            requests: Default::default(),
            // 1 ms to ~33 s.
            request_duration: Timings::new(0.001),
        }
    }

    /// A handshake that failed for `reason`.
    pub(crate) fn failed(&self, reason: FailureReason) {
        self.failures[reason as usize].inc();
    }

    /// `(reason, count)` for every reason.
    pub(crate) fn failures(&self) -> impl Iterator<Item = (FailureReason, u64)> + '_ {
        FailureReason::ALL
            .into_iter()
            .map(|reason| (reason, self.failures[reason as usize].get()))
    }
}

/// Every server's series, by name, in name order when encoded.
#[derive(Debug, Clone, Default)]
pub(super) struct ServerSeriesTable(Arc<RwLock<BTreeMap<Arc<str>, Arc<ServerSeries>>>>);

/// A metric whose value each server has one of: its name, help text and where it is.
type Single = (
    &'static str,
    &'static str,
    fn(&ServerSeries) -> &dyn EncodeMetric,
);

const SINGLES: [Single; 10] = [
    (super::CONNECTIONS_ACCEPTED, "Connections accepted", |s| {
        &s.accepted
    }),
    (super::CONNECTIONS_ACTIVE, "Connections open now", |s| {
        &s.active
    }),
    (
        super::CLIENT_LIMITED,
        "Connections closed at accept: their client address held max_connections_per_client",
        |s| &s.client_limited,
    ),
    (super::HANDSHAKES, "Completed TLS handshakes", |s| {
        &s.handshakes
    }),
    (super::HANDSHAKES_RESUMED, "Resumed TLS handshakes", |s| {
        &s.resumed
    }),
    (
        super::HANDSHAKE_DURATION,
        "Accept to end of handshake",
        |s| &s.duration,
    ),
    (super::BYTES_RECEIVED, "Bytes read from clients", |s| {
        &s.received
    }),
    (super::BYTES_SENT, "Bytes written to clients", |s| &s.sent),
    (
        super::FORWARD_BACKEND_ERRORS,
        "Backends that could not be reached",
        |s| &s.backend_errors,
    ),
    (
        super::HTTP_REQUEST_DURATION,
        "HTTP request head to response head",
        |s| &s.request_duration,
    ),
];

impl ServerSeriesTable {
    /// The series of the server called `name`, made on first use, and the name as the table
    /// keeps it.
    pub(super) fn get_or_create(&self, name: &str) -> (Arc<str>, Arc<ServerSeries>) {
        if let Some((name, series)) = self.read().get_key_value(name) {
            return (name.clone(), series.clone());
        }
        let mut table = self.0.write().unwrap_or_else(PoisonError::into_inner);
        let name: Arc<str> = name.into();
        let series = table
            .entry(name.clone())
            .or_insert_with(|| Arc::new(ServerSeries::new()))
            .clone();
        (name, series)
    }

    /// Drops the series of the server called `name`.
    pub(super) fn remove(&self, name: &str) {
        let mut table = self.0.write().unwrap_or_else(PoisonError::into_inner);
        table.remove(name);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<Arc<str>, Arc<ServerSeries>>> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Collector for ServerSeriesTable {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let table = self.read();
        let Some(first) = table.values().next() else {
            return Ok(());
        };
        for (name, help, metric) in SINGLES {
            let mut family =
                encoder.encode_descriptor(name, help, None, metric(first).metric_type())?;
            for (server, series) in table.iter() {
                metric(series).encode(family.encode_family(&[("server", &**server)])?)?;
            }
        }
        let mut limited = encoder.encode_descriptor(
            super::CONNECTIONS_LIMITED,
            "Accepts that waited for a connection limit",
            None,
            MetricType::Counter,
        )?;
        for (server, series) in table.iter() {
            for (reason, counter) in [
                ("server_limit", &series.server_limited),
                ("process_limit", &series.process_limited),
            ] {
                let labels = [("server", &**server), ("reason", reason)];
                counter.encode(limited.encode_family(&labels)?)?;
            }
        }
        let mut requests = encoder.encode_descriptor(
            super::HTTP_REQUESTS,
            "HTTP responses, by status class",
            None,
            MetricType::Counter,
        )?;
        for (server, series) in table.iter() {
            for (class, counter) in ["1xx", "2xx", "3xx", "4xx", "5xx"]
                .iter()
                .zip(&series.requests)
            {
                let labels = [("server", &**server), ("class", *class)];
                counter.encode(requests.encode_family(&labels)?)?;
            }
        }
        let mut failures = encoder.encode_descriptor(
            super::HANDSHAKE_FAILURES,
            "Failed TLS handshakes",
            None,
            MetricType::Counter,
        )?;
        for (server, series) in table.iter() {
            for reason in FailureReason::ALL {
                let labels = [("server", &**server), ("reason", reason.as_str())];
                series.failures[reason as usize].encode(failures.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
