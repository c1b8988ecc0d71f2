//! The fleet store (`[acme] storage = "redis://…"`): what several tlsplex processes serving the
//! same names share through one Redis, so that each certificate is ordered once and whichever
//! process the CA reaches answers its challenge.
//!
//! - `tlsplex:acme:account:<directory digest>`: the account credentials (JSON); first writer wins.
//! - `tlsplex:acme:certificate:<names>`: a hash of the PEM `chain` and `key`. Every process copies
//!   it into its own storage folder and loads it from there, so a restart with Redis down still
//!   serves it.
//! - `tlsplex:acme:lock:<names>`: held (`SET NX PX`) by the process ordering that certificate;
//!   it expires after [`LOCK_TIME`] should that process die mid-order.
//! - `tlsplex:acme:events`: a channel announcing challenges (every process answers them, and
//!   acknowledges in `tlsplex:acme:ack:<id>` before the orderer lets the CA validate), withdrawn
//!   challenges, and newly stored certificates.
//! - `tlsplex:tickets:master`: the session-ticket master secret (64 hex digits), so every
//!   process resumes the others' sessions.
//!
//! Redis holds private keys: give it a password, TLS (`rediss://`) between machines, and no
//! other tenant. Every command is bounded by [`TIMEOUT`]; while Redis is unreachable each
//! process serves what it has loaded and the manager tries again.

use std::sync::Arc;
use std::time::Duration;

use instant_acme::AccountCredentials;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::RedisUrl;
use crate::tls::ChallengeStore;

/// How long one Redis command (or connection attempt) may take.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(5);
/// How long an order lock lasts: longer than an order may take (validation and issuance are
/// each bounded at 60 s).
pub(super) const LOCK_TIME: Duration = Duration::from_secs(180);
/// How long an orderer waits for the other processes to acknowledge a challenge.
const ACK_WAIT: Duration = Duration::from_secs(5);
/// The largest event accepted from the channel.
const MAX_EVENT: usize = 4096;
const EVENTS: &str = "tlsplex:acme:events";
const TICKET_SECRET: &str = "tlsplex:tickets:master";

/// Why the fleet store could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FleetError {
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("Redis did not answer within {} s", TIMEOUT.as_secs())]
    Timeout,
    #[error("Redis holds an unreadable {0}")]
    Corrupt(&'static str),
    #[error(
        "Redis holds a {what} of {bytes} bytes, more than the {} a file may have",
        crate::files::MAX_MATERIAL_FILE
    )]
    TooLarge { what: &'static str, bytes: u64 },
}

/// What goes through the events channel.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Message {
    /// Answer TLS-ALPN-01 validations of `name` with this key authorization digest (hex); say
    /// so in `ack`.
    Challenge {
        name: String,
        digest: String,
        ack: String,
    },
    /// Answer HTTP-01 requests for `token` (validating `name`); say so in `ack`.
    HttpChallenge {
        name: String,
        token: String,
        key_authorization: String,
        ack: String,
    },
    /// Stop answering validations of `name`.
    Withdrawn { name: String },
    /// A certificate for `names` was stored: copy it now rather than at the next pass.
    Certificate { names: Vec<String> },
}

/// A challenge to answer, as announced to the fleet.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pending<'a> {
    /// TLS-ALPN-01, with the SHA-256 digest of the key authorization.
    TlsAlpn { digest: &'a [u8] },
    /// HTTP-01.
    Http {
        token: &'a str,
        key_authorization: &'a str,
    },
}

/// A held order lock; released by [`Fleet::unlock`] or by expiry.
pub(crate) struct OrderLock {
    key: String,
    token: String,
}

/// This process's handle on the fleet store.
#[derive(Clone)]
pub(crate) struct Fleet {
    client: redis::Client,
    connection: ConnectionManager,
    /// Names this process in locks and acknowledgements.
    instance: String,
}

