//! One connection's task: the TLS handshake under a timeout, then the handler.
//! (The seed's `startHttpsThread` with `SSL_acceptConnection`.)

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rustls::server::Acceptor;
use rustls::AlertDescription;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::StartHandshake;
use tokio_util::sync::CancellationToken;

use super::settings::{ClientCheck, LiveSettings, Settings};
use std::sync::atomic::Ordering;

use super::outcome::{CloseReason, HandshakeError};
use crate::conn::{ConnInfo, TlsConn, TlsStream};
use crate::conn::{ConnectionBytes, MeteredTcp};
use crate::metrics::{FailureReason, ServerMetrics};
use crate::tls::client_auth::ClientAuthMode;
use crate::tls::resumption::guarded_config;

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
}

/// A fatal alert record, in the clear (TLS 1.2 framing, as before any key is agreed).
fn fatal_alert(description: AlertDescription) -> [u8; 7] {
    [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, u8::from(description)]
}

/// The alert rustls sends for `error` when it drives a whole connection itself; its `Acceptor`
/// leaves some of them unsent (a record or handshake message that does not parse, a first
/// message that is not a ClientHello).
fn alert_for(error: &rustls::Error) -> AlertDescription {
    match error {
        rustls::Error::InappropriateMessage { .. }
        | rustls::Error::InappropriateHandshakeMessage { .. } => {
            AlertDescription::UnexpectedMessage
        }
        rustls::Error::InvalidMessage(invalid) => AlertDescription::from(*invalid),
        rustls::Error::PeerIncompatible(_) => AlertDescription::HandshakeFailure,
        rustls::Error::PeerMisbehaved(_) => AlertDescription::IllegalParameter,
        _ => AlertDescription::InternalError,
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
    let tcp = MeteredTcp::new(tcp, shared.metrics.traffic.clone(), bytes.clone());
    // On the heap, and freed once the handshake is done: inline, the handshake's state (rustls'
    // Acceptor, then the connection mid-handshake) would size every connection's task for its
    // whole life (10.5 KiB each before, under 1 KiB now).
    let established = Box::pin(establish(&shared, &settings, tcp, peer_addr, accepted_at)).await;
    let (info, outcome) = match established {
        Ok((stream, info)) => {
            let info = Arc::new(info);
            let conn = TlsConn {
                stream,
                info: info.clone(),
                shutdown: shared.stop.clone(),
                metrics: shared.metrics.clone(),
            };
            let outcome = match CatchPanic(settings.handler.serve(conn)).await {
                Ok(Ok(())) => CloseReason::Closed,
                Ok(Err(error)) => CloseReason::HandlerError(error),
                Err(message) => {
                    tracing::error!(server = %shared.server, panic = %message, "handler panicked; only this connection is lost");
                    CloseReason::HandlerPanicked(message)
                }
            };
            tracing::debug!(close = %outcome, "connection closed");
            (Some(info), outcome)
        }
        Err(reason) => (None, reason),
    };
    if settings.access_log {
        access_log(
            &shared.server,
            peer_addr,
            info.as_deref(),
            &bytes,
            accepted_at,
            &outcome,
        );
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

/// The TLS handshake under the timeout, counted and logged; `Err` carries the close reason.
async fn establish(
    shared: &ConnectionShared,
    settings: &Settings,
    tcp: MeteredTcp,
    peer_addr: SocketAddr,
    accepted_at: Instant,
) -> Result<(TlsStream, ConnInfo), CloseReason> {
    let timeout = settings.handshake_timeout;
    let failures = &shared.metrics.failures;
    let stream = match tokio::time::timeout(timeout, handshake(settings, tcp)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            failures.count(error.reason());
            error.log();
            return Err(CloseReason::HandshakeFailed(error));
        }
        Err(_) => {
            failures.count(FailureReason::Timeout);
            tracing::debug!(
                timeout_ms = timeout.as_millis() as u64,
                "handshake timed out"
            );
            return Err(CloseReason::HandshakeTimedOut);
        }
    };
    if let Some(check) = &settings.client_check {
        if let Err(reason) = still_authorized(check, stream.get_ref().1) {
            failures.count(FailureReason::ClientCert);
            tracing::info!(%reason, "resumed session refused: the client certificate no longer passes");
            return Err(CloseReason::ResumedSessionRefused(reason));
        }
    }
    let info = ConnInfo::new(
        shared.server.clone(),
        shared.local_addr,
        peer_addr,
        stream.get_ref().1,
        accepted_at.elapsed(),
    );
    let metrics = &shared.metrics;
    metrics.handshakes.inc();
    if let Some(group) = info.key_exchange_group {
        metrics.groups.count(group);
    }
    if info.resumed {
        metrics.resumed.inc();
    }
    metrics
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
        "handshake complete"
    );
    Ok((stream, info))
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
        tls.sni = text(|i| i.sni.as_deref()),
        tls.alpn = text(|i| i.alpn.as_deref()),
        tls.version = text(|i| Some(i.tls_version.as_str())),
        tls.suite = text(|i| Some(i.cipher_suite.as_str())),
        tls.group = text(|i| i.key_exchange_group),
        tls.resumed = info.is_some_and(|i| i.resumed),
        bytes.received = bytes.received.load(Ordering::Relaxed),
        bytes.sent = bytes.sent.load(Ordering::Relaxed),
        duration_ms = accepted_at.elapsed().as_secs_f64() * 1000.0,
        close = %close,
        "connection"
    );
}

