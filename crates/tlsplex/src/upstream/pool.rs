//! Backend pools: several backends behind one handler, a balance policy, and health.
//!
//! Each connection asks the pool for a backend: the pool orders its backends by the policy
//! (`round_robin`, `least_connections`, or `first` for failover in order), tries the ones in
//! service first and, only when none of those answers, the ones marked down, each within its
//! share of the connect budget. A backend that refuses or times out is marked down for
//! [`PASSIVE_DOWN_TIME`] (the passive check, nginx's `max_fails=1 fail_timeout=10s`); an
//! active check (a TCP connect, or a TLS handshake for TLS backends, every `interval`) takes a
//! backend out of service and puts it back, and while it says down the backend is not tried.
//!
//! What the pool knows of each backend (in service or not, connections, failures) is shared
//! across reloads: a reloaded pool adopts the state of the backends it keeps.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::backend::{Backend, BackendStream, BackendTls};
use super::probe::HttpProbe;
use crate::metrics::{BackendMetrics, BackendSeries};

/// How long a backend that failed a connect is passed over before it is tried again.
pub const PASSIVE_DOWN_TIME: Duration = Duration::from_secs(10);

/// Which backend of a pool a new connection goes to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Balance {
    /// Each backend in turn (the default, as in nginx and HAProxy).
    #[default]
    RoundRobin,
    /// The backend with the fewest open connections (ties in turn).
    LeastConnections,
    /// The first backend in service, in the order listed: failover.
    First,
}

impl Balance {
    /// The policy's name in a config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RoundRobin => "round_robin",
            Self::LeastConnections => "least_connections",
            Self::First => "first",
        }
    }
}

/// An active health check: every `interval`, a connect (and, for TLS backends, a handshake)
/// and, with `http`, a request whose answer must pass, all within `timeout`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HealthCheck {
    /// Time between checks.
    pub interval: Duration,
    /// Time one check may take.
    pub timeout: Duration,
    /// An HTTP request on the connection, its status checked.
    pub http: Option<HttpProbe>,
}

impl HealthCheck {
    /// A check every `interval`, each allowed `timeout`.
    pub fn new(interval: Duration, timeout: Duration) -> Self {
        Self {
            interval,
            timeout,
            http: None,
        }
    }

    /// The same check, with an HTTP request on each connection.
    pub fn http(mut self, probe: HttpProbe) -> Self {
        self.http = Some(probe);
        self
    }
}

/// Whether a backend takes new connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BackendHealth {
    /// In service.
    Up,
    /// A connect failed lately: tried only when no backend in service answers.
    Suspect,
    /// The active check fails: not tried.
    Down,
}

/// One backend's figures, for the admin API, the dashboard and metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BackendStats {
    /// The pool: the route's name, or the server's for its own handler.
    pub pool: String,
    /// `HOST:PORT` or `unix:PATH`.
    pub address: String,
    /// In service or not.
    pub health: BackendHealth,
    /// Connections open to it now.
    pub connections_active: usize,
    /// Connections made to it.
    pub connections_total: u64,
    /// Connects that failed (refused, timed out, TLS refused).
    pub failures: u64,
}

/// Milliseconds since the first call in this process: a clock atomics can hold.
fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// What the pool knows of one backend; shared by the pools of successive reloads. Its counts
/// are its metric series (standalone ones when the pool has no server).
#[derive(Debug)]
pub(crate) struct BackendState {
    backend: Backend,
    series: BackendSeries,
    /// Passed over until this time ([`now_ms`]), after a failed connect.
    suspect_until_ms: AtomicU64,
    /// The active check's verdict.
    checked_down: AtomicBool,
}

impl BackendState {
    fn new(backend: Backend, series: BackendSeries) -> Self {
        series.up.set(1);
        Self {
            backend,
            series,
            suspect_until_ms: AtomicU64::new(0),
            checked_down: AtomicBool::new(false),
        }
    }

    fn active(&self) -> usize {
        usize::try_from(self.series.active.get()).unwrap_or(0)
    }

