//! The caller's socket, borrowed for a call: it is read and written as it is (blocking, or with
//! the caller's own timeouts), waited on with `poll` during the handshake, and never closed.
//! Writes never raise SIGPIPE.

use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::time::Instant;

use rustix::event::{poll, PollFd, PollFlags};
use rustix::fs::FileType;

use crate::tlsplex_result::{self, *};

/// A descriptor the caller owns, for the length of one call.
pub(crate) struct Socket(RawFd);

impl Socket {
    /// `fd`, checked to be a socket.
    pub(crate) fn new(fd: RawFd) -> Result<Self, tlsplex_result> {
        if fd < 0 {
            return Err(TLSPLEX_INVALID_ARGUMENT);
        }
        let socket = Self(fd);
        let stat = rustix::fs::fstat(socket.fd()).map_err(|_| TLSPLEX_INVALID_ARGUMENT)?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::Socket {
            return Err(TLSPLEX_NOT_A_SOCKET);
        }
        Ok(socket)
    }

    fn fd(&self) -> BorrowedFd<'_> {
        // SAFETY: `self.0` is not -1 (checked in `new`), and the C caller promises the
        // descriptor stays open for the whole call this borrow lives in (tlsplex.h says so).
        // At worst a descriptor closed under us makes the system calls fail with EBADF.
        unsafe { BorrowedFd::borrow_raw(self.0) }
    }

    /// Waits until it can be read (`write`: written) or `deadline` passes; `false` then.
    pub(crate) fn wait(&self, write: bool, deadline: Instant) -> io::Result<bool> {
        let flags = if write { PollFlags::OUT } else { PollFlags::IN };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            let timeout = rustix::event::Timespec {
                tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
                tv_nsec: i64::from(left.subsec_nanos()),
            };
            let fd = self.fd();
            let mut fds = [PollFd::new(&fd, flags)];
            match poll(&mut fds, Some(&timeout)) {
                Ok(0) => continue, // the loop sees the deadline
                Ok(_) => return Ok(true),
                Err(rustix::io::Errno::INTR) => continue,
                Err(errno) => return Err(errno.into()),
            }
        }
    }
}

impl io::Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(rustix::io::read(self.fd(), buf)?)
    }
}

impl io::Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // `send` with MSG_NOSIGNAL: a peer that went away is an error for this connection, not
        // a SIGPIPE that kills the C program (whose signal handling is its own).
        Ok(rustix::net::send(
            self.fd(),
            buf,
            rustix::net::SendFlags::NOSIGNAL,
        )?)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
