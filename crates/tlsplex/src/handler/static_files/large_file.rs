//! A whole file over 64 KiB as a response body, sent a piece at a time and only when the
//! connection asks for the next. A piece the page cache holds is read on the serving thread
//! (`preadv2` with `RWF_NOWAIT`, which fails rather than wait for the disk); any other on the
//! blocking pool, so a slow disk holds a pool thread rather than the thread serving everyone
//! else's connections. Either way straight into the buffer that is sent.
//!
//! It replaces ServeDir's body for whole files (ServeDir still answers `Range` requests): that one
//! reads through `tokio::fs::File`, which copies each piece once more out of its own buffer, and
//! makes every piece a trip to the pool (see docs/architecture.md for what each cost).

use std::fs::File;
use std::future::Future;
use std::io::{self, IoSliceMut, Read};
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::task::JoinHandle;

use super::small_file::shrank;

/// The file at `path`, `len` bytes long when the response head was made.
pub(super) struct LargeFile {
    state: State,
}

enum State {
    /// Waiting for the connection to ask for the next piece; `left` bytes still to send.
    /// `nowait`: the file system reads without waiting (false once it said it cannot).
    Idle {
        source: Source,
        left: u64,
        nowait: bool,
    },
    /// A piece of `want` bytes being read on the pool; `left` counts what follows it.
    Reading {
        read: JoinHandle<io::Result<(File, Vec<u8>)>>,
        want: u64,
        left: u64,
        nowait: bool,
    },
    Done,
}

enum Source {
    /// Opened by the first read (on the pool, non-blocking and checked to be a regular file).
    Path(PathBuf),
    File(File),
}

/// The most read at once: what one response holds of a file it has not sent yet (as ServeDir's
/// pieces; a connection's `max_buffered_response_bytes` is overshot by at most one).
const PIECE: u64 = 64 * 1024;

impl LargeFile {
    pub(super) fn new(path: PathBuf, len: u64) -> Self {
        let state = if len == 0 {
            State::Done
        } else {
            State::Idle {
                source: Source::Path(path),
                left: len,
                nowait: true,
            }
        };
        Self { state }
    }

    /// The frame for a piece read on the serving thread.
    fn sent_inline(&mut self, piece: Vec<u8>) -> Result<Frame<Bytes>, io::Error> {
        let State::Idle { left, .. } = &mut self.state else {
            return Err(io::Error::other("a piece read out of turn"));
        };
        if piece.is_empty() {
            self.state = State::Done;
            return Err(shrank());
        }
        *left -= (piece.len() as u64).min(*left);
        if *left == 0 {
            self.state = State::Done;
        }
        Ok(Frame::data(Bytes::from(piece)))
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

/// The next `want` bytes of `file` if the page cache holds them (or some of them); `None` when
/// reading would wait for the disk, or the file system cannot tell (`nowait` is then cleared).
fn read_cached(file: &File, want: u64, nowait: &mut bool) -> io::Result<Option<Vec<u8>>> {
    let mut piece = vec![0u8; usize::try_from(want).unwrap_or(0)];
    let flags = rustix::io::ReadWriteFlags::NOWAIT;
    // The offset u64::MAX reads at the file's position and moves it, as `read` does.
    match rustix::io::preadv2(file, &mut [IoSliceMut::new(&mut piece)], u64::MAX, flags) {
        Ok(read) => {
            piece.truncate(read);
            Ok(Some(piece))
        }
        Err(rustix::io::Errno::AGAIN) => Ok(None),
        Err(rustix::io::Errno::OPNOTSUPP) => {
            *nowait = false;
            Ok(None)
        }
        Err(error) => Err(error.into()),
    }
}

impl Body for LargeFile {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if let State::Idle {
            source: Source::File(file),
            left,
            nowait: nowait @ true,
        } = &mut this.state
        {
            match read_cached(file, (*left).min(PIECE), nowait) {
                Ok(Some(piece)) => return Poll::Ready(Some(this.sent_inline(piece))),
                Ok(None) => {}
                Err(error) => {
                    this.state = State::Done;
                    return Poll::Ready(Some(Err(error)));
                }
            }
        }
        this.state = match std::mem::replace(&mut this.state, State::Done) {
            State::Idle {
                source,
                left,
                nowait,
            } => {
                let want = left.min(PIECE);
                State::Reading {
                    read: tokio::task::spawn_blocking(move || read_piece(source, want)),
                    want,
                    left: left - want,
                    nowait,
                }
            }
            other => other,
        };
        let State::Reading {
            read,
            want,
            left,
            nowait,
        } = &mut this.state
        else {
            return Poll::Ready(None);
        };
        let (want, left, nowait) = (*want, *left, *nowait);
        let read = ready!(Pin::new(read).poll(cx));
        this.state = State::Done;
        let (file, piece) = match read {
            Ok(Ok(read)) => read,
            Ok(Err(error)) => return Poll::Ready(Some(Err(error))),
            Err(join) => return Poll::Ready(Some(Err(io::Error::other(join)))),
        };
        if piece.len() as u64 != want {
            return Poll::Ready(Some(Err(shrank())));
        }
        if left > 0 {
            this.state = State::Idle {
                source: Source::File(file),
                left,
                nowait,
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
