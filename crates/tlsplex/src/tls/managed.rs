//! What the ACME manager knows of each certificate it keeps: its state, expiry, next renewal
//! and last error, for the admin API and the dashboard. Kept in the [`crate::Context`], so
//! anything holding the context can show it.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use serde::Serialize;

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
    /// Where it stands.
    pub state: ManagedState,
    /// The served certificate's end of validity (RFC 3339), once there is one.
    pub not_after: Option<String>,
    /// When the next order is due (RFC 3339).
    pub next_order: Option<String>,
    /// What the last failed order said.
    pub last_error: Option<String>,
}

/// Every managed certificate, by its names.
#[derive(Debug, Default)]
pub struct ManagedCertificates(Mutex<BTreeMap<Vec<String>, ManagedCertificate>>);

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// What the manager learnt of a certificate.
#[derive(Debug)]
pub(crate) enum Event {
    /// Served and not due: the next order is at `next`.
    Valid { next: SystemTime },
    /// An order starts now.
    Ordering,
    /// The order failed; the next try is at `retry`.
    Failed { retry: SystemTime, error: String },
}

impl ManagedCertificates {
    /// Records `event` for the certificate for `names`, whose served certificate ends at
    /// `not_after` (if there is one).
    pub(crate) fn record(&self, names: &[String], not_after: Option<SystemTime>, event: Event) {
        let mut all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = all
            .entry(names.to_vec())
            .or_insert_with(|| ManagedCertificate {
                names: names.to_vec(),
                state: ManagedState::Pending,
                not_after: None,
                next_order: None,
                last_error: None,
            });
        entry.not_after = not_after.map(rfc3339);
        match event {
            Event::Valid { next } => {
                entry.state = ManagedState::Valid;
                entry.next_order = Some(rfc3339(next));
                entry.last_error = None;
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
            Event::Failed { retry, error } => {
                entry.state = ManagedState::Failing;
                entry.next_order = Some(rfc3339(retry));
                entry.last_error = Some(error);
            }
        }
    }

    /// Keeps only the certificates for these sets of names (a reload may drop some).
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
