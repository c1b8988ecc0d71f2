//! The series every server has (accepted, active, handshakes, failures, bytes, …), kept per
//! server in one table that encodes itself at scrape time.
//!
//! A `Family` per metric would cost each server some twenty hash-map entries, each with its
//! own copy of the server's name (about 2.5 KB a server, and most of the time to bind 10,000
//! of them); here a server costs one entry and its atomics. The series of a name live until
//! the server is stopped or removed: a server rebound under the same name keeps counting where
//! its predecessor stopped.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;

use super::FailureReason;

/// One server's series.
#[derive(Debug)]
pub(super) struct ServerSeries {
    pub(super) accepted: Counter,
    pub(super) active: Gauge,
    pub(super) server_limited: Counter,
    pub(super) process_limited: Counter,
    pub(super) client_limited: Counter,
    pub(super) handshakes: Counter,
    pub(super) resumed: Counter,
    pub(super) failures: [Counter; FailureReason::ALL.len()],
    pub(super) duration: Histogram,
    pub(super) received: Counter,
    pub(super) sent: Counter,
    pub(super) backend_errors: Counter,
    /// HTTP responses by status class, 1xx to 5xx.
    pub(super) requests: [Counter; 5],
    pub(super) request_duration: Histogram,
}

impl ServerSeries {
    fn new() -> Self {
        Self {
            accepted: Counter::default(),
            active: Gauge::default(),
            server_limited: Counter::default(),
            process_limited: Counter::default(),
            client_limited: Counter::default(),
            handshakes: Counter::default(),
            resumed: Counter::default(),
            failures: Default::default(),
            // 0.1 ms to ~3.3 s.
            duration: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            received: Counter::default(),
            sent: Counter::default(),
            backend_errors: Counter::default(),
            requests: Default::default(),
            // 1 ms to ~33 s.
            request_duration: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
        }
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
    /// The series of the server called `name`, made on first use.
    pub(super) fn get_or_create(&self, name: &str) -> Arc<ServerSeries> {
        if let Some(series) = self.read().get(name) {
            return series.clone();
        }
        let mut table = self.0.write().unwrap_or_else(PoisonError::into_inner);
        table
            .entry(name.into())
            .or_insert_with(|| Arc::new(ServerSeries::new()))
            .clone()
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
