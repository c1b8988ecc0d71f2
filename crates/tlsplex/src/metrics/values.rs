//! The values a server's series hold inline: a count, a level and a histogram of times, each a
//! few atomics with no allocation of its own.
//!
//! prometheus-client's `Counter` and `Gauge` are each an `Arc` and its `Histogram` an `Arc`, a
//! lock and a vector of buckets: some thirty allocations for every server's series, about a
//! kilobyte a server at 10,000 servers. These encode the same way.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

/// A monotonic count (a Prometheus counter).
#[derive(Debug, Default)]
pub(crate) struct Count(AtomicU64);

impl Count {
    pub(crate) fn inc(&self) {
        self.inc_by(1);
    }

    pub(crate) fn inc_by(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl EncodeMetric for Count {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_counter::<NoLabelSet, _, u64>(&self.get(), None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

/// A value that goes up and down (a Prometheus gauge).
#[derive(Debug, Default)]
pub(crate) struct Level(AtomicI64);

impl Level {
    pub(crate) fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl EncodeMetric for Level {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&self.get())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }
}

/// Bucket bounds of [`Timings`]: the first, then each twice the one before.
const BOUNDS: usize = 16;

/// Durations in seconds (a Prometheus histogram) with [`BOUNDS`] upper bounds from `first`,
/// doubling (`exponential_buckets(first, 2.0, 16)`), and `+Inf`.
#[derive(Debug)]
pub(crate) struct Timings {
    first: f64,
    /// Observations per bucket, not cumulative; the last is above every bound.
    counts: [AtomicU64; BOUNDS + 1],
    /// The sum of observations, as `f64` bits.
    sum: AtomicU64,
}

impl Timings {
    /// Buckets from `first` seconds to `first * 2^15`.
    pub(crate) fn new(first: f64) -> Self {
        Self {
            first,
            counts: Default::default(),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }

    fn bound(&self, bucket: usize) -> f64 {
        self.first * f64::from(1u32 << bucket)
    }

    pub(crate) fn observe(&self, seconds: f64) {
        let bucket = (0..BOUNDS)
            .find(|&bucket| seconds <= self.bound(bucket))
            .unwrap_or(BOUNDS);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        // The closure always returns `Some`: the update cannot fail.
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + seconds).to_bits())
            });
    }
}

impl EncodeMetric for Timings {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let mut buckets = [(f64::MAX, 0u64); BOUNDS + 1];
        for (bucket, (bound, count)) in buckets.iter_mut().enumerate() {
            if bucket < BOUNDS {
                *bound = self.bound(bucket);
            }
            *count = self.counts[bucket].load(Ordering::Relaxed);
        }
        let count = buckets.iter().map(|(_, count)| count).sum();
        let sum = f64::from_bits(self.sum.load(Ordering::Relaxed));
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
    use prometheus_client::registry::Registry;

    use super::*;

    fn text(
        name: &str,
        metric: impl EncodeMetric + Send + Sync + std::fmt::Debug + 'static,
    ) -> String {
        let mut registry = Registry::default();
        registry.register(name, "help", metric);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }

    /// The same observations encode as prometheus-client's own histogram does.
    #[test]
    fn timings_encode_as_a_histogram() {
        let (ours, theirs) = (
            Timings::new(0.001),
            Histogram::new(exponential_buckets(0.001, 2.0, 16)),
        );
        for seconds in [0.0, 0.001, 0.0011, 0.002, 0.5, 32.768, 32.769, 1e9] {
            ours.observe(seconds);
            theirs.observe(seconds);
        }
        assert_eq!(text("t", ours), text("t", theirs));
    }

    #[test]
    fn counts_and_levels_encode_as_counters_and_gauges() {
        let (count, level) = (Count::default(), Level::default());
        count.inc();
        count.inc_by(41);
        level.inc();
        level.inc();
        level.dec();
        let expected = prometheus_client::metrics::counter::Counter::<u64>::default();
        expected.inc_by(42);
        assert_eq!(text("c", count), text("c", expected));
        let expected = prometheus_client::metrics::gauge::Gauge::<i64>::default();
        expected.set(1);
        assert_eq!(text("l", level), text("l", expected));
    }
}
