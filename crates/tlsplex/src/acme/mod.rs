//! Automatic certificates: one ACME account and one manager for every server of the process.
//!
//! [`run`] keeps each `{ acme = [...] }` certificate of the config current: a name with no
//! usable stored certificate is ordered at once (servers already listen, refusing handshakes
//! that would need it); a stored one is renewed when a third of its lifetime remains (with a
//! little jitter, so a fleet does not renew in step). Validation is TLS-ALPN-01, answered by
//! whichever server of the context the CA reaches ([`crate::tls::ChallengeStore`]). The chain
//! and key are written to the storage folder (atomically, 0600) and the config is reloaded, so
//! the new certificate is swapped in the way a reload swaps any certificate: no connection is
//! dropped. A failed order is logged with the CA's problem document and retried with
//! exponential backoff; nothing here stops the process.

mod order;
mod storage;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use instant_acme::{Account, ExternalAccountKey, NewAccount};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{AcmeCertificate, AcmeOptions};
use crate::control::{Controller, ReloadCause};
use crate::tls::managed::Event;
use crate::tls::CertSummary;
use storage::{write_private, Storage};

/// The first wait after a failed order; it doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(2);
/// The longest wait between two tries of a failing order.
const MAX_RETRY: Duration = Duration::from_secs(3600);
/// How often the config's wanted certificates are looked at again (a reload may add names).
const RECHECK: Duration = Duration::from_secs(5);

/// Keeps the ACME certificates of `controller`'s config issued and renewed until `stop`.
pub async fn run(controller: Controller, stop: CancellationToken) {
    let mut manager = Manager::default();
    loop {
        let next = match controller.acme().await {
            Some((options, wanted)) => manager.pass(&controller, &options, &wanted).await,
            None => Instant::now() + RECHECK,
        };
        tokio::select! {
            () = tokio::time::sleep_until(next.min(Instant::now() + RECHECK)) => {}
            () = stop.cancelled() => return,
        }
    }
}

#[derive(Default)]
struct Manager {
    /// The account, for the directory it belongs to.
    account: Option<(String, Account)>,
    /// Failing orders: when to try again, and the wait after that.
    retries: HashMap<Vec<String>, (Instant, Duration)>,
    /// This process's share of the renewal jitter, in [0, 1): drawn once, so a certificate's
    /// due time holds still from pass to pass, and differs between processes.
    jitter: Option<f64>,
}

impl Manager {
    fn jitter(&mut self) -> f64 {
        *self.jitter.get_or_insert_with(|| {
            let mut random = [0u8; 4];
            match aws_lc_rs::rand::fill(&mut random) {
                Ok(()) => f64::from(u32::from_be_bytes(random)) / (f64::from(u32::MAX) + 1.0),
                Err(_) => 0.0,
            }
        })
    }

    /// Orders what is due; returns when to look again.
    async fn pass(
        &mut self,
        controller: &Controller,
        options: &AcmeOptions,
        wanted: &[AcmeCertificate],
    ) -> Instant {
        let mut next = Instant::now() + RECHECK;
        let managed = controller.context().acme_certificates();
        managed.retain(&wanted.iter().map(|c| c.names.clone()).collect::<Vec<_>>());
        for certificate in wanted {
            if let Some((at, _)) = self.retries.get(&certificate.names) {
                if *at > Instant::now() {
                    next = next.min(*at);
                    continue;
                }
            }
            let stored = stored_summary(certificate);
            let not_after = stored.as_ref().map(|s| s.not_after);
            if let Some(wait) = renewal_wait(certificate, stored.as_ref(), self.jitter()) {
                next = next.min(Instant::now() + wait);
                let next = SystemTime::now() + wait;
                managed.record(&certificate.names, not_after, Event::Valid { next });
                continue;
            }
            managed.record(&certificate.names, not_after, Event::Ordering);
            let result = self.order(controller, options, certificate).await;
            controller.context().metrics().acme_order(result.is_ok());
            match result {
                Ok(issued) => {
                    self.retries.remove(&certificate.names);
                    let not_after = issued.as_ref().map(|s| s.not_after);
                    let wait = renewal_wait(certificate, issued.as_ref(), self.jitter())
                        .unwrap_or_default();
                    let next = SystemTime::now() + wait;
                    managed.record(&certificate.names, not_after, Event::Valid { next });
                    // Served at once, before the next order of this pass.
                    if let Err(error) = controller.reload(ReloadCause::Acme).await {
                        tracing::error!(%error, "the issued certificate could not be loaded");
                    }
                }
                Err(error) => {
                    let (at, delay) = self
                        .retries
                        .entry(certificate.names.clone())
                        .or_insert((Instant::now(), FIRST_RETRY));
                    tracing::warn!(names = %certificate.names.join(","), %error, retry_in_s = delay.as_secs(), "ACME order failed; it will be tried again");
                    let retry = SystemTime::now() + *delay;
                    let event = Event::Failed { retry, error };
                    managed.record(&certificate.names, not_after, event);
                    *at = Instant::now() + *delay;
                    next = next.min(*at);
                    *delay = (*delay * 2).min(MAX_RETRY);
                }
            }
        }
        next
    }

