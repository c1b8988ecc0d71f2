//! One connection's task: the TLS handshake under a timeout, then the handler.
//! (The seed's `startHttpsThread` with `SSL_acceptConnection`.)

use crate::rate::RateTable;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::Poll;

use rustls::AlertDescription;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::handshake::{self, fatal_alert, handshake, Hello};
use super::outcome::CloseReason;
use super::settings::{ClientCheck, LiveSettings, Settings};
use crate::conn::{ConnInfo, TlsConn, TlsStream};
use crate::conn::{ConnectionBytes, MeteredTcp};
use crate::handler::{ConnectionHandler, PassthroughHandler, PassthroughPeers};
use crate::metrics::{FailureReason, ServerMetrics, ServerSeries};
use crate::tls::client_auth::ClientAuthMode;

/// What every connection of one server shares; built once at bind.
pub(super) struct ConnectionShared {
    pub(super) server: Arc<str>,
    pub(super) local_addr: SocketAddr,
    pub(super) settings: Arc<LiveSettings>,
    /// The server's stop token: handlers see it as [`TlsConn::shutdown`].
    pub(super) stop: CancellationToken,
    pub(super) metrics: Arc<ServerMetrics>,
    /// Whether the listener shares its address (`SO_REUSEPORT`).
    pub(super) reuse_port: bool,
    /// Requests per second per client address: the handle's table.
    pub(super) rates: Arc<RateTable>,
}

pin_project_lite::pin_project! {
    /// What a connection's task runs: [`serve`] until it ends or the server's grace period does
    /// (`abort`), then the connection's place is given back (the server's `active` gauge, the
    /// permits it holds). A struct rather than an `async` block: a block keeps the future it
    /// awaits twice, once as its capture and once as what it polls (the task was 1,792 bytes
    /// with a block, 640 with this and the small [`Established`], for the connection's life).
    pub(super) struct ConnectionTask<F, H> {
        // `None` once done: the connection (its socket) is closed before its place is given
        // back, so a connection limit never has one more open than it allows.
        #[pin]
        serve: Option<F>,
        #[pin]
        aborted: WaitForCancellationFutureOwned,
        series: Arc<ServerSeries>,
        held: Option<H>,
    }
}

impl<F: Future<Output = ()>, H> ConnectionTask<F, H> {
    pub(super) fn new(
        serve: F,
        abort: CancellationToken,
        series: Arc<ServerSeries>,
        held: Option<H>,
    ) -> Self {
        Self {
            serve: Some(serve),
            aborted: abort.cancelled_owned(),
            series,
            held,
        }
    }
}

impl<F: Future<Output = ()>, H> Future for ConnectionTask<F, H> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        let this = self.project();
        let mut serve = this.serve;
        let Some(running) = serve.as_mut().as_pin_mut() else {
            return Poll::Ready(());
        };
        if running.poll(cx).is_pending() {
            if this.aborted.poll(cx).is_pending() {
                return Poll::Pending;
            }
            tracing::debug!("closed at the end of the grace period");
        }
        serve.set(None);
        this.series.active.dec();
        this.held.take();
        Poll::Ready(())
    }
}

/// Handshakes and serves one accepted TCP connection; never fails outward: what goes wrong is
/// logged and costs this connection only.
pub(super) async fn serve(
    shared: Arc<ConnectionShared>,
    tcp: TcpStream,
    peer_addr: SocketAddr,
    accepted_at: Instant,
) {
    // TLS records are written whole; Nagle would only delay the handshake's last flight.
    let _ = tcp.set_nodelay(true);
    let settings = shared.settings.current();
    let bytes = Arc::new(ConnectionBytes::default());
    let tcp = MeteredTcp::new(tcp, shared.metrics.series.clone(), bytes.clone());
    let mut hello = Hello::default();
    // On the heap, and freed once the handshake is done: inline, the handshake's state (rustls'
    // Acceptor, then the connection mid-handshake) would size every connection's task for its
    // whole life (10.5 KiB each before, under 1 KiB now).
    let established = Box::pin(establish(
        &shared,
        &settings,
        tcp,
        peer_addr,
        accepted_at,
        &mut hello,
    ))
    .await;
    let (info, outcome) = match established {
        Ok(Established::Tls(stream, handler, info)) => {
            let conn = TlsConn {
                stream,
                info: info.clone(),
                shutdown: shared.stop.clone(),
                metrics: shared.metrics.clone(),
                strict_sni_host: settings.routes.get(hello.route).strict_sni_host,
                access_log: settings.access_log,
                request_rate: shared.rates.is_on().then(|| shared.rates.clone()),
            };
            let outcome = match CatchPanic(handler.serve(conn)).await {
                Ok(Ok(())) => CloseReason::Closed,
                Ok(Err(error)) => CloseReason::from_handler(error),
                Err(message) => {
                    tracing::error!(server = %shared.server, panic = %message, "handler panicked; only this connection is lost");
                    CloseReason::HandlerPanicked(message)
                }
            };
            tracing::debug!(close = %outcome, "connection closed");
            (Some(info), outcome)
        }
        Ok(Established::Passthrough(tcp, kept, passthrough)) => {
            // Boxed like a handler's future: inline, its relay state would size every
            // connection's task, terminated ones too (16.7 KiB per idle TLS connection instead
            // of 12.5 in bench/run.sh's measure).
            let relay = pass_through(&shared, tcp, kept, passthrough, peer_addr, &hello);
            let outcome = Box::pin(relay).await;
            tracing::debug!(close = %outcome, "connection closed");
            (None, outcome)
        }
        Err(reason) => (None, reason),
    };
    if settings.access_log {
        let route = settings.routes.get(hello.route).name.as_deref();
        access_log(
            &shared.server,
            peer_addr,
            (hello.sni.as_deref(), route),
            info.as_deref(),
            &bytes,
            accepted_at,
            &outcome,
        );
    }
}

