//! ACME orders: counted by challenge, result and the DNS-01 step a failed one stopped at.

use prometheus_client::encoding::EncodeLabelSet;

use super::Metrics;
#[cfg(feature = "acme")]
use crate::tls::{Challenge, DnsStep};

/// An ACME order's challenge, result and (for a failed DNS-01 order) the step it stopped at.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct OrderLabels {
    challenge: &'static str,
    result: &'static str,
    failed_step: &'static str,
}

impl Metrics {
    /// Counts an ACME order validated by `challenge` (the ACME manager does), with the DNS-01
    /// step a failed one stopped at.
    #[cfg(feature = "acme")]
    pub(crate) fn acme_order(&self, challenge: Challenge, ok: bool, step: Option<DnsStep>) {
        let result = if ok { "ok" } else { "failed" };
        let failed_step = step.map_or("", DnsStep::as_str);
        self.acme_orders
            .get_or_create(&OrderLabels {
                challenge: challenge.as_str(),
                result,
                failed_step,
            })
            .inc();
    }
}