    async fn order(
        &mut self,
        controller: &Controller,
        options: &AcmeOptions,
        certificate: &AcmeCertificate,
    ) -> Result<Option<CertSummary>, String> {
        let account = self.account(options).await?;
        let names = certificate.names.join(",");
        tracing::info!(%names, directory = %options.directory, "ordering a certificate");
        let started = std::time::Instant::now();
        let ctx = controller.context();
        let issued = order::issue(
            &account,
            &certificate.names,
            ctx.acme_challenges(),
            ctx.crypto_provider(),
        )
        .await
        .map_err(|e| e.to_string())?;
        // The key first: a chain is only ever next to its own key once both are written.
        write_private(&certificate.key, issued.key_pem.as_bytes())
            .and_then(|()| write_private(&certificate.cert, issued.chain_pem.as_bytes()))
            .map_err(|e| {
                format!(
                    "cannot store the certificate in {}: {e}",
                    certificate.cert.display()
                )
            })?;
        let issued = stored_summary(certificate);
        let not_after = issued
            .as_ref()
            .map(|s| humantime::format_rfc3339_seconds(s.not_after).to_string());
        tracing::info!(%names, elapsed_ms = started.elapsed().as_millis() as u64, not_after = not_after.unwrap_or_default(), "certificate issued");
        Ok(issued)
    }

    /// The account for `options.directory`: stored credentials, or a new account (stored).
    async fn account(&mut self, options: &AcmeOptions) -> Result<Account, String> {
        if let Some((directory, account)) = &self.account {
            if *directory == options.directory {
                return Ok(account.clone());
            }
        }
        let storage = Storage::new(&options.storage);
        let builder = || match &options.directory_ca {
            Some(ca) => Account::builder_with_root(ca),
            None => Account::builder(),
        };
        let builder = builder().map_err(|e| format!("ACME client: {e}"))?;
        let stored = storage
            .account(&options.directory)
            .map_err(|e| format!("cannot read the ACME account: {e}"))?;
        let account = match stored {
            Some(credentials) => builder
                .from_credentials(credentials)
                .await
                .map_err(|e| format!("ACME account: {e}"))?,
            None => {
                let contact: Vec<&str> = options.contact.iter().map(String::as_str).collect();
                let eab = options
                    .eab
                    .as_ref()
                    .map(|(kid, key)| ExternalAccountKey::new(kid.clone(), key));
                let (account, credentials) = builder
                    .create(
                        &NewAccount {
                            contact: &contact,
                            terms_of_service_agreed: true,
                            only_return_existing: false,
                        },
                        options.directory.clone(),
                        eab.as_ref(),
                    )
                    .await
                    .map_err(|e| {
                        format!(
                            "cannot create the ACME account at {}: {e}",
                            options.directory
                        )
                    })?;
                storage
                    .save_account(&options.directory, &credentials)
                    .map_err(|e| format!("cannot store the ACME account: {e}"))?;
                tracing::info!(directory = %options.directory, id = account.id(), "ACME account created");
                account
            }
        };
        self.account = Some((options.directory.clone(), account.clone()));
        Ok(account)
    }
}

/// What the stored certificate says, if it is there and parses.
fn stored_summary(certificate: &AcmeCertificate) -> Option<CertSummary> {
    crate::tls::Identity::from_pem_files(&certificate.cert, &certificate.key)
        .ok()
        .map(|identity| identity.summary().clone())
}

/// How long until `stored` (the certificate stored for `certificate`) is due for renewal: when a
/// third of its lifetime is left, less `jitter` (in [0, 1)) of a thirtieth of it. `None` when it
/// is due now, or missing, or unusable, or for other names than wanted.
fn renewal_wait(
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
