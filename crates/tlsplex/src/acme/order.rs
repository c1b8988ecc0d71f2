//! One order: authorizations answered by TLS-ALPN-01 or HTTP-01 through the context's challenge
//! store, or by DNS-01 records; a CSR for a fresh ECDSA P-256 key, and the chain the CA issues.

use std::sync::Arc;
use std::time::Duration;

use instant_acme::{
    Account, AuthorizationHandle, AuthorizationStatus, ChallengeType, Identifier, NewOrder, Order,
    OrderStatus, RetryPolicy,
};

use super::dns01::{Dns01, DnsError, TxtRecord};
use super::fleet::{Fleet, Pending};
use crate::config::{Challenge, Dns01Options};
use crate::tls::ChallengeStore;

/// What an issuance produced: the PEM chain and the PEM private key.
pub(crate) struct Issued {
    pub(crate) chain_pem: String,
    pub(crate) key_pem: String,
}

/// Why an order did not produce a certificate; the CA's problem document when it sent one.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OrderError {
    #[error("{0}")]
    Acme(#[from] instant_acme::Error),
    #[error("the CA offers no {kind} challenge for {name}")]
    NoChallenge { kind: &'static str, name: String },
    #[error("authorization for {name} is {status:?}")]
    Authorization {
        name: String,
        status: AuthorizationStatus,
    },
    #[error("the order ended {status:?}{}", .problem.as_ref().map(|p| format!(": {p}")).unwrap_or_default())]
    Order {
        status: OrderStatus,
        problem: Option<instant_acme::Problem>,
    },
    #[error("{0}")]
    Dns(#[from] DnsError),
    #[error("{0}")]
    Local(String),
}

impl OrderError {
    /// The DNS-01 step it stopped at, when it was one.
    pub(crate) fn dns_step(&self) -> Option<crate::tls::DnsStep> {
        match self {
            Self::Dns(error) => Some(error.step),
            _ => None,
        }
    }
}

/// How long the CA may take to validate and to issue.
const VALIDATION_POLICY: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(250))
    .backoff(1.5)
    .timeout(Duration::from_secs(60));

/// What is ordered.
pub(crate) struct Request<'a> {
    pub(crate) names: &'a [String],
    /// The certificate profile asked for (draft-ietf-acme-profiles), checked against the
    /// directory's list.
    pub(crate) profile: Option<&'a str>,
    /// The certificate this one replaces (RFC 9773 section 5).
    pub(crate) replaces: Option<instant_acme::CertificateIdentifier<'static>>,
}

/// How an order's names are validated, and what that needs.
pub(crate) struct Validation<'a> {
    pub(crate) challenge: Challenge,
    /// `[acme.dns01]` (needed for DNS-01).
    pub(crate) dns01: Option<&'a Dns01Options>,
    /// Where TLS-ALPN-01 and HTTP-01 answers are published for this process's listeners.
    pub(crate) challenges: &'a ChallengeStore,
    pub(crate) provider: &'a Arc<rustls::crypto::CryptoProvider>,
    /// The fleet, whose every process must answer TLS-ALPN-01 and HTTP-01.
    pub(crate) fleet: Option<&'a Fleet>,
}

/// Orders a certificate for `names`, validated as `validation` says; the challenges it
/// publishes are withdrawn whatever the end (DNS records removed; those announced to the
/// fleet, by the caller).
pub(crate) async fn issue(
    account: &Account,
    request: Request<'_>,
    validation: &Validation<'_>,
) -> Result<Issued, OrderError> {
    let names = request.names;
    let identifiers: Vec<Identifier> = names.iter().cloned().map(Identifier::Dns).collect();
    if let Some(profile) = request.profile {
        if !account.profiles().any(|offered| offered.name == profile) {
            let offered: Vec<&str> = account.profiles().map(|p| p.name).collect();
            let offered = match offered.is_empty() {
                true => "none".to_owned(),
                false => offered.join(", "),
            };
            return Err(OrderError::Local(format!(
                "the CA offers no certificate profile {profile:?} (it offers: {offered})"
            )));
        }
    }
    let new_order = || {
        let order = NewOrder::new(&identifiers);
        match request.profile {
            Some(profile) => order.profile(profile),
            None => order,
        }
    };
    let mut order = match request.replaces.clone() {
        Some(replaced) => match account.new_order(&new_order().replaces(replaced)).await {
            Ok(order) => order,
            // Already replaced, or unknown to the CA: a plain order then (as Certbot does).
            Err(error) => {
                tracing::debug!(%error, "the CA took no order naming the certificate it replaces; ordering without");
                account.new_order(&new_order()).await?
            }
        },
        None => account.new_order(&new_order()).await?,
    };
    match (validation.challenge, validation.dns01) {
        (Challenge::Dns01, Some(dns01)) => {
            let dns = Dns01(dns01);
            let mut published = Vec::new();
            let validated = validate_by_dns(&mut order, &dns, &mut published).await;
            // Always removed, also after a failure; a failed removal does not undo the order.
            for record in &published {
                if let Err(error) = dns.clean_up(record).await {
                    tracing::warn!(%error, "a DNS-01 record could not be removed; remove it by hand");
                }
            }
            validated?;
        }
        (Challenge::Dns01, None) => {
            return Err(OrderError::Local("dns-01 needs [acme.dns01]".to_owned()))
        }
        (challenge, _) => {
            let _published = Published {
                challenges: validation.challenges,
                names: names.to_vec(),
            };
            validate_here(&mut order, challenge == Challenge::Http01, validation).await?;
        }
    }
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| OrderError::Local(e.to_string()))?;
    let mut params = rcgen::CertificateParams::new(names.to_vec())
        .map_err(|e| OrderError::Local(e.to_string()))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params
        .serialize_request(&key)
        .map_err(|e| OrderError::Local(e.to_string()))?;
    order.finalize_csr(csr.der()).await?;
    let chain_pem = order.poll_certificate(&VALIDATION_POLICY).await?;
    Ok(Issued {
        chain_pem,
        key_pem: key.serialize_pem(),
    })
}

