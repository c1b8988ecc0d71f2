//! What one HTTP connection is doing, as far as its limits care: requests open, when the last
//! one ended, whether a request head has started, whether a response waits on the client, and how
//! many response bytes it holds unsent. The connection's IO, its service and its response bodies
//! report here; [`Activity::deadline`] says which limit runs out next.
//!
//! Nothing here wakes the watchdog: every deadline that can appear lies at least the shortest
//! timeout after the event that makes it, so a watchdog that looks again at least that often
//! never misses one (see `HttpServer::serve`). That keeps the request path to a few uncontended
//! lock operations, with no timer to re-arm.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::Duration;

use tokio::time::Instant;

use super::limits::HttpLimits;

/// Why a connection's time ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// No request arrived after the handshake.
    FirstRequest,
    /// A request head started but did not finish (HTTP/1).
    RequestHeader,
    /// No request open for the idle timeout.
    Idle,
    /// A response waited on a client that took nothing.
    Send,
}

impl Expiry {
    /// Whether the connection may be closed gracefully (no request is half-way).
    pub(crate) fn graceful(self) -> bool {
        matches!(self, Self::FirstRequest | Self::Idle)
    }

    /// The setting that ran out, as configured.
    pub(crate) fn setting(self) -> &'static str {
        match self {
            Self::FirstRequest => "first_request_timeout",
            Self::RequestHeader => "request_header_timeout",
            Self::Idle => "idle_timeout",
            Self::Send => "send_timeout",
        }
    }
}

/// Shared by the connection's IO, service, bodies and watchdog.
pub(crate) struct Activity {
    state: Mutex<State>,
    budget: usize,
}

struct State {
    established: Instant,
    /// HTTP/2, seen from the client's preface.
    http2: bool,
    requests: u64,
    open: usize,
    last_end: Instant,
    /// When bytes of a request head arrived with no request open (HTTP/1).
    head_started: Option<Instant>,
    /// Response bodies that produced data (or were made) and have not been asked for more.
    waiting_bodies: usize,
    /// The last write could not proceed.
    write_blocked: bool,
    /// Since when a response has waited on the client without any byte written.
    stalled_since: Instant,
    /// Response bytes produced and not yet written.
    unsent: usize,
    /// Bodies waiting for `unsent` to fall below the budget.
    budget_waiters: Vec<Waker>,
}

impl State {
    fn stalled(&self) -> bool {
        self.waiting_bodies > 0 || self.write_blocked
    }
}

