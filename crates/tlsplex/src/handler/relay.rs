//! Copying bytes both ways between a client and a backend, with an idle timeout: what `forward`,
//! `passthrough` and the proxy's tunnels share. The copy (`copy.rs`) holds no buffer while
//! nothing moves.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::HandlerError;

mod copy;

/// Copies both ways until both directions are done, or nothing moved for `idle`.
pub(crate) async fn relay<A, B>(
    client: A,
    backend: B,
    idle: Option<Duration>,
) -> Result<(), HandlerError>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let started = Instant::now();
    let last_activity = Arc::new(AtomicU64::new(0));
    let mut client = Tracked::new(client, started, last_activity.clone());
    let mut backend = Tracked::new(backend, started, last_activity.clone());
    // 32 KiB toward the client: two whole TLS records per read (16 KiB made one receive from the
    // backend per record; 32 KiB took 11-21 % more per server core through forward, 64 KiB no
    // more than 32). The other direction reads 8 KiB at a time.
    let copy = copy::both_ways(&mut client, &mut backend, 8 * 1024, 32 * 1024);
    let Some(idle) = idle else {
        copy.await?;
        return Ok(());
    };
    tokio::pin!(copy);
    loop {
        let quiet_since = started + Duration::from_millis(last_activity.load(Ordering::Relaxed));
        tokio::select! {
            copied = &mut copy => {
                copied?;
                return Ok(());
            }
            () = tokio::time::sleep_until(quiet_since + idle) => {
                let latest = started + Duration::from_millis(last_activity.load(Ordering::Relaxed));
                if latest == quiet_since {
                    tracing::debug!(idle_ms = idle.as_millis() as u64, "idle timeout: closing");
                    return Ok(());
                }
            }
        }
    }
}

/// A stream that records when bytes last moved through it.
struct Tracked<S> {
    inner: S,
    started: Instant,
    last_activity: Arc<AtomicU64>,
}

impl<S> Tracked<S> {
    fn new(inner: S, started: Instant, last_activity: Arc<AtomicU64>) -> Self {
        Self {
            inner,
            started,
            last_activity,
        }
    }

    fn touch(&self) {
        let millis = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_activity.store(millis, Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
