//! How a connection ended: [`HandshakeError`] when its handshake failed, [`CloseReason`] for the
//! access log. Typed, so the connection path allocates no text for a reason nobody logs.

use std::fmt;
use std::io;

use crate::handler::HandlerError;
use crate::metrics::FailureReason;

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HandshakeError {
    /// rustls refused (or the client sent an alert).
    #[error("{0}")]
    Tls(rustls::Error),
    /// Strict SNI: no certificate covers the name asked for (`None`: no SNI at all).
    #[error("strict_sni: no certificate for {}", shown_name(.0.as_deref()))]
    UnknownServerName(Option<String>),
    /// Strict SNI on a server with routes: no route takes the name asked for.
    #[error("strict_sni: no route for {}", shown_name(.0.as_deref()))]
    NoRoute(Option<String>),
    #[error("no certificate for {0} yet: it waits for ACME")]
    CertificatePending(String),
    /// The client spoke plain HTTP to a TLS port (it was answered 400 saying so).
    #[error("plain HTTP sent to a TLS port")]
    PlainHttp,
    /// The ClientHello took, or said it would take, more than `max_client_hello` bytes.
    #[error("ClientHello larger than max_client_hello ({0} bytes)")]
    ClientHelloTooLarge(usize),
    #[error("{0}")]
    Io(io::Error),
}

fn shown_name(sni: Option<&str>) -> String {
    sni.map_or_else(
        || "a client without SNI".to_owned(),
        |name| format!("{name:?}"),
    )
}

impl From<io::Error> for HandshakeError {
    /// tokio-rustls reports rustls' errors inside an `io::Error`: they are taken out here.
    fn from(error: io::Error) -> Self {
        if !error.get_ref().is_some_and(|e| e.is::<rustls::Error>()) {
            return Self::Io(error);
        }
        match error
            .into_inner()
            .map(|inner| inner.downcast::<rustls::Error>())
        {
            Some(Ok(tls)) => Self::Tls(*tls),
            _ => Self::Io(io::Error::other("a TLS error")),
        }
    }
}

impl From<rustls::Error> for HandshakeError {
    fn from(error: rustls::Error) -> Self {
        Self::Tls(error)
    }
}

impl HandshakeError {
    /// The metric label it counts under.
    pub(crate) fn reason(&self) -> FailureReason {
        match self {
            Self::UnknownServerName(_) | Self::NoRoute(_) => FailureReason::Sni,
            Self::CertificatePending(_) => FailureReason::CertificatePending,
            Self::Tls(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            )) => FailureReason::ClientNotAllowed,
            Self::Tls(
                rustls::Error::NoCertificatesPresented | rustls::Error::InvalidCertificate(_),
            ) => FailureReason::ClientCert,
            Self::Tls(rustls::Error::AlertReceived(_)) => FailureReason::Alert,
            Self::Tls(_) | Self::ClientHelloTooLarge(_) | Self::PlainHttp => {
                FailureReason::Protocol
            }
            Self::Io(_) => FailureReason::Io,
        }
    }

    /// Logs it: client-certificate refusals at info (an operator wants to know), the rest at
    /// debug (the internet's background noise).
    pub(crate) fn log(&self) {
        match self {
            Self::Tls(rustls::Error::NoCertificatesPresented) => {
                tracing::info!("handshake refused: the client presented no certificate");
            }
            Self::Tls(e @ rustls::Error::InvalidCertificate(_)) => {
                tracing::info!(reason = %e, "handshake refused: client certificate not accepted");
            }
            Self::UnknownServerName(_) | Self::NoRoute(_) => {
                tracing::debug!(error = %self, "handshake refused");
            }
            Self::Tls(rustls::Error::AlertReceived(_)) => {
                tracing::debug!(error = %self, "handshake failed: the client sent an alert");
            }
            _ => tracing::debug!(error = %self, "handshake failed"),
        }
    }
}

/// How a connection ended, as the access log's `close` field shows it.
#[derive(Debug)]
pub(crate) enum CloseReason {
    /// The handler returned.
    Closed,
    /// The handler returned an error.
    HandlerError(HandlerError),
    /// The client closed or reset the connection without an orderly end (an HTTP/2 client that
    /// sends no GOAWAY, a TLS client that sends no close_notify): how many clients end, and not
    /// an error of the handler's.
    ClientWentAway,
    /// The handler panicked (only this connection was lost).
    HandlerPanicked(String),
    /// The handshake failed.
    HandshakeFailed(HandshakeError),
    /// The handshake did not finish in time.
    HandshakeTimedOut,
    /// A resumed session's client certificate no longer passes.
    ResumedSessionRefused(String),
    /// A passthrough route's pool had no backend that answered.
    NoBackend,
    /// An ACME validation, answered.
    AcmeValidated,
}

impl CloseReason {
    /// What a handler's error says of the connection: the client went away (an end of file, a
    /// reset, a broken pipe anywhere in the error's chain), or an error of the handler's.
    pub(crate) fn from_handler(error: HandlerError) -> Self {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&*error);
        while let Some(error) = cause {
            if let Some(io) = error.downcast_ref::<io::Error>() {
                if matches!(
                    io.kind(),
                    io::ErrorKind::UnexpectedEof
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::BrokenPipe
                ) {
                    return Self::ClientWentAway;
                }
            }
            cause = error.source();
        }
        Self::HandlerError(error)
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed => f.write_str("closed"),
            Self::HandlerError(error) => write!(f, "handler error: {error}"),
            Self::ClientWentAway => f.write_str("client went away"),
            Self::HandlerPanicked(message) => write!(f, "handler panicked: {message}"),
            Self::HandshakeFailed(error) => write!(f, "handshake failed: {error}"),
            Self::HandshakeTimedOut => f.write_str("handshake timed out"),
            Self::ResumedSessionRefused(why) => write!(f, "resumed session refused: {why}"),
            Self::NoBackend => f.write_str("no backend answered"),
            Self::AcmeValidated => f.write_str("ACME TLS-ALPN-01 validation answered"),
        }
    }
}
