//! A whole file too large for the serving thread as a response body: each piece is read on the
//! blocking pool straight into the buffer that is sent, one piece at a time and only when the
//! connection asks for the next, so a slow disk holds a pool thread rather than the thread
//! serving everyone else's connections.
//!
//! It replaces ServeDir's body for whole files (ServeDir still answers `Range` requests): that one
//! reads through `tokio::fs::File`, which copies each piece once more out of its own buffer, in
//! pieces of 64 KiB (measured on bulk downloads: that copy and the pool hops it makes four times
//! as often were ~15 % of the server's CPU).

use std::fs::File;
use std::future::Future;
use std::io::{self, Read};
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::task::JoinHandle;

/// The file at `path`, `len` bytes long when the response head was made.
pub(super) struct LargeFile {
    state: State,
}

enum State {
    /// Waiting for the connection to ask for the next piece; `left` bytes still to send.
    Idle {
        source: Source,
        left: u64,
    },
    /// A piece of `want` bytes being read; `left` counts what follows it.
    Reading {
        read: JoinHandle<io::Result<(File, Vec<u8>)>>,
        want: u64,
        left: u64,
    },
    Done,
}

enum Source {
    /// Opened by the first read (on the pool, non-blocking and checked to be a regular file).
    Path(PathBuf),
    File(File),
}

/// The most read at once: what one response holds of a file it has not sent yet.
const PIECE: u64 = 256 * 1024;

impl LargeFile {
    pub(super) fn new(path: PathBuf, len: u64) -> Self {
        let state = if len == 0 {
            State::Done
        } else {
            State::Idle {
                source: Source::Path(path),
                left: len,
            }
        };
        Self { state }
    }
}

/// Reads the next `want` bytes of `source` into a buffer of their own.
fn read_piece(source: Source, want: u64) -> io::Result<(File, Vec<u8>)> {
    let file = match source {
        Source::File(file) => file,
        Source::Path(path) => crate::files::open_regular(&path)?.0,
    };
    let mut piece = Vec::with_capacity(usize::try_from(want).unwrap_or(0));
    (&file).take(want).read_to_end(&mut piece)?;
    Ok((file, piece))
}

impl Body for LargeFile {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        this.state = match std::mem::replace(&mut this.state, State::Done) {
            State::Idle { source, left } => {
                let want = left.min(PIECE);
                State::Reading {
                    read: tokio::task::spawn_blocking(move || read_piece(source, want)),
                    want,
                    left: left - want,
                }
            }
            other => other,
        };
        let State::Reading { read, want, left } = &mut this.state else {
            return Poll::Ready(None);
        };
        let (want, left) = (*want, *left);
        let read = ready!(Pin::new(read).poll(cx));
        this.state = State::Done;
        let (file, piece) = match read {
            Ok(Ok(read)) => read,
            Ok(Err(error)) => return Poll::Ready(Some(Err(error))),
            Err(join) => return Poll::Ready(Some(Err(io::Error::other(join)))),
        };
        if piece.len() as u64 != want {
            return Poll::Ready(Some(Err(io::Error::other(
                "the file shrank while being sent",
            ))));
        }
        if left > 0 {
            this.state = State::Idle {
                source: Source::File(file),
                left,
            };
        }
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(piece)))))
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            State::Idle { left, .. } => SizeHint::with_exact(*left),
            State::Reading { want, left, .. } => SizeHint::with_exact(want + left),
            State::Done => SizeHint::with_exact(0),
        }
    }
}
