//! `MeteredTcp`: the client's TCP stream, counting the bytes that cross it.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::metrics::ServerSeries;

/// A client's TCP connection under its TLS session, counting bytes for the server's metrics
/// and for this connection's access-log line.
#[derive(Debug)]
pub struct MeteredTcp {
    tcp: TcpStream,
    /// The server's series, for its byte counts.
    server: Arc<ServerSeries>,
    connection: Arc<ConnectionBytes>,
}

/// Bytes one connection moved, readable after its stream is gone.
#[derive(Debug, Default)]
pub(crate) struct ConnectionBytes {
    pub(crate) received: AtomicU64,
    pub(crate) sent: AtomicU64,
}

impl MeteredTcp {
    pub(crate) fn new(
        tcp: TcpStream,
        server: Arc<ServerSeries>,
        connection: Arc<ConnectionBytes>,
    ) -> Self {
        Self {
            tcp,
            server,
            connection,
        }
    }

    /// The TCP stream itself (for socket options, addresses).
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// The client's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.peer_addr()
    }

    fn count_received(&self, read: usize) {
        if read > 0 {
            self.server.received.inc_by(read as u64);
            self.connection
                .received
                .fetch_add(read as u64, Ordering::Relaxed);
        }
    }

    fn count_sent(&self, polled: &Poll<io::Result<usize>>) {
        if let Poll::Ready(Ok(written)) = polled {
            self.server.sent.inc_by(*written as u64);
            self.connection
                .sent
                .fetch_add(*written as u64, Ordering::Relaxed);
        }
    }
}

impl AsyncRead for MeteredTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.tcp).poll_read(cx, buf);
        this.count_received(buf.filled().len() - before);
        polled
    }
}

impl AsyncWrite for MeteredTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.tcp).poll_write(cx, data);
        this.count_sent(&polled);
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs);
        this.count_sent(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}
