//! The handshake of one connection: the ClientHello read whole, the route chosen by its SNI,
//! `strict_sni` applied, then either the TLS handshake with the route's configuration, or, for
//! a passthrough route, the bytes read so far handed on untouched.

use std::io;

use rustls::server::Acceptor;
use rustls::AlertDescription;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::StartHandshake;

use super::connection::ConnectionShared;
use super::outcome::HandshakeError;
use super::routes::LiveTarget;
use super::settings::Settings;
use crate::conn::{MeteredTcp, TlsStream};
use crate::handler::{ConnectionHandler, PassthroughHandler};
use crate::tls::resumption::guarded_config;

/// What the ClientHello told: kept for the access log even when the handshake then fails.
#[derive(Debug, Default)]
pub(super) struct Hello {
    pub(super) sni: Option<String>,
    /// The route taken (`None`: the server's own).
    pub(super) route: Option<usize>,
}

/// A connection past its ClientHello.
pub(super) enum Handshaken<'s> {
    /// TLS is established here; the route's handler serves it.
    Tls(TlsStream, &'s ConnectionHandler),
    /// The route passes it through: the bytes read so far, and the socket.
    Passthrough(MeteredTcp, Vec<u8>, &'s PassthroughHandler),
    /// An ACME TLS-ALPN-01 validation, answered with its challenge certificate and closed.
    Validated,
}

/// A fatal alert record, in the clear (TLS 1.2 framing, as before any key is agreed).
pub(super) fn fatal_alert(description: AlertDescription) -> [u8; 7] {
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

/// Reads the ClientHello, picks the route, answers `unrecognized_name` under strict SNI when no
/// route (for servers with routes) or no certificate (for a terminating route) covers the name
/// asked for, and completes the handshake or hands the connection on for passthrough.
pub(super) async fn handshake<'s>(
    shared: &ConnectionShared,
    settings: &'s Settings,
    mut tcp: MeteredTcp,
    hello: &mut Hello,
) -> Result<Handshaken<'s>, HandshakeError> {
    let table = &settings.routes;
    // Only a server with a passthrough route keeps what the client sent.
    let mut kept = table.passthrough.then(Vec::new);
    let mut acceptor = Acceptor::default();
    let limit = settings.max_client_hello;
    let mut taken = 0;
    let accepted = loop {
        let Some(record) = read_record(&mut tcp, limit.saturating_sub(taken), taken == 0).await?
        else {
            let _ = tcp
                .write_all(&fatal_alert(AlertDescription::DecodeError))
                .await;
            return Err(HandshakeError::ClientHelloTooLarge(limit));
        };
        if taken == 0 && looks_like_http(&record) {
            // As nginx answers: a person who typed http:// learns what to type instead.
            let answer = format!(
                "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{PLAIN_HTTP_BODY}",
                PLAIN_HTTP_BODY.len()
            );
            let _ = tcp.write_all(answer.as_bytes()).await;
            let _ = tcp.shutdown().await;
            return Err(HandshakeError::PlainHttp);
        }
        taken += record.len();
        if let Some(kept) = &mut kept {
            kept.extend_from_slice(&record);
        }
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
    if !settings.challenges.is_empty() {
        if let Some(config) = settings.challenges.answer(&accepted.client_hello()) {
            hello.sni = accepted.client_hello().server_name().map(str::to_owned);
            let mut stream = StartHandshake::from_parts(accepted, tcp)
                .into_stream(config)
                .await?;
            let _ = stream.shutdown().await;
            return Ok(Handshaken::Validated);
        }
    }
    let sni = accepted.client_hello().server_name().map(str::to_owned);
    hello.route = table.find(sni.as_deref());
    hello.sni = sni;
    let route = table.get(hello.route);
    if let Some(name) = &route.name {
        shared.metrics.routes.count(name);
    }
    if settings.strict_sni {
        let sni = hello.sni.as_deref();
        let refusal = if !table.is_empty() && hello.route.is_none() {
            Some(HandshakeError::NoRoute(sni.map(str::to_owned)))
        } else if matches!(route.target, LiveTarget::Terminate(_))
            && !sni.is_some_and(|name| settings.certs.covers(name))
        {
            Some(HandshakeError::UnknownServerName(sni.map(str::to_owned)))
        } else {
            None
        };
        if let Some(refusal) = refusal {
            let _ = tcp
                .write_all(&fatal_alert(AlertDescription::UnrecognisedName))
                .await;
            return Err(refusal);
        }
    }
    if settings.certs.has_pending() && matches!(route.target, LiveTarget::Terminate(_)) {
        let identity = settings.certs.select(hello.sni.as_deref());
        if identity.is_pending() {
            let name = identity.summary().label_name();
            let _ = tcp
                .write_all(&fatal_alert(AlertDescription::InternalError))
                .await;
            return Err(HandshakeError::CertificatePending(name));
        }
    }
    let handler = match &route.target {
        LiveTarget::Passthrough(passthrough) => {
            return Ok(Handshaken::Passthrough(
                tcp,
                kept.unwrap_or_default(),
                passthrough,
            ));
        }
        LiveTarget::Terminate(handler) => handler,
    };
    let config = match &route.client_check {
        // Resumption here must not outlive the chain's age (tls/resumption.rs).
        Some(check) => guarded_config(&route.tls, check.max_session_age),
        None => route.tls.clone(),
    };
    let stream = StartHandshake::from_parts(accepted, tcp)
        .into_stream(config)
        .await?;
    Ok(Handshaken::Tls(TlsStream::new(stream), handler))
}

/// What a plain HTTP request to a TLS port gets (nginx: "The plain HTTP request was sent to
/// HTTPS port").
const PLAIN_HTTP_BODY: &str =
    "This port speaks HTTPS: the plain HTTP request was sent to a TLS port. Use https://\n";

/// Whether a first record's header is the start of an HTTP request line (`GET /`, `POST `,
/// `PRI *`…): letters a TLS record never starts with (its content types are 20 to 24).
fn looks_like_http(start: &[u8]) -> bool {
    start.first().is_some_and(u8::is_ascii_uppercase)
        && start
            .iter()
            .take(5)
            .all(|b| b.is_ascii_uppercase() || matches!(b, b' ' | b'/' | b'*'))
}

/// The content type of a handshake record (a ClientHello comes in these).
const HANDSHAKE_RECORD: u8 = 0x16;

/// The largest record a ClientHello may come in (2^14 bytes of plaintext, RFC 8446 5.1).
const MAX_PLAINTEXT_RECORD: usize = 16_384;

/// The type and length of a handshake message, before its body.
const HANDSHAKE_HEADER: usize = 4;

/// Reads one whole TLS record, header and body, if it fits in `budget` bytes (`None`: it does
/// not, or it is the `first` of a ClientHello that says it will not). rustls gets the
/// ClientHello in one piece, so a client that trickles or stalls costs the 5 bytes of a header
/// until its record is complete, rather than rustls' read buffer (4 KiB, grown to 8 KiB by a
/// second partial read), and the whole hello at most `max_client_hello`. A header that is not
/// a handshake record's, or announces more than a plaintext record may hold, is passed on alone
/// for rustls to refuse with its alert at once.
async fn read_record(
    tcp: &mut MeteredTcp,
    budget: usize,
    first: bool,
) -> io::Result<Option<Vec<u8>>> {
    let mut header = [0u8; 5];
    tcp.read_exact(&mut header).await?;
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    if header[0] != HANDSHAKE_RECORD || header[1] != 3 || len > MAX_PLAINTEXT_RECORD {
        return Ok(Some(header.to_vec()));
    }
    if header.len() + len > budget {
        return Ok(None);
    }
    let mut record = vec![0u8; header.len() + len];
    record[..header.len()].copy_from_slice(&header);
    let body = header.len();
    if first && len >= HANDSHAKE_HEADER {
        // The message's own length comes first: a hello that says it is larger than the
        // budget is refused before its body is read.
        tcp.read_exact(&mut record[body..body + HANDSHAKE_HEADER])
            .await?;
        let claimed = u32::from_be_bytes([0, record[body + 1], record[body + 2], record[body + 3]]);
        let claimed = usize::try_from(claimed).unwrap_or(usize::MAX);
        if body
            .saturating_add(HANDSHAKE_HEADER)
            .saturating_add(claimed)
            > budget
        {
            return Ok(None);
        }
        tcp.read_exact(&mut record[body + HANDSHAKE_HEADER..])
            .await?;
    } else {
        tcp.read_exact(&mut record[body..]).await?;
    }
    Ok(Some(record))
}