    fn health(&self) -> BackendHealth {
        if self.checked_down.load(Ordering::Relaxed) {
            BackendHealth::Down
        } else if self.suspect_until_ms.load(Ordering::Relaxed) > now_ms() {
            BackendHealth::Suspect
        } else {
            BackendHealth::Up
        }
    }

    /// Takes the active check's verdict, logging a change.
    fn checked(&self, pool: &str, verdict: Result<(), String>) {
        let was_down = self.checked_down.swap(verdict.is_err(), Ordering::Relaxed);
        self.series.up.set(i64::from(verdict.is_ok()));
        match verdict {
            Err(reason) if !was_down => {
                self.series.failures.inc();
                tracing::warn!(pool, backend = %self.backend, reason, "health check failed: backend out of service");
            }
            Ok(()) if was_down => {
                self.suspect_until_ms.store(0, Ordering::Relaxed);
                tracing::info!(pool, backend = %self.backend, "health check passed: backend back in service");
            }
            _ => {}
        }
    }

    fn failed(&self) {
        self.series.failures.inc();
        self.series.up.set(0);
        let until = now_ms().saturating_add(PASSIVE_DOWN_TIME.as_millis() as u64);
        self.suspect_until_ms.store(until, Ordering::Relaxed);
    }
}

/// A connection's hold on its backend: counts it open until dropped.
#[derive(Debug)]
pub(crate) struct BackendLease {
    state: Arc<BackendState>,
}

impl BackendLease {
    fn new(state: Arc<BackendState>) -> Self {
        state.series.active.inc();
        state.series.connections.inc();
        state.series.up.set(1);
        Self { state }
    }
}

impl BackendLease {
    /// The backend this lease holds a connection to.
    pub(crate) fn backend(&self) -> &Backend {
        &self.state.backend
    }

    /// Where the backend's response times go.
    pub(crate) fn response_times(&self) -> prometheus_client::metrics::histogram::Histogram {
        self.state.series.response.clone()
    }
}

impl Drop for BackendLease {
    fn drop(&mut self) {
        self.state.series.active.dec();
    }
}

/// Why no backend of a pool took a connection: each one tried, and what it said.
#[derive(Debug)]
pub(crate) struct PoolExhausted {
    pub(crate) tried: Vec<(Backend, String)>,
}

impl fmt::Display for PoolExhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.tried.is_empty() {
            return f.write_str("every backend is down (active check)");
        }
        for (i, (backend, reason)) in self.tried.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{backend}: {reason}")?;
        }
        Ok(())
    }
}

/// Where a server's pool comes from: the server's metrics, and its predecessor (the pools of
/// the settings a reload replaces).
#[derive(Clone, Copy, Default)]
pub(crate) struct PoolOrigin<'a> {
    pub(crate) metrics: Option<&'a BackendMetrics>,
    pub(crate) previous: Option<&'a BackendPool>,
}

/// The backends of one handler, how to pick among them, and their health.
#[derive(Debug)]
pub(crate) struct BackendPool {
    name: Arc<str>,
    backends: Vec<Arc<BackendState>>,
    balance: Balance,
    next: AtomicUsize,
    health_check: Option<HealthCheck>,
    tls: Option<BackendTls>,
    checking: AtomicBool,
    unreachable: UnreachableLog,
}

impl BackendPool {
    /// A pool called `name` over `backends`, counting in `metrics`' series, adopting what
    /// `previous` knew of the ones it keeps.
    pub(crate) fn new(
        name: &str,
        (backends, balance, health_check): (&[Backend], Balance, Option<HealthCheck>),
        tls: Option<BackendTls>,
        PoolOrigin { metrics, previous }: PoolOrigin<'_>,
    ) -> Arc<Self> {
        let adopt = |backend: &Backend| {
            let series = || {
                metrics.map_or_else(BackendSeries::default, |m| {
                    m.series(name, &backend.to_string())
                })
            };
            previous
                .and_then(|pool| pool.backends.iter().find(|s| s.backend == *backend))
                .cloned()
                .unwrap_or_else(|| Arc::new(BackendState::new(backend.clone(), series())))
        };
        Arc::new(Self {
            name: name.into(),
            backends: backends.iter().map(adopt).collect(),
            balance,
            next: AtomicUsize::new(0),
            health_check,
            tls,
            checking: AtomicBool::new(false),
            unreachable: UnreachableLog::default(),
        })
    }

