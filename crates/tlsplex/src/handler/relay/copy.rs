//! Copying both ways without holding a buffer while nothing moves. A read goes into the worker
//! thread's scratch buffer and is written on at once; only what the writer does not take then is
//! kept, in a buffer of the connection's own, until it is written. An idle relay (a WebSocket, a
//! forwarded connection waiting on its peer) holds no copy buffer: tokio's
//! `copy_bidirectional` keeps two (24 KiB here) for each connection's whole life.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The largest read: two whole TLS records' worth toward a TLS client.
const SCRATCH: usize = 32 * 1024;

thread_local! {
    /// Each worker thread's read buffer, lent to one poll at a time.
    static SCRATCH_BUFFER: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH].into_boxed_slice());
}

/// Copies `a` to `b` and `b` to `a` until both have ended (each end shuts the other's write
/// side down), reading at most `a_read` and `b_read` bytes at a time. Fails with the first error
/// of either direction.
pub(super) fn both_ways<'a, A, B>(
    a: &'a mut A,
    b: &'a mut B,
    a_read: usize,
    b_read: usize,
) -> BothWays<'a, A, B>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    BothWays {
        a,
        b,
        a_to_b: OneWay::new(a_read),
        b_to_a: OneWay::new(b_read),
    }
}

/// The future of [`both_ways`].
pub(super) struct BothWays<'a, A, B> {
    a: &'a mut A,
    b: &'a mut B,
    a_to_b: OneWay,
    b_to_a: OneWay,
}

impl<A, B> Future for BothWays<'_, A, B>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let a_to_b = this.a_to_b.poll_copy(cx, &mut *this.a, &mut *this.b)?;
        let b_to_a = this.b_to_a.poll_copy(cx, &mut *this.b, &mut *this.a)?;
        if a_to_b.is_ready() && b_to_a.is_ready() {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }
}

/// One direction's state.
struct OneWay {
    /// The most read at a time.
    read_size: usize,
    /// Bytes read and not yet taken by the writer, from `written` on (empty: no allocation).
    held: Vec<u8>,
    written: usize,
    /// Written since the last flush.
    unflushed: bool,
    /// The reader ended; then the writer is shut down, and then this direction is done.
    read_ended: bool,
    done: bool,
}

impl OneWay {
    fn new(read_size: usize) -> Self {
        Self {
            read_size: read_size.clamp(1, SCRATCH),
            held: Vec::new(),
            written: 0,
            unflushed: false,
            read_ended: false,
            done: false,
        }
    }

    fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut R,
        to: &mut W,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        if self.done {
            return Poll::Ready(Ok(()));
        }
        loop {
            // What the writer did not take last time goes first; then the buffer is let go.
            while self.written < self.held.len() {
                let n = ready!(poll_write(cx, to, &self.held[self.written..]))?;
                self.written += n;
                self.unflushed = true;
            }
            if !self.held.is_empty() {
                self.held = Vec::new();
                self.written = 0;
            }
            if self.read_ended {
                ready!(Pin::new(&mut *to).poll_shutdown(cx))?;
                self.done = true;
                return Poll::Ready(Ok(()));
            }
            let read_size = self.read_size;
            let step = with_scratch(read_size, |scratch| {
                let mut buf = ReadBuf::new(scratch);
                match Pin::new(&mut *from).poll_read(cx, &mut buf) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
                    Poll::Ready(Ok(())) if buf.filled().is_empty() => Poll::Ready(Ok(None)),
                    Poll::Ready(Ok(())) => {
                        let read = buf.filled();
                        // Written on at once; the writer's refusal keeps the rest.
                        let taken = match poll_write(cx, to, read) {
                            Poll::Ready(Ok(n)) => {
                                self.unflushed = true;
                                n
                            }
                            Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                            Poll::Pending => 0,
                        };
                        if taken < read.len() {
                            self.held = read[taken..].to_vec();
                            self.written = 0;
                        }
                        Poll::Ready(Ok(Some(())))
                    }
                }
            });
            match step {
                Poll::Ready(Ok(Some(()))) => {}
                Poll::Ready(Ok(None)) => self.read_ended = true,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => {
                    // Nothing to read now: what was written must not wait in the writer.
                    if self.unflushed {
                        ready!(Pin::new(&mut *to).poll_flush(cx))?;
                        self.unflushed = false;
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

/// Writes `data` to `to`: how much it took (none is an error: the writer is gone).
fn poll_write<W: AsyncWrite + Unpin>(
    cx: &mut Context<'_>,
    to: &mut W,
    data: &[u8],
) -> Poll<io::Result<usize>> {
    let n = ready!(Pin::new(&mut *to).poll_write(cx, data))?;
    if n == 0 {
        return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
    }
    Poll::Ready(Ok(n))
}

/// Runs `f` on the first `size` bytes of this thread's scratch buffer (on a buffer of its own
/// if the scratch is lent out already, which one poll at a time never does).
fn with_scratch<T>(size: usize, f: impl FnOnce(&mut [u8]) -> T) -> T {
    SCRATCH_BUFFER.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut scratch) => f(&mut scratch[..size]),
        Err(_) => f(&mut vec![0; size]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};

    /// Writes `send` and ends, while reading everything the peer sends until it ends.
    async fn exchange(stream: DuplexStream, send: Vec<u8>) -> Vec<u8> {
        let (mut reader, mut writer) = tokio::io::split(stream);
        let write = async move {
            writer
                .write_all(&send)
                .await
                .map(|()| writer)?
                .shutdown()
                .await
        };
        let read = async move {
            let mut got = Vec::new();
            reader.read_to_end(&mut got).await.map(|_| got)
        };
        let (written, got) = tokio::join!(write, read);
        assert!(written.is_ok(), "{written:?}");
        got.unwrap_or_default()
    }

    #[tokio::test]
    async fn copies_both_ways_through_backpressure_and_passes_each_end_on() {
        // Pipes of 100 bytes: most writes take part of a read, so bytes are held and resent.
        let (client, mut a) = duplex(100);
        let (mut b, backend) = duplex(100);
        let relay = tokio::spawn(async move { both_ways(&mut a, &mut b, 8192, 16384).await });
        let up: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let down: Vec<u8> = up.iter().rev().copied().collect();
        let (client_got, backend_got) = tokio::join!(
            exchange(client, up.clone()),
            exchange(backend, down.clone())
        );
        assert!(
            client_got == down,
            "the client got {} bytes",
            client_got.len()
        );
        assert!(
            backend_got == up,
            "the backend got {} bytes",
            backend_got.len()
        );
        assert!(matches!(relay.await, Ok(Ok(()))));
    }

    #[tokio::test]
    async fn an_idle_relay_holds_no_buffer() {
        let (mut client, mut a) = duplex(2000);
        let (mut b, mut backend) = duplex(100);
        let mut copy = both_ways(&mut a, &mut b, 8192, 16384);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        // Bytes the backend cannot take at once (its pipe holds 100): the rest is held…
        assert!(client.write_all(&[7; 1000]).await.is_ok());
        assert!(Pin::new(&mut copy).poll(&mut cx).is_pending());
        assert_eq!(copy.a_to_b.held.len() - copy.a_to_b.written, 900);
        // …until the backend reads it; then the buffer is let go.
        let mut got = vec![0; 1000];
        let mut read = 0;
        while read < 1000 {
            let _ = Pin::new(&mut copy).poll(&mut cx);
            read += backend.read(&mut got[read..]).await.unwrap_or(0);
        }
        assert!(Pin::new(&mut copy).poll(&mut cx).is_pending());
        assert_eq!(got, vec![7; 1000]);
        assert_eq!(copy.a_to_b.held.capacity(), 0);
        assert_eq!(copy.b_to_a.held.capacity(), 0);
    }
}