/// Reads the ClientHello, answers `unrecognized_name` under strict SNI when no certificate covers
/// the name asked for, and completes the handshake.
async fn handshake(settings: &Settings, mut tcp: MeteredTcp) -> Result<TlsStream, HandshakeError> {
    let mut acceptor = Acceptor::default();
    let accepted = loop {
        let record = read_record(&mut tcp).await?;
        let mut input = record.as_slice();
        while !input.is_empty() {
            if acceptor.read_tls(&mut input)? == 0 {
                break;
            }
        }
        match acceptor.accept() {
            Ok(Some(accepted)) => break accepted,
            Ok(None) => continue,
            Err((error, mut alert)) => {
                let mut out = Vec::new();
                let _ = alert.write_all(&mut out);
                if out.is_empty() {
                    out.extend_from_slice(&fatal_alert(alert_for(&error)));
                }
                let _ = tcp.write_all(&out).await;
                return Err(error.into());
            }
        }
    };
    if settings.strict_sni {
        let sni = accepted.client_hello().server_name().map(str::to_owned);
        if !sni
            .as_deref()
            .is_some_and(|name| settings.certs.covers(name))
        {
            let _ = tcp
                .write_all(&fatal_alert(AlertDescription::UnrecognisedName))
                .await;
            return Err(HandshakeError::UnknownServerName(sni));
        }
    }
    let config = match &settings.client_check {
        // Resumption here must not outlive the chain's age (tls/resumption.rs).
        Some(check) => guarded_config(&settings.tls, check.max_session_age),
        None => settings.tls.clone(),
    };
    let stream = StartHandshake::from_parts(accepted, tcp)
        .into_stream(config)
        .await?;
    Ok(TlsStream::new(stream))
}

/// The content type of a handshake record (a ClientHello comes in these).
const HANDSHAKE_RECORD: u8 = 0x16;

/// The largest record a ClientHello may come in (2^14 bytes of plaintext, RFC 8446 5.1).
const MAX_PLAINTEXT_RECORD: usize = 16_384;

/// Reads one whole TLS record, header and body. rustls gets the ClientHello in one piece, so a
/// client that trickles or stalls costs the 5 bytes of a header until its record is complete,
/// rather than rustls' read buffer (4 KiB, grown to 8 KiB by a second partial read). A header
/// that is not a handshake record's, or announces more than a plaintext record may hold, is
/// passed on alone for rustls to refuse with its alert at once.
async fn read_record(tcp: &mut MeteredTcp) -> io::Result<Vec<u8>> {
    let mut header = [0u8; 5];
    tcp.read_exact(&mut header).await?;
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    if header[0] != HANDSHAKE_RECORD || header[1] != 3 || len > MAX_PLAINTEXT_RECORD {
        return Ok(header.to_vec());
    }
    let mut record = vec![0u8; header.len() + len];
    record[..header.len()].copy_from_slice(&header);
    tcp.read_exact(&mut record[header.len()..]).await?;
    Ok(record)
}