    /// The pool's name (its route's, or its server's).
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// `(pool, backend)` for each backend: its metric labels.
    pub(crate) fn labels(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.backends
            .iter()
            .map(|state| (self.name.to_string(), state.backend.to_string()))
    }

    /// Each backend's figures, in the order listed.
    pub(crate) fn stats(&self) -> Vec<BackendStats> {
        self.backends
            .iter()
            .map(|state| BackendStats {
                pool: self.name.to_string(),
                address: state.backend.to_string(),
                health: state.health(),
                connections_active: state.active(),
                connections_total: state.series.connections.get(),
                failures: state.series.failures.get(),
            })
            .collect()
    }

    /// The backends to try, in order: those in service by the policy (round robin and ties of
    /// least connections turn among these only, so a dead backend's turns spread evenly), then
    /// the suspect ones in the order listed.
    fn candidates(&self) -> Vec<&Arc<BackendState>> {
        let mut in_service = Vec::with_capacity(self.backends.len());
        let mut suspect = Vec::new();
        for state in &self.backends {
            match state.health() {
                BackendHealth::Up => in_service.push(state),
                BackendHealth::Suspect => suspect.push(state),
                BackendHealth::Down => {}
            }
        }
        if self.balance != Balance::First && in_service.len() > 1 {
            let turn = self.next.fetch_add(1, Ordering::Relaxed) % in_service.len();
            in_service.rotate_left(turn);
        }
        if self.balance == Balance::LeastConnections {
            // Stable: among equals, the turn's order holds.
            in_service.sort_by_key(|state| state.active());
        }
        in_service.extend(suspect);
        in_service
    }

    /// A connection to the first backend that answers, within `budget` in all; each try gets
    /// an equal share of what is left, so one backend that hangs cannot use up the budget.
    pub(crate) async fn connect(
        &self,
        budget: Duration,
    ) -> Result<(BackendStream, BackendLease), PoolExhausted> {
        let deadline = tokio::time::Instant::now() + budget;
        let candidates = self.candidates();
        let mut tried = Vec::new();
        for (i, state) in candidates.iter().enumerate() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let share = left / u32::try_from(candidates.len() - i).unwrap_or(u32::MAX);
            let attempt = BackendStream::connect(&state.backend, self.tls.as_ref());
            let reason = match tokio::time::timeout(share, attempt).await {
                Ok(Ok(stream)) => return Ok((stream, BackendLease::new(Arc::clone(state)))),
                Ok(Err(error)) => error.to_string(),
                Err(_) => format!("no connection within {share:?}"),
            };
            tracing::debug!(pool = %self.name, backend = %state.backend, reason, "backend connect failed; trying the next");
            state.failed();
            tried.push((state.backend.clone(), reason));
        }
        Err(PoolExhausted { tried })
    }

    /// Warns that no backend took a connection of `server`: at most once per
    /// [`UNREACHABLE_LOG_INTERVAL`], as a dead pool fails every connection and one warning per
    /// connection would let any client write the log.
    pub(crate) fn log_exhausted(&self, server: &str, exhausted: &PoolExhausted) {
        let Some(unlogged) = self.unreachable.due() else {
            return;
        };
        let backends: Vec<String> = self
            .backends
            .iter()
            .map(|s| s.backend.to_string())
            .collect();
        tracing::warn!(
            server,
            pool = %self.name,
            backend = backends.join(", "),
            reason = %exhausted,
            also_failed = unlogged,
            "backend unreachable; closing the client connection (logged at most every 5 s; also_failed counts the connections since the last line)"
        );
    }

    /// Starts the active check, once, if the pool has one and a runtime runs; it stops when
    /// the pool is dropped.
    pub(crate) fn start_checks(self: &Arc<Self>) {
        let Some(check) = self.health_check.clone() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.checking.swap(true, Ordering::Relaxed) {
            return;
        }
        runtime.spawn(run_checks(Arc::downgrade(self), check));
    }
}