/// Answers each pending authorization by TLS-ALPN-01 (or HTTP-01) from this process (and the
/// fleet's), until the order is ready.
async fn validate_here(
    order: &mut Order,
    http01: bool,
    validation: &Validation<'_>,
) -> Result<(), OrderError> {
    let Validation {
        challenges,
        provider,
        fleet,
        ..
    } = *validation;
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization?;
        let Some(name) = pending(&authorization)? else {
            continue;
        };
        let (kind, label) = match http01 {
            true => (ChallengeType::Http01, "http-01"),
            false => (ChallengeType::TlsAlpn01, "tls-alpn-01"),
        };
        let mut challenge =
            authorization
                .challenge(kind)
                .ok_or_else(|| OrderError::NoChallenge {
                    kind: label,
                    name: name.clone(),
                })?;
        let key_authorization = challenge.key_authorization();
        let digest = key_authorization.digest();
        let token = challenge.token.clone();
        let pending = match http01 {
            true => {
                challenges.insert_http(&name, &token, key_authorization.as_str());
                Pending::Http {
                    token: &token,
                    key_authorization: key_authorization.as_str(),
                }
            }
            false => {
                challenges
                    .insert(&name, digest.as_ref(), provider)
                    .map_err(|e| OrderError::Local(e.to_string()))?;
                Pending::TlsAlpn {
                    digest: digest.as_ref(),
                }
            }
        };
        if let Some(fleet) = fleet {
            // Every process must answer before the CA connects to any of them.
            let (answering, listening) =
                fleet
                    .announce_challenge(&name, pending)
                    .await
                    .map_err(|e| {
                        OrderError::Local(format!("cannot share the challenge for {name}: {e}"))
                    })?;
            if answering < listening {
                tracing::warn!(%name, answering, listening, "not every process of the fleet confirmed the challenge in time; validation may reach one that cannot answer");
            }
        }
        challenge.set_ready().await?;
    }
    ready(order).await
}

/// Publishes a TXT record for each pending authorization (each added to `published` before it
/// is tried, so that it is removed whatever happens), waits until the zone's servers answer
/// them all, then tells the CA to look, until the order is ready.
async fn validate_by_dns(
    order: &mut Order,
    dns: &Dns01<'_>,
    published: &mut Vec<TxtRecord>,
) -> Result<(), OrderError> {
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization?;
        let Some(name) = pending(&authorization)? else {
            continue;
        };
        let challenge = authorization
            .challenge(ChallengeType::Dns01)
            .ok_or_else(|| OrderError::NoChallenge {
                kind: "dns-01",
                name: name.clone(),
            })?;
        let record = TxtRecord::for_identifier(&name, challenge.key_authorization().dns_value());
        published.push(record.clone());
        dns.present(&record).await?;
        tracing::info!(%name, record = %record.name, "DNS-01 record published");
    }
    dns.propagated(published).await?;
    // The second pass finds the same authorizations, now told to be checked.
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization?;
        if pending(&authorization)?.is_none() {
            continue;
        }
        if let Some(mut challenge) = authorization.challenge(ChallengeType::Dns01) {
            challenge.set_ready().await?;
        }
    }
    ready(order).await
}

/// The name of an authorization that still needs its challenge answered (`None`: valid
/// already); an error when it can no longer be.
fn pending(authorization: &AuthorizationHandle<'_>) -> Result<Option<String>, OrderError> {
    let name = authorization.identifier().to_string();
    match authorization.status {
        AuthorizationStatus::Valid => Ok(None),
        AuthorizationStatus::Pending => Ok(Some(name)),
        status => Err(OrderError::Authorization { name, status }),
    }
}

/// Waits for the CA to validate every authorization.
async fn ready(order: &mut Order) -> Result<(), OrderError> {
    let status = order.poll_ready(&VALIDATION_POLICY).await?;
    if status != OrderStatus::Ready {
        let problem = order.state().error.clone();
        return Err(OrderError::Order { status, problem });
    }
    Ok(())
}

/// Withdraws an order's challenges when dropped (issued, failed or cancelled).
struct Published<'a> {
    challenges: &'a ChallengeStore,
    names: Vec<String>,
}

impl Drop for Published<'_> {
    fn drop(&mut self) {
        for name in &self.names {
            self.challenges.remove(name);
        }
    }
}