impl Activity {
    pub(crate) fn new(budget: usize) -> Self {
        let now = Instant::now();
        Self {
            state: Mutex::new(State {
                established: now,
                http2: false,
                requests: 0,
                open: 0,
                last_end: now,
                head_started: None,
                waiting_bodies: 0,
                write_blocked: false,
                stalled_since: now,
                unsent: 0,
                budget_waiters: Vec::new(),
            }),
            budget,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The client speaks HTTP/2 (its preface arrived).
    pub(crate) fn http2(&self) {
        self.lock().http2 = true;
    }

    /// Bytes arrived from the client.
    pub(crate) fn read(&self) {
        let mut state = self.lock();
        if !state.http2 && state.open == 0 && state.requests > 0 && state.head_started.is_none() {
            state.head_started = Some(Instant::now());
        }
    }

    /// `n` bytes were written toward the client (`0`: the write had to wait).
    pub(crate) fn wrote(&self, n: usize) {
        let mut state = self.lock();
        if n == 0 {
            if !state.write_blocked {
                if !state.stalled() {
                    state.stalled_since = Instant::now();
                }
                state.write_blocked = true;
            }
            return;
        }
        state.write_blocked = false;
        if state.stalled() {
            state.stalled_since = Instant::now();
        }
        state.unsent = state.unsent.saturating_sub(n);
        if state.unsent < self.budget {
            for waker in state.budget_waiters.drain(..) {
                waker.wake();
            }
        }
    }

    /// A request head is complete and handed to the service.
    pub(crate) fn request_started(&self) {
        let mut state = self.lock();
        state.requests += 1;
        state.open += 1;
        state.head_started = None;
    }

    /// Whether any request has arrived.
    pub(crate) fn has_requested(&self) -> bool {
        self.lock().requests > 0
    }

    /// A request's response is done (or abandoned).
    pub(crate) fn request_ended(&self) {
        let mut state = self.lock();
        state.open = state.open.saturating_sub(1);
        state.last_end = Instant::now();
    }

    /// A response body now waits for the connection to ask it for data.
    pub(crate) fn body_waiting(&self) {
        let mut state = self.lock();
        if !state.stalled() {
            state.stalled_since = Instant::now();
        }
        state.waiting_bodies += 1;
    }

    /// The connection asked a waiting body for more.
    pub(crate) fn body_taken(&self) {
        let mut state = self.lock();
        state.waiting_bodies = state.waiting_bodies.saturating_sub(1);
    }

    /// Whether a body may produce more now; if not, `waker` is woken once it may.
    pub(crate) fn may_produce(&self, waker: &Waker) -> bool {
        let mut state = self.lock();
        if state.unsent < self.budget {
            return true;
        }
        if !state.budget_waiters.iter().any(|w| w.will_wake(waker)) {
            state.budget_waiters.push(waker.clone());
        }
        false
    }

    /// A body produced `n` bytes.
    pub(crate) fn produced(&self, n: usize) {
        let mut state = self.lock();
        state.unsent = state.unsent.saturating_add(n);
    }

    /// The next limit to run out, and when; `None` while the application has the next move.
    pub(crate) fn deadline(&self, limits: &HttpLimits) -> Option<(Instant, Expiry)> {
        let state = self.lock();
        let mut next: Option<(Instant, Expiry)> = None;
        let mut consider = |at: Instant, expiry: Expiry| {
            if next.is_none_or(|(soonest, _)| at < soonest) {
                next = Some((at, expiry));
            }
        };
        if state.open == 0 {
            if state.requests == 0 {
                consider(
                    state.established + limits.first_request_timeout,
                    Expiry::FirstRequest,
                );
            } else {
                consider(state.last_end + limits.idle_timeout, Expiry::Idle);
            }
            if let Some(started) = state.head_started {
                consider(
                    started + limits.request_header_timeout,
                    Expiry::RequestHeader,
                );
            }
        }
        if state.stalled() {
            consider(state.stalled_since + limits.send_timeout, Expiry::Send);
        }
        next
    }
}

/// How long a connection closed for a timeout still gets to say goodbye (GOAWAY, close_notify).
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> HttpLimits {
        HttpLimits {
            first_request_timeout: Duration::from_secs(1),
            request_header_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(3),
            send_timeout: Duration::from_secs(4),
            ..HttpLimits::default()
        }
    }

    #[test]
    fn each_phase_has_its_deadline() {
        let start = Instant::now();
        let activity = Activity::new(10);
        // Whole seconds from the start: every step below takes far less than one.
        let expiry = |a: &Activity| {
            a.deadline(&limits())
                .map(|(at, e)| (Duration::from_secs((at - start).as_secs()), e))
        };
        assert_eq!(
            expiry(&activity),
            Some((Duration::from_secs(1), Expiry::FirstRequest))
        );
        activity.read();
        activity.request_started();
        assert_eq!(expiry(&activity), None, "the application has the move");
        activity.body_waiting();
        assert_eq!(
            expiry(&activity),
            Some((Duration::from_secs(4), Expiry::Send))
        );
        activity.body_taken();
        activity.request_ended();
        assert_eq!(
            expiry(&activity),
            Some((Duration::from_secs(3), Expiry::Idle))
        );
        activity.read();
        assert_eq!(
            expiry(&activity),
            Some((Duration::from_secs(2), Expiry::RequestHeader))
        );
    }

    #[test]
    fn the_budget_holds_bodies_back_until_bytes_are_written() {
        let activity = Activity::new(10);
        let waker = std::task::Waker::noop();
        assert!(activity.may_produce(waker));
        activity.produced(12);
        assert!(!activity.may_produce(waker));
        activity.wrote(5);
        assert!(activity.may_produce(waker));
    }
}
