//! What the ACME manager knows of each certificate it keeps: its state, expiry, next renewal
//! and last error, for the admin API and the dashboard. Kept in the [`crate::Context`], so
//! anything holding the context can show it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};
#[cfg(feature = "acme")]
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// How the CA checks that whoever orders a certificate speaks for its names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Challenge {
    /// A handshake with the `acme-tls/1` protocol on port 443 of the name.
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
    /// A plain HTTP request on port 80 of the name (`[acme] http01_listen`).
    #[serde(rename = "http-01")]
    Http01,
    /// A TXT record at `_acme-challenge.<name>` (`[acme.dns01]`); the only one for wildcards.
    #[serde(rename = "dns-01")]
    Dns01,
}

impl Challenge {
    /// Its name in ACME (and in the config).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TlsAlpn01 => "tls-alpn-01",
            Self::Http01 => "http-01",
            Self::Dns01 => "dns-01",
        }
    }
}

impl fmt::Display for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The DNS-01 step an order failed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DnsStep {
    /// Publishing a TXT record (the RFC 2136 update, or the hook's `present`).
    Present,
    /// Waiting for the zone's servers to answer the value.
    Propagation,
    /// Removing a TXT record (the order itself may have succeeded).
    CleanUp,
}

impl DnsStep {
    /// Its name in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Present => "present",
            Self::Propagation => "propagation",
            Self::CleanUp => "clean_up",
        }
    }
}

impl fmt::Display for DnsStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a managed certificate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ManagedState {
    /// No usable certificate yet: an order is under way or due.
    Pending,
    /// Issued and served; renewed when due.
    Valid,
    /// The last order failed; it is retried (the certificate, if any, still serves).
    Failing,
}

/// One certificate the ACME manager keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ManagedCertificate {
    /// Its names.
    pub names: Vec<String>,
    /// How the CA validates them.
    pub challenge: Challenge,
    /// Where it stands.
    pub state: ManagedState,
    /// The served certificate's end of validity (RFC 3339), once there is one.
    pub not_after: Option<String>,
    /// When the next order is due (RFC 3339).
    pub next_order: Option<String>,
    /// What the last failed order said.
    pub last_error: Option<String>,
    /// The DNS-01 step the last failed order stopped at, when it was one.
    pub failed_step: Option<DnsStep>,
}

/// Every managed certificate, by its names.
#[derive(Debug, Default)]
pub struct ManagedCertificates(Mutex<BTreeMap<Vec<String>, ManagedCertificate>>);

#[cfg(feature = "acme")]
fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// What the manager learnt of a certificate.
#[cfg(feature = "acme")]
#[derive(Debug)]
pub(crate) enum Event {
    /// Served and not due: the next order is at `next`.
    Valid { next: SystemTime },
    /// An order starts now.
    Ordering,
    /// The order failed; the next try is at `retry`.
    Failed {
        retry: SystemTime,
        error: String,
        step: Option<DnsStep>,
    },
}

impl ManagedCertificates {
    /// Records `event` for the certificate for `names`, whose served certificate ends at
    /// `not_after` (if there is one).
    #[cfg(feature = "acme")]
    pub(crate) fn record(
        &self,
        (names, challenge): (&[String], Challenge),
        not_after: Option<SystemTime>,
        event: Event,
    ) {
        let mut all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = all
            .entry(names.to_vec())
            .or_insert_with(|| ManagedCertificate {
                names: names.to_vec(),
                challenge,
                state: ManagedState::Pending,
                not_after: None,
                next_order: None,
                last_error: None,
                failed_step: None,
            });
        entry.challenge = challenge;
        entry.not_after = not_after.map(rfc3339);
        match event {
            Event::Valid { next } => {
                entry.state = ManagedState::Valid;
                entry.next_order = Some(rfc3339(next));
                entry.last_error = None;
                entry.failed_step = None;
            }
            Event::Ordering => {
                entry.next_order = Some(rfc3339(SystemTime::now()));
                if entry.state != ManagedState::Failing {
                    entry.state = if not_after.is_some() {
                        ManagedState::Valid
                    } else {
                        ManagedState::Pending
                    };
                }
            }
            Event::Failed { retry, error, step } => {
                entry.state = ManagedState::Failing;
                entry.next_order = Some(rfc3339(retry));
                entry.last_error = Some(error);
                entry.failed_step = step;
            }
        }
    }

    /// Keeps only the certificates for these sets of names (a reload may drop some).
    #[cfg(feature = "acme")]
    pub(crate) fn retain(&self, wanted: &[Vec<String>]) {
        let mut all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        all.retain(|names, _| wanted.contains(names));
    }

    /// Every managed certificate, ordered by names.
    pub fn list(&self) -> Vec<ManagedCertificate> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }
}
