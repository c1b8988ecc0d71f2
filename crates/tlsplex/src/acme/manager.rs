//! The manager loop: which certificates are due, under which order lock, what came of each
//! order, and the reload that serves a new certificate.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use instant_acme::Account;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::fleet::{self, Fleet, FleetError};
use super::storage::{write_private, Storage};
use super::{account, order, renewal};
use crate::config::{AcmeCertificate, AcmeOptions, RedisUrl};
use crate::control::{Controller, ReloadCause};
use crate::tls::managed::Event;
use crate::tls::{CertSummary, DnsStep};

/// The first wait after a failed order; it doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(2);
/// The longest wait between two tries of a failing order.
const MAX_RETRY: Duration = Duration::from_secs(3600);
/// How often the config's wanted certificates are looked at again (a reload may add names).
const RECHECK: Duration = Duration::from_secs(5);
/// How soon to look again at a certificate another process of the fleet is ordering.
const PEER_ORDERING: Duration = Duration::from_secs(1);

/// Keeps the ACME certificates of `controller`'s config issued and renewed until `stop`.
pub async fn run(controller: Controller, stop: CancellationToken) {
    let mut manager = Manager::default();
    let wake = Arc::new(Notify::new());
    loop {
        let next = match controller.acme().await {
            Some((options, wanted)) => {
                manager.follow_fleet(&controller, options.redis.as_ref(), &wake, &stop);
                manager.pass(&controller, &options, &wanted).await
            }
            None => {
                manager.follow_fleet(&controller, None, &wake, &stop);
                Instant::now() + RECHECK
            }
        };
        tokio::select! {
            () = tokio::time::sleep_until(next.min(Instant::now() + RECHECK)) => {}
            () = wake.notified() => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Who orders a due certificate.
enum Turn {
    /// This process did: what came of it.
    Ours(Result<Option<CertSummary>, Failed>),
    /// Another process holds the order lock.
    Peers,
    /// Another process stored a fresh certificate (ending then) while this one waited for the
    /// lock.
    PeerStored(Option<SystemTime>),
}

/// The certificate an order replaces (RFC 9773), when the CA spoke of it.
type Replaces = Option<instant_acme::CertificateIdentifier<'static>>;

/// Why an order failed: what to show, and the DNS-01 step it stopped at, if it was one.
struct Failed {
    error: String,
    step: Option<DnsStep>,
}

impl From<String> for Failed {
    fn from(error: String) -> Self {
        Self { error, step: None }
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
    /// The fleet store, and what stops its events follower.
    fleet: Option<(RedisUrl, Fleet, CancellationToken)>,
    /// Whether the fleet store failed at the last pass (one warning per outage).
    fleet_down: bool,
    /// The end of validity of each stored certificate as last seen (`None`: none usable).
    seen: HashMap<Vec<String>, Option<SystemTime>>,
    /// The renewal windows the CA suggested.
    schedule: renewal::Schedule,
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

    /// Connects to the fleet store `url` (and follows its events), or leaves the one no
    /// longer configured.
    fn follow_fleet(
        &mut self,
        controller: &Controller,
        url: Option<&RedisUrl>,
        wake: &Arc<Notify>,
        stop: &CancellationToken,
    ) {
        if self.fleet.as_ref().map(|(current, ..)| current) == url {
            return;
        }
        if let Some((_, _, follower)) = self.fleet.take() {
            follower.cancel();
        }
        self.account = None;
        let Some(url) = url else { return };
        match Fleet::new(url) {
            Ok(fleet) => {
                tracing::info!(redis = %url, "ACME state is shared with the fleet through Redis");
                let follower = stop.child_token();
                let ctx = controller.context();
                tokio::spawn(fleet.clone().follow(
                    ctx.acme_challenges().clone(),
                    ctx.crypto_provider().clone(),
                    wake.clone(),
                    follower.clone(),
                ));
                self.fleet = Some((url.clone(), fleet, follower));
            }
            Err(error) => tracing::error!(redis = %url, %error, "cannot use the fleet store"),
        }
    }

    /// The fleet store if one is configured, after sharing its session-ticket secret: whether
    /// it answered.
    async fn reach_fleet(&mut self, controller: &Controller) -> Option<Result<Fleet, String>> {
        let (url, fleet, _) = self.fleet.as_ref()?;
        let (url, fleet) = (url.clone(), fleet.clone());
        match fleet.ticket_secret().await {
            Ok(secret) => {
                if std::mem::take(&mut self.fleet_down) {
                    tracing::info!(redis = %url, "the fleet store answers again");
                }
                let keys = controller.context().ticket_keys();
                if keys.is_some_and(|keys| keys.share(secret)) {
                    tracing::info!("session tickets now use the fleet's shared secret");
                }
                Some(Ok(fleet))
            }
            Err(error) => {
                if !std::mem::replace(&mut self.fleet_down, true) {
                    tracing::warn!(redis = %url, %error, "the fleet store is unreachable; serving what is loaded, trying again");
                }
                Some(Err(format!("the fleet store is unreachable: {error}")))
            }
        }
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
        let fleet = self.reach_fleet(controller).await;
        let mut copied = false;
        for certificate in wanted {
            let who = (certificate.names.as_slice(), certificate.challenge);
            // A peer's certificate is taken whenever it arrives, even between two retries.
            if let Some(Ok(fleet)) = &fleet {
                if copy_from_fleet(fleet, certificate).await {
                    copied = true;
                    self.retries.remove(&certificate.names);
                }
            }
            if let Some((at, _)) = self.retries.get(&certificate.names) {
                if *at > Instant::now() {
                    next = next.min(*at);
                    continue;
                }
            }
            let stored = stored_identity(certificate);
            let not_after = stored.as_ref().map(|s| s.summary().not_after);
            // Another process sharing the storage may have replaced it: serve the new one.
            if self
                .seen
                .insert(certificate.names.clone(), not_after)
                .is_some_and(|seen| seen != not_after)
            {
                copied = true;
            }
            let due = self
                .due(options, certificate, stored.as_ref(), &fleet)
                .await;
            if let Some(wait) = due.wait {
                next = next.min(Instant::now() + wait);
                let next = SystemTime::now() + wait;
                managed.record(who, not_after, Event::Valid { next });
                continue;
            }
            managed.record(who, not_after, Event::Ordering);
            let order = (certificate, not_after, due.replaces);
            let result = match self.order_due(controller, options, order, &fleet).await {
                Turn::Ours(result) => result,
                Turn::Peers => {
                    // Another process orders it; its certificate is taken once stored.
                    next = next.min(Instant::now() + PEER_ORDERING);
                    continue;
                }
                Turn::PeerStored(not_after) => {
                    self.seen.insert(certificate.names.clone(), not_after);
                    copied = true;
                    continue;
                }
            };
            let step = result.as_ref().err().and_then(|failed| failed.step);
            let metrics = controller.context().metrics();
            metrics.acme_order(certificate.challenge, result.is_ok(), step);
            match result {
                Ok(issued) => {
                    self.retries.remove(&certificate.names);
                    let not_after = issued.as_ref().map(|s| s.not_after);
                    self.seen.insert(certificate.names.clone(), not_after);
                    self.schedule.forget(&certificate.names);
                    let wait = renewal::lifetime_wait(certificate, issued.as_ref(), self.jitter())
                        .unwrap_or_default();
                    let next = SystemTime::now() + wait;
                    managed.record(who, not_after, Event::Valid { next });
                    // Served at once, before the next order of this pass.
                    copied = false;
                    if let Err(error) = controller.reload(ReloadCause::Acme).await {
                        tracing::error!(%error, "the issued certificate could not be loaded");
                    }
                }
                Err(Failed { error, step }) => {
                    let (at, delay) = self
                        .retries
                        .entry(certificate.names.clone())
                        .or_insert((Instant::now(), FIRST_RETRY));
                    let challenge = certificate.challenge.as_str();
                    let failed_step = step.map(DnsStep::as_str);
                    tracing::warn!(names = %certificate.names.join(","), challenge, failed_step, %error, retry_in_s = delay.as_secs(), "ACME order failed; it will be tried again");
                    let retry = SystemTime::now() + *delay;
                    let event = Event::Failed { retry, error, step };
                    managed.record(who, not_after, event);
                    *at = Instant::now() + *delay;
                    next = next.min(*at);
                    *delay = (*delay * 2).min(MAX_RETRY);
                }
            }
        }
        if copied {
            if let Err(error) = controller.reload(ReloadCause::Acme).await {
                tracing::error!(%error, "a certificate from the fleet store could not be loaded");
            }
        }
        next
    }

    /// Orders `certificate` (due) under the order lock of the fleet store or of the storage
    /// folder, unless another process holds it or stored a fresh certificate meanwhile.
    async fn order_due(
        &mut self,
        controller: &Controller,
        options: &AcmeOptions,
        (certificate, seen, replaces): (&AcmeCertificate, Option<SystemTime>, Replaces),
        fleet: &Option<Result<Fleet, String>>,
    ) -> Turn {
        let fleet = match fleet {
            Some(Ok(fleet)) => Some(fleet),
            Some(Err(error)) => return Turn::Ours(Err(error.clone().into())),
            None => None,
        };
        // The folder's lock is released when `_folder_lock` drops, the fleet's below.
        let locked = match fleet {
            Some(fleet) => match fleet.lock(&certificate.names).await {
                Ok(lock) => lock.map(|lock| (Some(lock), None)),
                Err(e) => {
                    return Turn::Ours(Err(format!("the fleet store is unreachable: {e}").into()))
                }
            },
            None => match Storage::new(&options.storage).lock(&certificate.names, fleet::LOCK_TIME)
            {
                Ok(lock) => lock.map(|lock| (None, Some(lock))),
                Err(e) => {
                    let folder = options.storage.display();
                    let error = format!("cannot take the order lock in {folder}: {e}");
                    return Turn::Ours(Err(error.into()));
                }
            },
        };
        let Some((fleet_lock, _folder_lock)) = locked else {
            return Turn::Peers;
        };
        // The holder before us may have just stored one.
        if let Some(fleet) = fleet {
            copy_from_fleet(fleet, certificate).await;
        }
        let stored = stored_summary(certificate);
        let not_after = stored.as_ref().map(|s| s.not_after);
        let fresh = renewal::lifetime_wait(certificate, stored.as_ref(), self.jitter()).is_some();
        let turn = if not_after != seen && fresh {
            Turn::PeerStored(not_after)
        } else {
            let order = (certificate, replaces);
            Turn::Ours(self.order(controller, options, order, fleet).await)
        };
        if let (Some(fleet), Some(lock)) = (fleet, fleet_lock) {
            if let Err(error) = fleet.unlock(lock).await {
                tracing::warn!(%error, "cannot release an ACME order lock (it expires by itself)");
            }
        }
        turn
    }

    async fn order(
        &mut self,
        controller: &Controller,
        options: &AcmeOptions,
        (certificate, replaces): (&AcmeCertificate, Replaces),
        fleet: Option<&Fleet>,
    ) -> Result<Option<CertSummary>, Failed> {
        let account = self.account(options, fleet).await?;
        let names = certificate.names.join(",");
        let challenge = certificate.challenge.as_str();
        tracing::info!(%names, challenge, directory = %options.directory, "ordering a certificate");
        let started = std::time::Instant::now();
        let ctx = controller.context();
        let validation = order::Validation {
            challenge: certificate.challenge,
            dns01: options.dns01.as_ref(),
            challenges: ctx.acme_challenges(),
            provider: ctx.crypto_provider(),
            fleet,
        };
        let request = order::Request {
            names: &certificate.names,
            profile: certificate.profile.as_deref(),
            replaces,
        };
        let issued = order::issue(&account, request, &validation).await;
        if let Some(fleet) = fleet {
            for name in &certificate.names {
                if let Err(error) = fleet.withdraw_challenge(name).await {
                    tracing::debug!(%name, %error, "cannot withdraw a challenge from the fleet");
                }
            }
        }
        let issued = issued.map_err(|e| Failed {
            step: e.dns_step(),
            error: e.to_string(),
        })?;
        // The key first: a chain is only ever next to its own key once both are written.
        write_private(&certificate.key, issued.key_pem.as_bytes())
            .and_then(|()| write_private(&certificate.cert, issued.chain_pem.as_bytes()))
            .map_err(|e| {
                let file = certificate.cert.display();
                format!("cannot store the certificate in {file}: {e}")
            })?;
        if let Some(fleet) = fleet {
            fleet
                .store_certificate(&certificate.names, &issued.chain_pem, &issued.key_pem)
                .await
                .map_err(|e| format!("cannot store the certificate in the fleet store: {e}"))?;
        }
        let issued = stored_summary(certificate);
        let not_after = issued
            .as_ref()
            .map(|s| humantime::format_rfc3339_seconds(s.not_after).to_string());
        tracing::info!(%names, elapsed_ms = started.elapsed().as_millis() as u64, not_after = not_after.unwrap_or_default(), "certificate issued");
        Ok(issued)
    }

    /// When `stored` is due: by the CA's renewal window when its directory offers one (the
    /// account is loaded for asking), else by its lifetime.
    async fn due(
        &mut self,
        options: &AcmeOptions,
        certificate: &AcmeCertificate,
        stored: Option<&crate::tls::Identity>,
        fleet: &Option<Result<Fleet, String>>,
    ) -> renewal::Due {
        let jitter = self.jitter();
        let lifetime = renewal::lifetime_wait(certificate, stored.map(|s| s.summary()), jitter);
        // Only a served certificate not yet due by its lifetime may be due earlier by the CA.
        let account = match (lifetime, fleet) {
            (None, _) | (_, Some(Err(_))) => None,
            (Some(_), Some(Ok(fleet))) => self.account(options, Some(fleet)).await.ok(),
            (Some(_), None) => self.account(options, None).await.ok(),
        };
        let schedule = &mut self.schedule;
        schedule
            .due(certificate, stored, account.as_ref(), jitter)
            .await
    }

    /// The account for `options.directory`, loaded once.
    async fn account(
        &mut self,
        options: &AcmeOptions,
        fleet: Option<&Fleet>,
    ) -> Result<Account, String> {
        if let Some((directory, account)) = &self.account {
            if *directory == options.directory {
                return Ok(account.clone());
            }
        }
        let account = account::load_or_create(options, fleet).await?;
        self.account = Some((options.directory.clone(), account.clone()));
        Ok(account)
    }
}

/// Copies the fleet's certificate for `certificate` into the storage folder when it is newer
/// than the stored one and usable; whether it did.
async fn copy_from_fleet(fleet: &Fleet, certificate: &AcmeCertificate) -> bool {
    let shared = match fleet.certificate(&certificate.names).await {
        Ok(Some(shared)) => shared,
        Ok(None) => return false,
        Err(error @ FleetError::TooLarge { .. }) => {
            let names = certificate.names.join(",");
            tracing::warn!(%names, %error, "the fleet store holds an unusable certificate; ignored");
            return false;
        }
        Err(error) => {
            tracing::debug!(%error, "cannot read a certificate from the fleet store");
            return false;
        }
    };
    let (chain, key) = shared;
    let local = crate::files::read_limited(&certificate.cert, crate::files::MAX_MATERIAL_FILE);
    if local.as_deref().ok() == Some(chain.as_bytes()) {
        return false;
    }
    let names = certificate.names.join(",");
    let summary = match crate::tls::Identity::from_pem(chain.as_bytes(), key.as_bytes()) {
        Ok(identity) => identity.summary().clone(),
        Err(error) => {
            tracing::warn!(%names, %error, "the fleet store holds an unusable certificate; ignored");
            return false;
        }
    };
    let stored = stored_summary(certificate);
    if stored.is_some_and(|stored| stored.not_after >= summary.not_after) {
        return false;
    }
    let written = write_private(&certificate.key, key.as_bytes())
        .and_then(|()| write_private(&certificate.cert, chain.as_bytes()));
    match written {
        Ok(()) => {
            let not_after = humantime::format_rfc3339_seconds(summary.not_after).to_string();
            tracing::info!(%names, %not_after, "certificate copied from the fleet store");
            true
        }
        Err(error) => {
            tracing::error!(%names, %error, file = %certificate.cert.display(), "cannot store the fleet's certificate");
            false
        }
    }
}

/// The stored certificate, if it is there and parses.
fn stored_identity(certificate: &AcmeCertificate) -> Option<crate::tls::Identity> {
    crate::tls::Identity::from_pem_files(&certificate.cert, &certificate.key).ok()
}

/// What the stored certificate says, if it is there and parses.
fn stored_summary(certificate: &AcmeCertificate) -> Option<CertSummary> {
    stored_identity(certificate).map(|identity| identity.summary().clone())
}
