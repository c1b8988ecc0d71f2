//! tlsplex for C programs, in the shape of NanoSSL's "Multiple instances in a single process":
//! a context made once (`SSL_init` and `SSL_settings`), a cert store per server, and a blocking
//! accept on a socket the program accepted itself (`SSL_acceptConnection(socket, certStore)`),
//! then read, write and close on the connection it returns. One context serves any number of
//! threads and servers at once, and a session made on one resumes on another.
//!
//! The rules of the API (`include/tlsplex.h`, made by cbindgen):
//! - every function returns a [`tlsplex_result`] and writes what it makes through pointers;
//!   [`tlsplex_result_message`] turns a result into a sentence;
//! - handles (`tlsplex_context`, `tlsplex_cert_store`, `tlsplex_conn`) are made by `_new` (or
//!   `tlsplex_accept`) and freed by `_free`; they are names, not addresses: a freed handle, a
//!   handle of another kind or a made-up one is answered with `TLSPLEX_INVALID_HANDLE`, never
//!   followed;
//! - null pointers and bad arguments are answered with a result, and no panic crosses the
//!   boundary (`TLSPLEX_PANIC`);
//! - a context and a cert store may be used from any number of threads at once; a connection
//!   from one thread at a time (calls on it from two threads wait for each other);
//! - the program owns its sockets: tlsplex never closes a descriptor it is given.

mod conn;
mod context;
mod engine;
mod fd;
mod handles;
mod store;

pub use conn::{
    tlsplex_accept, tlsplex_conn_close, tlsplex_conn_free, tlsplex_conn_info, tlsplex_conn_info_t,
    tlsplex_conn_read, tlsplex_conn_write,
};
pub use context::{tlsplex_context, tlsplex_context_free, tlsplex_context_new, tlsplex_settings};
pub use engine::{
    tlsplex_connection_fn, tlsplex_engine, tlsplex_engine_free, tlsplex_engine_reload,
    tlsplex_engine_start, tlsplex_engine_start_toml, tlsplex_engine_stop_server, tlsplex_handler,
};
pub use store::{
    tlsplex_cert_store, tlsplex_cert_store_add_pem, tlsplex_cert_store_add_pem_files,
    tlsplex_cert_store_free, tlsplex_cert_store_new, tlsplex_cert_store_require_client_cert,
};

use std::ffi::{c_char, c_int, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What a call came to. `TLSPLEX_OK` is 0; every other value is a reason it failed.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum tlsplex_result {
    /// Done.
    TLSPLEX_OK = 0,
    /// A pointer that must not be null was.
    TLSPLEX_NULL_ARGUMENT = 1,
    /// A handle that is not (or no longer) one of this kind: freed, or never made.
    TLSPLEX_INVALID_HANDLE = 2,
    /// An argument out of its range (a zero-length buffer, a negative descriptor, text that is
    /// not UTF-8…).
    TLSPLEX_INVALID_ARGUMENT = 3,
    /// A file could not be read.
    TLSPLEX_FILE_UNREADABLE = 4,
    /// PEM that holds no certificate, no private key, or a key that is not the certificate's.
    TLSPLEX_BAD_PEM = 5,
    /// A cert store without any certificate.
    TLSPLEX_NO_CERTIFICATES = 6,
    /// The descriptor is not a socket.
    TLSPLEX_NOT_A_SOCKET = 7,
    /// The handshake did not finish within the context's `handshake_timeout_ms`.
    TLSPLEX_HANDSHAKE_TIMEOUT = 8,
    /// The client broke the protocol or could not agree: an alert was sent, the connection is
    /// over.
    TLSPLEX_ALERT_SENT = 9,
    /// The client sent an alert, or closed the connection, during the handshake.
    TLSPLEX_PEER_CLOSED = 10,
    /// No certificate of the store is for the name the client asked for, and none is a default.
    TLSPLEX_NO_CERTIFICATE_FOR_NAME = 11,
    /// The client's certificate was asked for and is missing, or does not verify.
    TLSPLEX_BAD_CLIENT_CERTIFICATE = 12,
    /// Reading or writing the socket failed (its `errno` is in the log line, if any).
    TLSPLEX_IO_ERROR = 13,
    /// The socket's own timeout (`SO_RCVTIMEO`/`SO_SNDTIMEO`) ran out, or it is non-blocking and
    /// not ready: try again.
    TLSPLEX_WOULD_BLOCK = 14,
    /// The peer closed the connection without `close_notify`: what was read may be cut short.
    TLSPLEX_UNEXPECTED_EOF = 15,
    /// The connection was closed (`tlsplex_conn_close`) and cannot be used for data.
    TLSPLEX_CLOSED = 16,
    /// The context's `max_connections` are all open.
    TLSPLEX_TOO_MANY_CONNECTIONS = 17,
    /// The engine's config has problems (they are in the error text).
    TLSPLEX_BAD_CONFIG = 18,
    /// No running server is called that.
    TLSPLEX_UNKNOWN_SERVER = 19,
    /// An address could not be bound (in use, not this machine's, a privileged port).
    TLSPLEX_BIND_FAILED = 20,
    /// A bug in tlsplex: a panic was caught at the boundary. Please report it.
    TLSPLEX_PANIC = 99,
}

use tlsplex_result::*;

/// A sentence for a result code, in static storage (never freed, never null). It takes an
/// `int`, so any value is safe to pass: one that is no result gets "not a tlsplex result code".
#[no_mangle]
pub extern "C" fn tlsplex_result_message(result: c_int) -> *const c_char {
    let text: &'static [u8] = match RESULTS.iter().find(|r| **r as c_int == result) {
        Some(result) => message(*result),
        None => b"not a tlsplex result code\0",
    };
    // NUL-terminated above; C reads it as `char`.
    text.as_ptr().cast()
}