impl Fleet {
    /// A handle that connects on first use and reconnects by itself.
    pub(crate) fn new(url: &RedisUrl) -> Result<Self, FleetError> {
        let client = redis::Client::open(url.expose())?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let connection = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        Ok(Self {
            client,
            connection,
            instance: random_hex(8),
        })
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, FleetError> {
        let mut connection = self.connection.clone();
        match tokio::time::timeout(TIMEOUT, cmd.query_async(&mut connection)).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(FleetError::Timeout),
        }
    }

    /// The stored account for `directory`.
    pub(crate) async fn account(
        &self,
        directory: &str,
    ) -> Result<Option<AccountCredentials>, FleetError> {
        let json: Option<String> = self
            .query(redis::cmd("GET").arg(account_key(directory)))
            .await?;
        json.map(|json| serde_json::from_str(&json).map_err(|_| FleetError::Corrupt("account")))
            .transpose()
    }

    /// Stores `credentials` unless another process stored an account first; the account to use.
    pub(crate) async fn save_account(
        &self,
        directory: &str,
        credentials: AccountCredentials,
    ) -> Result<AccountCredentials, FleetError> {
        let json =
            serde_json::to_string(&credentials).map_err(|_| FleetError::Corrupt("account"))?;
        let stored: Option<String> = self
            .query(
                redis::cmd("SET")
                    .arg(account_key(directory))
                    .arg(json)
                    .arg("NX"),
            )
            .await?;
        match stored {
            Some(_) => Ok(credentials),
            None => self
                .account(directory)
                .await?
                .ok_or(FleetError::Corrupt("account")),
        }
    }

    /// The stored chain and key (PEM) for `names`, each bounded as a certificate file is: the
    /// lengths are asked first, so an oversized value is never read.
    pub(crate) async fn certificate(
        &self,
        names: &[String],
    ) -> Result<Option<(String, String)>, FleetError> {
        for what in ["chain", "key"] {
            let bytes: u64 = self
                .query(redis::cmd("HSTRLEN").arg(certificate_key(names)).arg(what))
                .await?;
            if bytes > crate::files::MAX_MATERIAL_FILE {
                return Err(FleetError::TooLarge { what, bytes });
            }
        }
        let (chain, key): (Option<String>, Option<String>) = self
            .query(
                redis::cmd("HMGET")
                    .arg(certificate_key(names))
                    .arg("chain")
                    .arg("key"),
            )
            .await?;
        Ok(chain.zip(key))
    }

    /// Stores a certificate for `names` and tells the other processes.
    pub(crate) async fn store_certificate(
        &self,
        names: &[String],
        chain: &str,
        key: &str,
    ) -> Result<(), FleetError> {
        let _: i64 = self
            .query(
                redis::cmd("HSET")
                    .arg(certificate_key(names))
                    .arg("chain")
                    .arg(chain)
                    .arg("key")
                    .arg(key),
            )
            .await?;
        self.publish(&Message::Certificate {
            names: names.to_vec(),
        })
        .await
        .map(|_| ())
    }

    /// Takes the order lock for `names`, or `None` when another process holds it.
    pub(crate) async fn lock(&self, names: &[String]) -> Result<Option<OrderLock>, FleetError> {
        let key = format!("tlsplex:acme:lock:{}", names_key(names));
        let token = format!("{}-{}", self.instance, random_hex(8));
        let millis = u64::try_from(LOCK_TIME.as_millis()).unwrap_or(u64::MAX);
        let taken: Option<String> = self
            .query(
                redis::cmd("SET")
                    .arg(&key)
                    .arg(&token)
                    .arg("NX")
                    .arg("PX")
                    .arg(millis),
            )
            .await?;
        Ok(taken.map(|_| OrderLock { key, token }))
    }