/// Relays a passthrough route's connection; a client no backend takes gets an
/// `internal_error` alert (it has no TLS session with tlsplex to close).
async fn pass_through(
    shared: &ConnectionShared,
    mut tcp: MeteredTcp,
    kept: Vec<u8>,
    passthrough: &PassthroughHandler,
    peer_addr: SocketAddr,
    hello: &Hello,
) -> CloseReason {
    let peers = PassthroughPeers {
        server: &shared.server,
        client: peer_addr,
        local: shared.local_addr,
        sni: hello.sni.as_deref(),
    };
    match passthrough.serve(&mut tcp, kept, peers).await {
        Ok(true) => CloseReason::Closed,
        Ok(false) => {
            shared.metrics.series.backend_errors.inc();
            let _ = tcp
                .write_all(&fatal_alert(AlertDescription::InternalError))
                .await;
            CloseReason::NoBackend
        }
        Err(error) => CloseReason::from_handler(error),
    }
}

/// Runs a boxed future, turning a panic inside it into `Err(message)`: a handler that panics
/// costs its own connection, and the bookkeeping after it (permits, gauges, logs) still runs.
struct CatchPanic<F: ?Sized>(std::pin::Pin<Box<F>>);

impl<F: std::future::Future + ?Sized> std::future::Future for CatchPanic<F> {
    type Output = Result<F::Output, String>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let future = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| future.poll(cx))) {
            Ok(poll) => poll.map(Ok),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a non-text panic".to_owned());
                std::task::Poll::Ready(Err(message))
            }
        }
    }
}

/// A connection past its handshake, as [`serve`] takes it on. Small: the task keeps it (the
/// facts are on the heap already, where the handler shares them).
enum Established<'s> {
    Tls(TlsStream, &'s ConnectionHandler, Arc<ConnInfo>),
    Passthrough(MeteredTcp, Vec<u8>, &'s PassthroughHandler),
}

/// The TLS handshake under the timeout, counted and logged; `Err` carries the close reason.
async fn establish<'s>(
    shared: &ConnectionShared,
    settings: &'s Settings,
    tcp: MeteredTcp,
    peer_addr: SocketAddr,
    accepted_at: Instant,
    hello: &mut Hello,
) -> Result<Established<'s>, CloseReason> {
    let timeout = settings.handshake_timeout;
    let series = &shared.metrics.series;
    let handshake = handshake(shared, settings, tcp, hello);
    let (stream, handler) = match tokio::time::timeout(timeout, handshake).await {
        Ok(Ok(handshake::Handshaken::Tls(stream, handler))) => (stream, handler),
        Ok(Ok(handshake::Handshaken::Passthrough(tcp, kept, passthrough))) => {
            return Ok(Established::Passthrough(tcp, kept, passthrough));
        }
        Ok(Ok(handshake::Handshaken::Validated)) => {
            let name = hello.sni.as_deref().unwrap_or("");
            tracing::info!(name, "answered an ACME TLS-ALPN-01 validation");
            return Err(CloseReason::AcmeValidated);
        }
        Ok(Err(error)) => {
            series.failed(error.reason());
            error.log();
            return Err(CloseReason::HandshakeFailed(error));
        }
        Err(_) => {
            series.failed(FailureReason::Timeout);
            tracing::debug!(
                timeout_ms = timeout.as_millis() as u64,
                "handshake timed out"
            );
            return Err(CloseReason::HandshakeTimedOut);
        }
    };
    let route = settings.routes.get(hello.route);
    if let Some(check) = &route.client_check {
        if let Err(reason) = still_authorized(check, stream.get_ref().1) {
            series.failed(FailureReason::ClientCert);
            tracing::info!(%reason, "resumed session refused: the client certificate no longer passes");
            return Err(CloseReason::ResumedSessionRefused(reason));
        }
    }
    let info = ConnInfo::new(
        shared.server.clone(),
        route.name.clone(),
        (shared.local_addr, peer_addr),
        stream.get_ref().1,
        accepted_at.elapsed(),
    );
    let metrics = &shared.metrics;
    metrics.series.handshakes.inc();
    if let Some(group) = info.key_exchange_group {
        metrics.groups.count(&group);
    }
    if info.resumed {
        metrics.series.resumed.inc();
    }
    metrics
        .series
        .duration
        .observe(info.handshake_duration.as_secs_f64());
    tracing::debug!(
        tls.version = %info.tls_version,
        tls.suite = %info.cipher_suite,
        tls.group = info.key_exchange_group.unwrap_or(""),
        tls.sni = info.sni.as_deref().unwrap_or(""),
        tls.alpn = info.alpn.as_deref().unwrap_or(""),
        tls.resumed = info.resumed,
        tls.client_cert = info.client_cert.as_ref().map_or("", |c| c.subject.as_str()),
        route = info.route.as_deref().unwrap_or(""),
        "handshake complete"
    );
    Ok(Established::Tls(stream, handler, Arc::new(info)))
}