const RESULTS: [tlsplex_result; 22] = [
    TLSPLEX_OK,
    TLSPLEX_NULL_ARGUMENT,
    TLSPLEX_INVALID_HANDLE,
    TLSPLEX_INVALID_ARGUMENT,
    TLSPLEX_FILE_UNREADABLE,
    TLSPLEX_BAD_PEM,
    TLSPLEX_NO_CERTIFICATES,
    TLSPLEX_NOT_A_SOCKET,
    TLSPLEX_HANDSHAKE_TIMEOUT,
    TLSPLEX_ALERT_SENT,
    TLSPLEX_PEER_CLOSED,
    TLSPLEX_NO_CERTIFICATE_FOR_NAME,
    TLSPLEX_BAD_CLIENT_CERTIFICATE,
    TLSPLEX_IO_ERROR,
    TLSPLEX_WOULD_BLOCK,
    TLSPLEX_UNEXPECTED_EOF,
    TLSPLEX_CLOSED,
    TLSPLEX_TOO_MANY_CONNECTIONS,
    TLSPLEX_BAD_CONFIG,
    TLSPLEX_UNKNOWN_SERVER,
    TLSPLEX_BIND_FAILED,
    TLSPLEX_PANIC,
];

fn message(result: tlsplex_result) -> &'static [u8] {
    match result {
        TLSPLEX_OK => b"ok\0",
        TLSPLEX_NULL_ARGUMENT => b"a pointer argument that must not be null was null\0",
        TLSPLEX_INVALID_HANDLE => b"not a live handle of this kind (freed, or never made)\0",
        TLSPLEX_INVALID_ARGUMENT => b"an argument out of its range\0",
        TLSPLEX_FILE_UNREADABLE => b"a file could not be read\0",
        TLSPLEX_BAD_PEM => {
            b"no certificate, no private key, or a key that is not the certificate's, in the PEM\0"
        }
        TLSPLEX_NO_CERTIFICATES => b"the cert store holds no certificate\0",
        TLSPLEX_NOT_A_SOCKET => b"the descriptor is not a socket\0",
        TLSPLEX_HANDSHAKE_TIMEOUT => b"the handshake did not finish in time\0",
        TLSPLEX_ALERT_SENT => {
            b"the client broke the TLS protocol or could not agree; an alert was sent\0"
        }
        TLSPLEX_PEER_CLOSED => b"the client closed the connection during the handshake\0",
        TLSPLEX_NO_CERTIFICATE_FOR_NAME => b"no certificate for the name the client asked for\0",
        TLSPLEX_BAD_CLIENT_CERTIFICATE => b"the client certificate is missing or does not verify\0",
        TLSPLEX_IO_ERROR => b"reading or writing the socket failed\0",
        TLSPLEX_WOULD_BLOCK => {
            b"the socket is not ready (its timeout ran out, or it is non-blocking)\0"
        }
        TLSPLEX_UNEXPECTED_EOF => b"the peer closed the connection without close_notify\0",
        TLSPLEX_CLOSED => b"the connection is closed\0",
        TLSPLEX_TOO_MANY_CONNECTIONS => b"the context's max_connections are all open\0",
        TLSPLEX_BAD_CONFIG => b"the config has problems (see the error text)\0",
        TLSPLEX_UNKNOWN_SERVER => b"no running server is called that\0",
        TLSPLEX_BIND_FAILED => b"an address could not be bound (see the error text)\0",
        TLSPLEX_PANIC => b"a bug in tlsplex (a panic was caught); please report it\0",
    }
}

/// Runs `body` so that no panic crosses into C.
fn guard(body: impl FnOnce() -> Result<(), tlsplex_result>) -> tlsplex_result {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => TLSPLEX_OK,
        Ok(Err(result)) => result,
        Err(_) => TLSPLEX_PANIC,
    }
}

/// Writes `value` where `out` points.
///
/// # Safety
/// `out` must be null or valid for a write of `T`.
unsafe fn put<T>(out: *mut T, value: T) -> Result<(), tlsplex_result> {
    if out.is_null() {
        return Err(TLSPLEX_NULL_ARGUMENT);
    }
    // SAFETY: not null, and the caller promises it is valid for a write of `T`.
    unsafe { out.write(value) };
    Ok(())
}

/// The UTF-8 text of a C string.
///
/// # Safety
/// `text` must be null or point to a NUL-terminated string that stays valid during the call.
unsafe fn text<'a>(text: *const c_char) -> Result<&'a str, tlsplex_result> {
    if text.is_null() {
        return Err(TLSPLEX_NULL_ARGUMENT);
    }
    // SAFETY: not null, NUL-terminated and valid for the call, as the caller promises.
    let text = unsafe { CStr::from_ptr(text) };
    text.to_str().map_err(|_| TLSPLEX_INVALID_ARGUMENT)
}

/// The bytes of a C buffer; a zero length is an invalid argument.
///
/// # Safety
/// `data` must be null or valid for reads of `len` bytes during the call.
unsafe fn bytes<'a>(data: *const u8, len: usize) -> Result<&'a [u8], tlsplex_result> {
    if data.is_null() {
        return Err(TLSPLEX_NULL_ARGUMENT);
    }
    if len == 0 || len > isize::MAX as usize {
        return Err(TLSPLEX_INVALID_ARGUMENT);
    }
    // SAFETY: not null, `len` in range, and valid for reads of `len` bytes as the caller
    // promises.
    Ok(unsafe { std::slice::from_raw_parts(data, len) })
}
