//! One order: authorizations answered by TLS-ALPN-01 through the context's challenge store, a
//! CSR for a fresh ECDSA P-256 key, and the chain the CA issues.

use std::sync::Arc;
use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewOrder, OrderStatus, RetryPolicy,
};

use super::fleet::{Fleet, Pending};
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
    Local(String),
}

/// How long the CA may take to validate and to issue.
const VALIDATION_POLICY: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(250))
    .backoff(1.5)
    .timeout(Duration::from_secs(60));

/// Orders a certificate for `names`, validated by HTTP-01 when `http01` (the listener is
/// there), TLS-ALPN-01 otherwise; the challenges it publishes here are withdrawn whatever
/// the end (those announced to the `fleet`, by the caller).
pub(crate) async fn issue(
    account: &Account,
    names: &[String],
    challenges: &ChallengeStore,
    provider: &Arc<rustls::crypto::CryptoProvider>,
    fleet: Option<&Fleet>,
    http01: bool,
) -> Result<Issued, OrderError> {
    let published = Published {
        challenges,
        names: names.to_vec(),
    };
    let identifiers: Vec<Identifier> = names.iter().cloned().map(Identifier::Dns).collect();
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization?;
        let name = authorization.identifier().to_string();
        match authorization.status {
            AuthorizationStatus::Valid => continue,
            AuthorizationStatus::Pending => {}
            status => return Err(OrderError::Authorization { name, status }),
        }
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
    let status = order.poll_ready(&VALIDATION_POLICY).await?;
    if status != OrderStatus::Ready {
        let problem = order.state().error.clone();
        return Err(OrderError::Order { status, problem });
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
    drop(published);
    Ok(Issued {
        chain_pem,
        key_pem: key.serialize_pem(),
    })
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
