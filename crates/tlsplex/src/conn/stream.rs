//! `TlsStream`: the decrypted stream a handler reads and writes.

use std::io::{self, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use rustls::ServerConnection;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::MeteredTcp;

/// One established TLS connection as a byte stream.
///
/// It behaves like `tokio_rustls::server::TlsStream`, with one difference: records that rustls
/// owes the peer in answer to what it just read (a KeyUpdate response, a `no_renegotiation`
/// warning, an alert) are sent right away, not when the handler next writes. A handler that
/// waits for a request would otherwise leave a client waiting for them.
pub struct TlsStream {
    // Boxed: the rustls state is large (about 1.3 KiB), and a pointer keeps the futures that
    // carry a connection around (its task, its handler's) small.
    inner: Box<tokio_rustls::server::TlsStream<MeteredTcp>>,
}

impl TlsStream {
    pub(crate) fn new(inner: tokio_rustls::server::TlsStream<MeteredTcp>) -> Self {
        Self {
            inner: Box::new(inner),
        }
    }

    /// The TCP connection and the rustls connection state.
    pub fn get_ref(&self) -> (&MeteredTcp, &ServerConnection) {
        self.inner.get_ref()
    }

    /// The TCP connection and the rustls connection state, mutably.
    pub fn get_mut(&mut self) -> (&mut MeteredTcp, &mut ServerConnection) {
        self.inner.get_mut()
    }
}

impl std::fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream")
            .field("peer_addr", &self.get_ref().0.peer_addr().ok())
            .finish_non_exhaustive()
    }
}

impl AsyncRead for TlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let read = Pin::new(&mut *self.inner).poll_read(cx, buf);
        // rustls holds a KeyUpdate response back until the next application data record (RFC
        // 8446 allows that); an empty write releases it into the outgoing records.
        let _ = self.inner.get_mut().1.writer().write(&[]);
        if self.inner.get_ref().1.wants_write() {
            // A write error shows at the handler's next write; a full socket buffer wakes this
            // task to try again.
            let _ = Pin::new(&mut *self.inner).poll_flush(cx);
        }
        read
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
}