/// Whether a resumed session's client would pass a full handshake today: a certificate under
/// `required`, and one that today's CAs, CRLs and clock accept. rustls resumes without asking;
/// a full handshake has just been checked by the verifier itself.
fn still_authorized(
    check: &ClientCheck,
    connection: &rustls::ServerConnection,
) -> Result<(), String> {
    if connection.handshake_kind() != Some(rustls::HandshakeKind::Resumed) {
        return Ok(());
    }
    let Some((leaf, intermediates)) = connection
        .peer_certificates()
        .and_then(|chain| chain.split_first())
    else {
        return match check.mode {
            ClientAuthMode::Required => {
                Err("the session has no client certificate, and one is required".to_owned())
            }
            _ => Ok(()),
        };
    };
    check
        .verifier
        .verify_client_cert(leaf, intermediates, rustls::pki_types::UnixTime::now())
        .map(|_| ())
        .map_err(|error| error.to_string())
}

/// One line per connection, at info, target `tlsplex::access`.
fn access_log(
    server: &str,
    peer: SocketAddr,
    (sni, route): (Option<&str>, Option<&str>),
    info: Option<&ConnInfo>,
    bytes: &ConnectionBytes,
    accepted_at: Instant,
    close: &CloseReason,
) {
    let text = |f: fn(&ConnInfo) -> Option<&str>| info.and_then(f).unwrap_or("");
    tracing::info!(
        target: "tlsplex::access",
        server,
        client.addr = %peer,
        route = route.unwrap_or(""),
        tls.sni = sni.unwrap_or(""),
        tls.alpn = text(|i| i.alpn.as_deref()),
        tls.version = text(|i| Some(i.tls_version.as_str())),
        tls.suite = text(|i| Some(i.cipher_suite.as_str())),
        tls.group = text(|i| i.key_exchange_group),
        tls.resumed = info.is_some_and(|i| i.resumed),
        bytes.received = bytes.received.load(Ordering::Relaxed),
        bytes.sent = bytes.sent.load(Ordering::Relaxed),
        // Whole milliseconds with three decimals: 5.297, not 5.297465000000001.
        duration_ms = (accepted_at.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0,
        close = %close,
        "connection"
    );
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

    use super::*;
    use crate::metrics::Metrics;

    /// Sets its flag when dropped: a connection's socket.
    struct Socket(Arc<AtomicBool>);

    impl Drop for Socket {
        fn drop(&mut self) {
            self.0.store(true, SeqCst);
        }
    }

    /// A permit that records, when given back, whether the socket was closed by then.
    struct Permit {
        socket_closed: Arc<AtomicBool>,
        closed_first: Arc<AtomicBool>,
    }

    impl Drop for Permit {
        fn drop(&mut self) {
            self.closed_first
                .store(self.socket_closed.load(SeqCst), SeqCst);
        }
    }

    #[tokio::test]
    async fn a_connection_is_closed_before_its_place_is_given_back() {
        for aborted in [false, true] {
            let socket_closed = Arc::new(AtomicBool::new(false));
            let closed_first = Arc::new(AtomicBool::new(false));
            let socket = Socket(socket_closed.clone());
            let serve = async move {
                let _socket = socket;
                if aborted {
                    std::future::pending::<()>().await;
                }
            };
            let series = Metrics::default().server("a").series;
            series.active.inc();
            let abort = CancellationToken::new();
            let permit = Permit {
                socket_closed: socket_closed.clone(),
                closed_first: closed_first.clone(),
            };
            let task = tokio::spawn(ConnectionTask::new(
                serve,
                abort.clone(),
                series.clone(),
                Some(permit),
            ));
            if aborted {
                tokio::task::yield_now().await;
                assert!(!socket_closed.load(SeqCst), "closed before the abort");
                abort.cancel();
            }
            task.await.unwrap();
            assert!(closed_first.load(SeqCst), "aborted: {aborted}");
            assert_eq!(series.active.get(), 0, "aborted: {aborted}");
        }
    }
}
