//! When a stored certificate is due: inside the window the CA suggests where its directory
//! offers ACME Renewal Information (RFC 9773), else when a third of its lifetime is left. Both
//! pick a point by this process's jitter, so a fleet does not renew in step.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use instant_acme::{Account, CertificateIdentifier};
use tokio::time::Instant;

use crate::config::AcmeCertificate;
use crate::tls::{CertSummary, Identity};

/// How long an answer of the renewal information endpoint is kept, at least and at most,
/// whatever its Retry-After says (RFC 9773 section 4.3: a minute keeps a CA with a short
/// Retry-After from being asked every pass; six hours keeps a changed window from going
/// unseen for long).
const ARI_RECHECK: (Duration, Duration) = (Duration::from_secs(60), Duration::from_secs(6 * 3600));

/// What the CA last suggested for a certificate.
struct Suggested {
    /// The certificate it was about (`AKI.serial`).
    id: CertificateIdentifier<'static>,
    /// The point chosen in its window.
    due: SystemTime,
    /// When to ask again.
    refresh: Instant,
}

/// The renewal windows the CA suggested, by certificate names.
#[derive(Default)]
pub(super) struct Schedule {
    suggested: HashMap<Vec<String>, Suggested>,
}

/// When `certificate`'s stored one is due, and what an order replacing it names.
pub(super) struct Due {
    /// How long until it is due (`None`: now).
    pub(super) wait: Option<Duration>,
    /// The certificate an order replaces (RFC 9773 section 5), when the CA spoke of it.
    pub(super) replaces: Option<CertificateIdentifier<'static>>,
}

impl Schedule {
    /// When `stored` (the certificate stored for `certificate`) is due: by the CA's window
    /// when `account`'s directory offers renewal information and answers, else by its lifetime.
    pub(super) async fn due(
        &mut self,
        certificate: &AcmeCertificate,
        stored: Option<&Identity>,
        account: Option<&Account>,
        jitter: f64,
    ) -> Due {
        let local = Due {
            wait: lifetime_wait(certificate, stored.map(Identity::summary), jitter),
            replaces: None,
        };
        let (Some(identity), Some(account)) = (stored, account) else {
            return local;
        };
        // A missing or unusable certificate, or one lacking a name, is due now anyway.
        if local.wait.is_none() || identity.is_pending() {
            return local;
        }
        let Ok(id) = CertificateIdentifier::try_from(identity.leaf()) else {
            // No authority key identifier (not from an ACME CA): the lifetime decides.
            return local;
        };
        let id = id.into_owned();
        if let Some(known) = self.suggested.get(&certificate.names) {
            if known.id == id && known.refresh > Instant::now() {
                return Due {
                    wait: known.due.duration_since(SystemTime::now()).ok(),
                    replaces: Some(id),
                };
            }
        }
        match account.renewal_info(&id).await {
            Ok((info, retry_after)) => {
                let window = &info.suggested_window;
                let due = in_window(window.start.into(), window.end.into(), jitter);
                let recheck = retry_after.clamp(ARI_RECHECK.0, ARI_RECHECK.1);
                let shown = humantime::format_rfc3339_seconds(due).to_string();
                tracing::debug!(names = %certificate.names.join(","), due = %shown, "renewal window from the CA");
                self.suggested.insert(
                    certificate.names.clone(),
                    Suggested {
                        id: id.clone(),
                        due,
                        refresh: Instant::now() + recheck,
                    },
                );
                Due {
                    wait: due.duration_since(SystemTime::now()).ok(),
                    replaces: Some(id),
                }
            }
            // Unsupported by the directory, or not answering: today's schedule.
            Err(instant_acme::Error::Unsupported(_)) => local,
            Err(error) => {
                tracing::debug!(names = %certificate.names.join(","), %error, "no renewal window from the CA; renewing by the certificate's lifetime");
                local
            }
        }
    }

    /// Forgets what the CA said of `names`' certificate (replaced, or no longer wanted).
    pub(super) fn forget(&mut self, names: &[String]) {
        self.suggested.remove(names);
    }
}

/// A point of the window [`start`, `end`) chosen by `jitter` in [0, 1) (RFC 9773 section 4.2:
/// uniformly at random); `start` when the window is empty or reversed.
pub(super) fn in_window(start: SystemTime, end: SystemTime, jitter: f64) -> SystemTime {
    match end.duration_since(start) {
        Ok(width) => start + width.mul_f64(jitter.clamp(0.0, 1.0)),
        Err(_) => start,
    }
}

/// How long until `stored` is due by its lifetime: when a third of it is left, less `jitter`
/// (in [0, 1)) of a thirtieth of it. `None` when it is due now, or missing, or unusable, or
/// for other names than wanted.
pub(super) fn lifetime_wait(
    certificate: &AcmeCertificate,
    stored: Option<&CertSummary>,
    jitter: f64,
) -> Option<Duration> {
    let summary = stored?;
    let covers = certificate.names.iter().all(|name| {
        summary
            .dns_names
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name))
    });
    if !covers {
        return None;
    }
    let lifetime = summary.not_after.duration_since(summary.not_before).ok()?;
    let due = summary.not_before + lifetime.mul_f64(2.0 / 3.0) - lifetime.mul_f64(jitter / 30.0);
    due.duration_since(SystemTime::now()).ok()
}

#[cfg(test)]
mod tests {
    use super::in_window;
    use std::time::{Duration, SystemTime};

    #[test]
    fn the_renewal_point_is_inside_the_window_the_ca_suggests() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let end = start + Duration::from_secs(3600);
        assert_eq!(in_window(start, end, 0.0), start);
        assert_eq!(
            in_window(start, end, 0.5),
            start + Duration::from_secs(1800)
        );
        let late = in_window(start, end, 0.999_999);
        assert!(late < end && late > start + Duration::from_secs(3599));
        // A jitter out of range is clamped to the window's ends; a reversed one means its start.
        assert_eq!(in_window(start, end, 7.0), end);
        assert_eq!(in_window(end, start, 0.5), end);
    }

    #[test]
    fn a_window_in_the_past_means_now() {
        let start = SystemTime::now() - Duration::from_secs(7200);
        let end = SystemTime::now() - Duration::from_secs(3600);
        let due = in_window(start, end, 0.3);
        assert!(due.duration_since(SystemTime::now()).is_err(), "due now");
    }
}