async fn run_checks(pool: Weak<BackendPool>, check: HealthCheck) {
    let mut ticks = tokio::time::interval(check.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(pool) = pool.upgrade() else {
            return;
        };
        // Every backend at once: one that hangs delays no other's verdict.
        let mut probes = tokio::task::JoinSet::new();
        for state in &pool.backends {
            let (state, name, tls) = (state.clone(), pool.name.clone(), pool.tls.clone());
            let (timeout, http) = (check.timeout, check.http.clone());
            probes.spawn(async move {
                let probe = async {
                    let stream = BackendStream::connect(&state.backend, tls.as_ref())
                        .await
                        .map_err(|e| e.to_string())?;
                    match &http {
                        Some(http) => http.run(stream, &state.backend).await,
                        None => Ok(()),
                    }
                };
                let verdict = match tokio::time::timeout(timeout, probe).await {
                    Ok(verdict) => verdict,
                    Err(_) => Err(format!("no answer within {timeout:?}")),
                };
                state.checked(&name, verdict);
            });
        }
        drop(pool);
        while probes.join_next().await.is_some() {}
    }
}

/// How often an unreachable pool is logged.
const UNREACHABLE_LOG_INTERVAL: Duration = Duration::from_secs(5);

/// When an unreachable pool was last logged, and how many failures went unlogged since.
#[derive(Debug, Default)]
struct UnreachableLog {
    last: std::sync::Mutex<Option<Instant>>,
    unlogged: AtomicU64,
}

impl UnreachableLog {
    /// The failures to report with this one, or `None` if it is too soon to log again.
    fn due(&self) -> Option<u64> {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if last.is_some_and(|at| now - at < UNREACHABLE_LOG_INTERVAL) {
            self.unlogged.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *last = Some(now);
        Some(self.unlogged.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::{Backend, BackendPool, Balance, PoolOrigin};

    fn pool(balance: Balance) -> std::sync::Arc<BackendPool> {
        let backends: Vec<Backend> = ["a:1", "b:1", "c:1"]
            .iter()
            .map(|b| Backend::Tcp((*b).to_owned()))
            .collect();
        BackendPool::new("p", (&backends, balance, None), None, PoolOrigin::default())
    }

    fn order(pool: &BackendPool) -> Vec<String> {
        pool.candidates()
            .iter()
            .map(|s| s.backend.to_string())
            .collect()
    }

    #[test]
    fn each_policy_orders_the_backends_in_service_and_tries_suspect_ones_last() {
        let first = pool(Balance::First);
        assert_eq!(order(&first), ["a:1", "b:1", "c:1"]);
        first.backends[0].failed();
        assert_eq!(
            order(&first),
            ["b:1", "c:1", "a:1"],
            "failover, the suspect last"
        );

        let round = pool(Balance::RoundRobin);
        let turns: Vec<String> = (0..3).map(|_| order(&round)[0].clone()).collect();
        assert_eq!(turns, ["a:1", "b:1", "c:1"]);
        round.backends[1].failed();
        let mut turns: Vec<String> = (0..4).map(|_| order(&round)[0].clone()).collect();
        assert_ne!(turns[0], turns[1], "in turn");
        turns.sort();
        assert_eq!(
            turns,
            ["a:1", "a:1", "c:1", "c:1"],
            "the suspect takes no turn"
        );
        assert_eq!(order(&round).last().map(String::as_str), Some("b:1"));

        let least = pool(Balance::LeastConnections);
        least.backends[0].series.active.set(3);
        least.backends[1].series.active.set(1);
        least.backends[2].series.active.set(2);
        assert_eq!(order(&least), ["b:1", "c:1", "a:1"]);
        least.backends[1]
            .checked_down
            .store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(
            order(&least),
            ["c:1", "a:1"],
            "a backend the check says is down is not tried"
        );
    }
}