    /// Releases `lock` if it is still ours (it may have expired and been taken since).
    pub(crate) async fn unlock(&self, lock: OrderLock) -> Result<(), FleetError> {
        const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
                               return redis.call('DEL', KEYS[1]) else return 0 end";
        let _: i64 = self
            .query(
                redis::cmd("EVAL")
                    .arg(RELEASE)
                    .arg(1)
                    .arg(&lock.key)
                    .arg(&lock.token),
            )
            .await?;
        Ok(())
    }

    /// Asks every process to answer validations of `name` and waits (at most [`ACK_WAIT`])
    /// until each one listening says it does; how many did, of how many listening.
    pub(crate) async fn announce_challenge(
        &self,
        name: &str,
        pending: Pending<'_>,
    ) -> Result<(usize, usize), FleetError> {
        let ack = format!("tlsplex:acme:ack:{}", random_hex(12));
        let message = match pending {
            Pending::TlsAlpn { digest } => Message::Challenge {
                name: name.to_owned(),
                digest: hex(digest),
                ack: ack.clone(),
            },
            Pending::Http {
                token,
                key_authorization,
            } => Message::HttpChallenge {
                name: name.to_owned(),
                token: token.to_owned(),
                key_authorization: key_authorization.to_owned(),
                ack: ack.clone(),
            },
        };
        let listening = self.publish(&message).await?;
        let deadline = tokio::time::Instant::now() + ACK_WAIT;
        loop {
            let acknowledged: usize = self.query(redis::cmd("SCARD").arg(&ack)).await?;
            if acknowledged >= listening || tokio::time::Instant::now() >= deadline {
                return Ok((acknowledged, listening));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Tells every process to stop answering validations of `name`.
    pub(crate) async fn withdraw_challenge(&self, name: &str) -> Result<(), FleetError> {
        self.publish(&Message::Withdrawn {
            name: name.to_owned(),
        })
        .await
        .map(|_| ())
    }

    /// The fleet's session-ticket master secret; the first process to ask creates it.
    pub(crate) async fn ticket_secret(&self) -> Result<[u8; 32], FleetError> {
        let mut stored: Option<String> = self.query(redis::cmd("GET").arg(TICKET_SECRET)).await?;
        if stored.is_none() {
            let candidate = crate::tls::tickets::random_master()
                .map_err(|_| FleetError::Corrupt("random source"))?;
            let _: Option<String> = self
                .query(
                    redis::cmd("SET")
                        .arg(TICKET_SECRET)
                        .arg(hex(&candidate))
                        .arg("NX"),
                )
                .await?;
            // Whoever set it first, this is the fleet's.
            stored = self.query(redis::cmd("GET").arg(TICKET_SECRET)).await?;
        }
        stored
            .as_deref()
            .and_then(crate::tls::tickets::parse_master)
            .ok_or(FleetError::Corrupt("session-ticket secret"))
    }

    /// Publishes `message`; how many subscribers received it.
    async fn publish(&self, message: &Message) -> Result<usize, FleetError> {
        let json = serde_json::to_string(message).map_err(|_| FleetError::Corrupt("event"))?;
        self.query(redis::cmd("PUBLISH").arg(EVENTS).arg(json))
            .await
    }

    /// Follows the events channel until `stop`: answers announced challenges through
    /// `challenges`, and wakes `manager` when a peer stored a certificate. Reconnects after
    /// any failure, one warning per outage.
    pub(crate) async fn follow(
        self,
        challenges: Arc<ChallengeStore>,
        provider: Arc<rustls::crypto::CryptoProvider>,
        manager: Arc<Notify>,
        stop: CancellationToken,
    ) {
        let mut warned = false;
        loop {
            let error = tokio::select! {
                error = self.subscribed(&challenges, &provider, &manager, &mut warned) => error,
                () = stop.cancelled() => return,
            };
            if !warned {
                tracing::warn!(%error, "cannot follow the fleet's ACME events in Redis; retrying");
                warned = true;
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    /// One subscription, until it fails.
    async fn subscribed(
        &self,
        challenges: &ChallengeStore,
        provider: &Arc<rustls::crypto::CryptoProvider>,
        manager: &Notify,
        warned: &mut bool,
    ) -> FleetError {
        use futures_util::StreamExt as _;
        let connect = async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(EVENTS).await?;
            Ok::<_, FleetError>(pubsub)
        };
        let mut pubsub = match tokio::time::timeout(TIMEOUT, connect).await {
            Ok(Ok(pubsub)) => pubsub,
            Ok(Err(error)) => return error,
            Err(_) => return FleetError::Timeout,
        };
        if std::mem::take(warned) {
            tracing::info!("following the fleet's ACME events in Redis again");
        }
        // A peer wakes this process, so a certificate stored while it was away is copied now.
        manager.notify_one();
        loop {
            let received = tokio::time::timeout(LOCK_TIME, pubsub.on_message().next()).await;
            let message = match received {
                Ok(Some(message)) => message,
                Ok(None) => return FleetError::Corrupt("events subscription (it ended)"),
                // Quiet for long: make sure the connection is still there.
                Err(_) => {
                    match tokio::time::timeout(TIMEOUT, pubsub.ping::<redis::Value>()).await {
                        Ok(Ok(_)) => continue,
                        Ok(Err(error)) => return error.into(),
                        Err(_) => return FleetError::Timeout,
                    }
                }
            };
            let payload = message.get_payload_bytes();
            let parsed = (payload.len() <= MAX_EVENT)
                .then(|| serde_json::from_slice::<Message>(payload).ok())
                .flatten();
            let ack = match parsed {
                Some(Message::Challenge { name, digest, ack }) => {
                    let Some(digest) = unhex(&digest) else {
                        continue;
                    };
                    if let Err(error) = challenges.insert(&name, &digest, provider) {
                        tracing::warn!(%error, "a peer's ACME challenge cannot be answered here");
                        continue;
                    }
                    ack
                }
                Some(Message::HttpChallenge {
                    name,
                    token,
                    key_authorization,
                    ack,
                }) => {
                    challenges.insert_http(&name, &token, &key_authorization);
                    ack
                }
                Some(Message::Withdrawn { name }) => {
                    challenges.remove(&name);
                    continue;
                }
                Some(Message::Certificate { .. }) => {
                    manager.notify_one();
                    continue;
                }
                None => {
                    tracing::debug!("an unreadable event on the fleet's ACME channel");
                    continue;
                }
            };
            let millis = u64::try_from(LOCK_TIME.as_millis()).unwrap_or(u64::MAX);
            let mut pipe = redis::pipe();
            pipe.cmd("SADD").arg(&ack).arg(&self.instance).ignore();
            pipe.cmd("PEXPIRE").arg(&ack).arg(millis).ignore();
            let mut connection = self.connection.clone();
            match tokio::time::timeout(TIMEOUT, pipe.query_async::<()>(&mut connection)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => return error.into(),
                Err(_) => return FleetError::Timeout,
            }
        }
    }
}

fn names_key(names: &[String]) -> String {
    names
        .iter()
        .map(|n| n.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(",")
}

fn certificate_key(names: &[String]) -> String {
    format!("tlsplex:acme:certificate:{}", names_key(names))
}

fn account_key(directory: &str) -> String {
    let short = super::storage::directory_digest(directory);
    format!("tlsplex:acme:account:{short}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn random_hex(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    // A failed random source leaves zeros: still a valid (if predictable) lock token or name.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    hex(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_junk() {
        assert_eq!(
            unhex(&hex(&[0, 1, 0xab, 0xff])),
            Some(vec![0, 1, 0xab, 0xff])
        );
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }

    #[test]
    fn keys_ignore_case_and_keep_order() {
        let names = ["WWW.Example.com".to_owned(), "example.com".to_owned()];
        assert_eq!(
            certificate_key(&names),
            "tlsplex:acme:certificate:www.example.com,example.com"
        );
    }
}
