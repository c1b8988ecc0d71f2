//! DNS-01 (RFC 8555 section 8.4): the TXT record `_acme-challenge.<name>` holding the key
//! authorization's digest, published by an RFC 2136 update (`rfc2136.rs`) or a hook command
//! (`hook.rs`), then asked of the zone's servers (`wire.rs`) until they all answer it, and
//! removed once the CA has looked.

mod hook;
mod rfc2136;
mod wire;

use std::fmt;

use hickory_proto::rr::Name;
use tokio::time::Instant;

use crate::config::{Dns01Options, DnsProvider};
use crate::tls::DnsStep;

/// A record to publish: its name (no final dot) and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TxtRecord {
    pub(crate) name: String,
    pub(crate) value: String,
}

impl TxtRecord {
    /// The record answering DNS-01 for `identifier` (`*.` of a wildcard left out).
    pub(crate) fn for_identifier(identifier: &str, value: String) -> Self {
        let base = identifier.strip_prefix("*.").unwrap_or(identifier);
        Self {
            name: format!("_acme-challenge.{}", base.to_ascii_lowercase()),
            value,
        }
    }
}

/// What is done to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Present,
    CleanUp,
}

impl Action {
    /// The hook's first argument.
    fn as_str(self) -> &'static str {
        match self {
            Self::Present => "present",
            Self::CleanUp => "cleanup",
        }
    }

    fn step(self) -> DnsStep {
        match self {
            Self::Present => DnsStep::Present,
            Self::CleanUp => DnsStep::CleanUp,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a DNS-01 step failed.
#[derive(Debug, thiserror::Error)]
#[error("DNS-01 {step} of {name}: {message}")]
pub(crate) struct DnsError {
    pub(crate) step: DnsStep,
    name: String,
    message: String,
}

/// Publishes, checks and removes DNS-01 records as `[acme.dns01]` says.
pub(crate) struct Dns01<'a>(pub(crate) &'a Dns01Options);

impl Dns01<'_> {
    /// Publishes `record`.
    pub(crate) async fn present(&self, record: &TxtRecord) -> Result<(), DnsError> {
        self.change(Action::Present, record).await
    }

    /// Removes `record`.
    pub(crate) async fn clean_up(&self, record: &TxtRecord) -> Result<(), DnsError> {
        self.change(Action::CleanUp, record).await
    }

    async fn change(&self, action: Action, record: &TxtRecord) -> Result<(), DnsError> {
        let done = match &self.0.provider {
            DnsProvider::Rfc2136(rfc2136) => {
                rfc2136::update(rfc2136, action, record, self.0.ttl).await
            }
            DnsProvider::Hook(hook) => hook::run(hook, action, record).await.map(|output| {
                if !output.is_empty() {
                    tracing::debug!(name = %record.name, %action, %output, "DNS-01 hook");
                }
            }),
        };
        done.map_err(|message| DnsError {
            step: action.step(),
            name: record.name.clone(),
            message,
        })
    }

    /// Waits until every check server answers every value of `records`, asking every
    /// `propagation_interval`, for at most `propagation_timeout`.
    pub(crate) async fn propagated(&self, records: &[TxtRecord]) -> Result<(), DnsError> {
        let options = self.0;
        if options.propagation_timeout.is_zero() {
            return Ok(());
        }
        let started = Instant::now();
        let deadline = started + options.propagation_timeout;
        loop {
            // Slow servers (each exchange may take 10 s) do not stretch the timeout.
            let left = deadline.saturating_duration_since(Instant::now());
            let checked = tokio::time::timeout(left, self.first_missing(records)).await;
            let Ok(missing) = checked else {
                return Err(DnsError {
                    step: DnsStep::Propagation,
                    name: records.first().map(|r| r.name.clone()).unwrap_or_default(),
                    message: format!(
                        "the check servers did not all answer within {}s",
                        options.propagation_timeout.as_secs_f64()
                    ),
                });
            };
            let Some((record, missing)) = missing else {
                tracing::info!(
                    records = records.len(),
                    servers = options.check_servers.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "DNS-01 records answered by the zone's servers"
                );
                return Ok(());
            };
            if Instant::now() + options.propagation_interval > deadline {
                return Err(DnsError {
                    step: DnsStep::Propagation,
                    name: record.name.clone(),
                    message: format!(
                        "{missing} after {}s",
                        options.propagation_timeout.as_secs_f64()
                    ),
                });
            }
            tokio::time::sleep(options.propagation_interval).await;
        }
    }

    /// The first record some check server does not answer yet, and what that server said.
    async fn first_missing<'r>(&self, records: &'r [TxtRecord]) -> Option<(&'r TxtRecord, String)> {
        for record in records {
            let name = match Name::from_ascii(format!("{}.", record.name)) {
                Ok(name) => name,
                Err(e) => return Some((record, e.to_string())),
            };
            for server in &self.0.check_servers {
                match wire::txt_values(*server, &name).await {
                    Ok(values) if values.contains(&record.value) => {}
                    Ok(_) => {
                        return Some((record, format!("{server} does not answer the value yet")))
                    }
                    Err(error) => return Some((record, error)),
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::TxtRecord;

    #[test]
    fn a_wildcard_and_its_apex_share_one_record_name() {
        let wildcard = TxtRecord::for_identifier("*.Example.com", "a".into());
        let apex = TxtRecord::for_identifier("example.com", "b".into());
        assert_eq!(wildcard.name, "_acme-challenge.example.com");
        assert_eq!(apex.name, wildcard.name);
    }

    /// `[acme.dns01]` with a hook nothing runs, checking `server`, waiting at most `timeout`.
    fn checking(server: std::net::SocketAddr, timeout: std::time::Duration) -> super::Dns01Options {
        super::Dns01Options {
            provider: super::DnsProvider::Hook(crate::config::DnsHook {
                command: vec!["true".to_owned()],
                timeout,
            }),
            check_servers: vec![server],
            propagation_timeout: timeout,
            propagation_interval: std::time::Duration::from_millis(100),
            ttl: 60,
        }
    }

    /// A check server that answers every connection with `answer` and then holds it open.
    async fn hostile(answer: &'static [u8]) -> std::net::SocketAddr {
        use tokio::io::AsyncWriteExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut tcp, _)) = listener.accept().await {
                let _ = tcp.write_all(answer).await;
                held.push(tcp);
            }
        });
        addr
    }

    #[tokio::test]
    async fn hostile_check_servers_cost_the_timeout_at_most() {
        let record = [TxtRecord::for_identifier("a.test", "value".into())];
        let limit = std::time::Duration::from_secs(1);
        for (answer, expected) in [
            // Accepts and never answers: the propagation timeout, not 10 s per exchange.
            (&b""[..], "did not all answer within 1s"),
            // Answers junk, or claims 64 KiB and sends four bytes.
            (&b"\x00\x04junk"[..], "a malformed answer"),
            (&b"\xff\xffjunk"[..], "did not all answer within 1s"),
        ] {
            let options = checking(hostile(answer).await, limit);
            let started = std::time::Instant::now();
            let error = super::Dns01(&options)
                .propagated(&record)
                .await
                .unwrap_err();
            let took = started.elapsed();
            assert_eq!(error.step, crate::tls::DnsStep::Propagation);
            assert!(error.to_string().contains(expected), "{error}");
            assert!(
                took < limit + std::time::Duration::from_millis(500),
                "{took:?}"
            );
        }
    }
}
