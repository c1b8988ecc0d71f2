//! `tlsplex_accept` (the seed's `SSL_acceptConnection(socket, certStore)`): the handshake on the
//! caller's socket under the context's timeout, then blocking read, write and close on the
//! connection, and what was negotiated.

use std::ffi::{c_char, c_int, CString};
use std::io::{self, Read as _, Write as _};

use std::os::fd::RawFd;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Instant;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use rustls::ServerConnection;

use crate::context::{contexts, Permit};
use crate::fd::Socket;
use crate::handles::Handles;
use crate::store::stores;
use crate::tlsplex_result::{self, *};
use crate::{guard, put};

/// One accepted TLS connection on the caller's socket. Threads: one at a time (a call from a
/// second thread waits for the first to return).
#[allow(non_camel_case_types)]
pub enum tlsplex_conn {}

/// What a handshake settled. The strings are the connection's, valid until `tlsplex_conn_free`;
/// an absent one (no ALPN, no SNI, no client certificate, a resumed TLS 1.2 session's group)
/// is null.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct tlsplex_conn_info_t {
    /// `"TLSv1.3"` or `"TLSv1.2"`.
    pub tls_version: *const c_char,
    /// The IANA-style name of the cipher suite.
    pub cipher_suite: *const c_char,
    /// The key-exchange group (`"X25519MLKEM768"`, `"X25519"`…).
    pub key_exchange_group: *const c_char,
    /// The protocol agreed by ALPN.
    pub alpn: *const c_char,
    /// The server name the client asked for.
    pub sni: *const c_char,
    /// The client certificate's subject (`"CN=alice"`), when one was presented and verified.
    pub client_subject: *const c_char,
    /// 1 when the session was resumed rather than negotiated afresh.
    pub resumed: c_int,
}

pub(crate) struct Conn {
    transport: Mutex<Transport>,
    info: Info,
}

/// What a connection's bytes go through.
enum Transport {
    /// The caller's socket, driven here (`tlsplex_accept`); boxed, as rustls' state is large.
    Socket(Box<State>),
    /// A connection the engine accepted, handed to a C handler on a thread of its own.
    Engine(EngineState),
}

struct EngineState {
    stream: tlsplex::TlsStream,
    runtime: tokio::runtime::Handle,
    closed: bool,
}

struct State {
    tls: ServerConnection,
    fd: RawFd,
    closed: bool,
    _permit: Permit,
}

/// The negotiated facts as C strings, owned by the connection.
struct Info {
    tls_version: Option<CString>,
    cipher_suite: Option<CString>,
    key_exchange_group: Option<CString>,
    alpn: Option<CString>,
    sni: Option<CString>,
    client_subject: Option<CString>,
    resumed: bool,
}

fn conns() -> &'static Handles<Conn> {
    static CONNS: OnceLock<Handles<Conn>> = OnceLock::new();
    CONNS.get_or_init(|| Handles::new(3))
}

fn c_string(text: impl Into<Vec<u8>>) -> Option<CString> {
    CString::new(text).ok()
}

impl Info {
    fn of_engine(info: &tlsplex::ConnInfo) -> Self {
        Self {
            tls_version: c_string(info.tls_version.as_str()),
            cipher_suite: c_string(info.cipher_suite.as_str()),
            key_exchange_group: info.key_exchange_group.and_then(c_string),
            alpn: info.alpn.as_deref().and_then(c_string),
            sni: info.sni.as_deref().and_then(c_string),
            client_subject: (info.client_cert.as_ref()).and_then(|c| c_string(c.subject.as_str())),
            resumed: info.resumed,
        }
    }

    fn of(tls: &ServerConnection) -> Self {
        let version = tls.protocol_version().and_then(|v| v.as_str());
        let suite = tls.negotiated_cipher_suite();
        let group = tls
            .negotiated_key_exchange_group()
            .map(|g| format!("{:?}", g.name()));
        let subject = tls
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|leaf| {
                tlsplex::tls::CertSummary::from_der(leaf).map_or_else(String::new, |s| s.subject)
            });
        Self {
            tls_version: version
                .map(|v| v.replace("TLSv1_", "TLSv1."))
                .and_then(c_string),
            cipher_suite: suite.and_then(|s| s.suite().as_str()).and_then(c_string),
            key_exchange_group: group.and_then(c_string),
            alpn: tls.alpn_protocol().and_then(|p| c_string(p.to_vec())),
            sni: tls.server_name().and_then(c_string),
            client_subject: subject.filter(|s| !s.is_empty()).and_then(c_string),
            resumed: matches!(tls.handshake_kind(), Some(rustls::HandshakeKind::Resumed)),
        }
    }
}

/// The result a failed handshake or read comes to.
fn tls_error(error: &rustls::Error) -> tlsplex_result {
    use rustls::Error;
    match error {
        Error::AlertReceived(_) => TLSPLEX_PEER_CLOSED,
        Error::NoCertificatesPresented | Error::InvalidCertificate(_) => {
            TLSPLEX_BAD_CLIENT_CERTIFICATE
        }
        Error::General(text) if text.contains("no server certificate") => {
            TLSPLEX_NO_CERTIFICATE_FOR_NAME
        }
        _ => TLSPLEX_ALERT_SENT,
    }
}

fn io_error(error: &io::Error) -> tlsplex_result {
    match error.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => TLSPLEX_WOULD_BLOCK,
        _ => TLSPLEX_IO_ERROR,
    }
}

/// Sends what rustls has to send (records, an alert, tickets), waiting for room until
/// `deadline` (none: the socket's own blocking and timeouts).
fn flush(
    tls: &mut ServerConnection,
    socket: &mut Socket,
    deadline: Option<Instant>,
) -> Result<(), tlsplex_result> {
    while tls.wants_write() {
        match tls.write_tls(socket) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && deadline.is_some() => {
                let deadline = deadline.unwrap_or_else(Instant::now);
                if !socket.wait(true, deadline).map_err(|e| io_error(&e))? {
                    return Err(TLSPLEX_HANDSHAKE_TIMEOUT);
                }
            }
            Err(e) => return Err(io_error(&e)),
        }
    }
    Ok(())
}

fn handshake(
    tls: &mut ServerConnection,
    socket: &mut Socket,
    deadline: Instant,
) -> Result<(), tlsplex_result> {
    while tls.is_handshaking() {
        flush(tls, socket, Some(deadline))?;
        if !tls.is_handshaking() {
            break;
        }
        if !socket.wait(false, deadline).map_err(|e| io_error(&e))? {
            return Err(TLSPLEX_HANDSHAKE_TIMEOUT);
        }
        match tls.read_tls(socket) {
            Ok(0) => return Err(TLSPLEX_PEER_CLOSED),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => return Err(io_error(&e)),
        }
        if let Err(error) = tls.process_new_packets() {
            let _ = flush(tls, socket, Some(deadline)); // the alert, if it can go
            return Err(tls_error(&error));
        }
    }
    flush(tls, socket, Some(deadline))
}

/// Completes a TLS handshake on `fd` (a connected socket the caller accepted and still owns)
/// with `store`'s certificates under `context`'s settings, within its handshake timeout. On
/// success `*out` is the connection; on failure the result says why (and an alert was sent
/// where TLS has one); either way the caller closes `fd` when done with it.
///
/// # Safety
/// `fd` must stay open for the call; `out` must be valid for a write of a pointer.
#[no_mangle]
pub unsafe extern "C" fn tlsplex_accept(
    context: *const crate::tlsplex_context,
    fd: c_int,
    store: *const crate::tlsplex_cert_store,
    out: *mut *mut tlsplex_conn,
) -> tlsplex_result {
    guard(|| {
        if out.is_null() {
            return Err(TLSPLEX_NULL_ARGUMENT);
        }
        let started = Instant::now();
        let ctx = contexts().get(context)?;
        let store = stores().get(store)?;
        let mut socket = Socket::new(fd)?;
        let permit = ctx.permit()?;
        let config = store.config(&ctx, context.addr())?;
        let mut tls = ServerConnection::new(config).map_err(|e| tls_error(&e))?;
        handshake(&mut tls, &mut socket, started + ctx.handshake_timeout)?;
        let info = Info::of(&tls);
        let conn = Conn {
            transport: Mutex::new(Transport::Socket(Box::new(State {
                tls,
                fd,
                closed: false,
                _permit: permit,
            }))),
            info,
        };
        // SAFETY: not null (checked above), and the caller promises it is valid for a write.
        unsafe { put(out, conns().add(conn)) }
    })
}

/// Reads up to `len` bytes of application data into `buf`, waiting for some (as the socket
/// blocks); `*read` is how many, and 0 means the client closed the connection properly
/// (`close_notify`).
///
/// # Safety
/// `buf` must be valid for writes of `len` bytes and `read` for a write of a `size_t`.
#[no_mangle]
pub unsafe extern "C" fn tlsplex_conn_read(
    conn: *mut tlsplex_conn,
    buf: *mut u8,
    len: usize,
    read: *mut usize,
) -> tlsplex_result {
    guard(|| {
        let conn = conns().get(conn)?;
        if buf.is_null() || read.is_null() {
            return Err(TLSPLEX_NULL_ARGUMENT);
        }
        if len == 0 || len > isize::MAX as usize {
            return Err(TLSPLEX_INVALID_ARGUMENT);
        }
        // SAFETY: not null, `len` in range, and valid for writes of `len` bytes as the caller
        // promises; nothing else refers to it during the call.
        let buf = unsafe { std::slice::from_raw_parts_mut(buf, len) };
        let n = conn.lock().read(buf)?;
        // SAFETY: not null (checked above), valid for a write as the caller promises.
        unsafe { put(read, n) }
    })
}

impl Conn {
    fn lock(&self) -> std::sync::MutexGuard<'_, Transport> {
        self.transport
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Transport {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, tlsplex_result> {
        match self {
            Self::Socket(state) => state.read(buf),
            Self::Engine(engine) => engine.read(buf),
        }
    }

    fn write(&mut self, data: &[u8]) -> Result<(), tlsplex_result> {
        match self {
            Self::Socket(state) => state.write(data),
            Self::Engine(engine) => engine.write(data),
        }
    }

    fn close(&mut self) -> Result<(), tlsplex_result> {
        match self {
            Self::Socket(state) => {
                if std::mem::replace(&mut state.closed, true) {
                    return Ok(());
                }
                state.tls.send_close_notify();
                let mut socket = Socket::new(state.fd)?;
                flush(&mut state.tls, &mut socket, None)
            }
            Self::Engine(engine) => {
                if std::mem::replace(&mut engine.closed, true) {
                    return Ok(());
                }
                let stream = &mut engine.stream;
                engine
                    .runtime
                    .block_on(stream.shutdown())
                    .map_err(|e| io_error(&e))
            }
        }
    }
}

impl EngineState {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, tlsplex_result> {
        if self.closed {
            return Err(TLSPLEX_CLOSED);
        }
        let stream = &mut self.stream;
        match self.runtime.block_on(stream.read(buf)) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(TLSPLEX_UNEXPECTED_EOF),
            Err(e) => Err(io_error(&e)),
        }
    }

    fn write(&mut self, data: &[u8]) -> Result<(), tlsplex_result> {
        if self.closed {
            return Err(TLSPLEX_CLOSED);
        }
        let stream = &mut self.stream;
        let written = self.runtime.block_on(async {
            stream.write_all(data).await?;
            stream.flush().await
        });
        written.map_err(|e| io_error(&e))
    }
}

/// Registers a connection the engine accepted, for a C handler: its handle, as a number (the
/// handler's thread turns it back into the pointer C is given).
pub(crate) fn engine_conn(conn: tlsplex::TlsConn, runtime: tokio::runtime::Handle) -> usize {
    let info = Info::of_engine(&conn.info);
    let state = EngineState {
        stream: conn.stream,
        runtime,
        closed: false,
    };
    let handle: *mut tlsplex_conn = conns().add(Conn {
        transport: Mutex::new(Transport::Engine(state)),
        info,
    });
    handle.addr()
}

/// Forgets an engine connection's handle once its C handler returned.
pub(crate) fn forget_engine_conn(handle: usize) {
    let handle: *const tlsplex_conn = std::ptr::without_provenance(handle);
    let _ = conns().remove(handle);
}

impl State {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, tlsplex_result> {
        if self.closed {
            return Err(TLSPLEX_CLOSED);
        }
        let mut socket = Socket::new(self.fd)?;
        loop {
            match self.tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Err(TLSPLEX_UNEXPECTED_EOF)
                }
                Err(e) => return Err(io_error(&e)),
            }
            match self.tls.read_tls(&mut socket) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error(&e)),
            }
            if let Err(error) = self.tls.process_new_packets() {
                let _ = flush(&mut self.tls, &mut socket, None);
                return Err(tls_error(&error));
            }
            flush(&mut self.tls, &mut socket, None)?;
        }
    }

    fn write(&mut self, mut data: &[u8]) -> Result<(), tlsplex_result> {
        if self.closed {
            return Err(TLSPLEX_CLOSED);
        }
        let mut socket = Socket::new(self.fd)?;
        while !data.is_empty() {
            let n = self.tls.writer().write(data).map_err(|e| io_error(&e))?;
            data = data.get(n..).unwrap_or_default();
            flush(&mut self.tls, &mut socket, None)?;
        }
        Ok(())
    }
}

/// Writes all `len` bytes of `data` as application data, waiting as the socket blocks.
///
/// # Safety
/// `data` must be valid for reads of `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn tlsplex_conn_write(
    conn: *mut tlsplex_conn,
    data: *const u8,
    len: usize,
) -> tlsplex_result {
    guard(|| {
        let conn = conns().get(conn)?;
        // SAFETY: the caller promises `data` is valid for reads of `len` bytes.
        let data = unsafe { crate::bytes(data, len) }?;
        let written = conn.lock().write(data);
        written
    })
}

/// Ends the connection properly: sends `close_notify`. The socket stays open (the caller's).
///
/// # Safety
/// None beyond C's: `conn` is a name, never followed.
#[no_mangle]
pub unsafe extern "C" fn tlsplex_conn_close(conn: *mut tlsplex_conn) -> tlsplex_result {
    guard(|| {
        let conn = conns().get(conn)?;
        let mut transport = conn.lock();
        transport.close()
    })
}

/// What the handshake settled, into `*info` (its strings live as long as the connection).
///
/// # Safety
/// `info` must be valid for a write of a `tlsplex_conn_info_t`.
#[no_mangle]
pub unsafe extern "C" fn tlsplex_conn_info(
    conn: *const tlsplex_conn,
    info: *mut tlsplex_conn_info_t,
) -> tlsplex_result {
    guard(|| {
        let conn = conns().get(conn)?;
        let text = |s: &Option<CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
        let i = &conn.info;
        let facts = tlsplex_conn_info_t {
            tls_version: text(&i.tls_version),
            cipher_suite: text(&i.cipher_suite),
            key_exchange_group: text(&i.key_exchange_group),
            alpn: text(&i.alpn),
            sni: text(&i.sni),
            client_subject: text(&i.client_subject),
            resumed: c_int::from(i.resumed),
        };
        // SAFETY: the caller promises `info` is valid for a write.
        unsafe { put(info, facts) }
    })
}

/// Frees a connection (without `close_notify`: call `tlsplex_conn_close` first for that). The
/// socket stays open. Null is ignored.
///
/// # Safety
/// None beyond C's: `conn` is a name, never followed. Strings from `tlsplex_conn_info` are not
/// to be used after.
#[no_mangle]
pub unsafe extern "C" fn tlsplex_conn_free(conn: *mut tlsplex_conn) -> tlsplex_result {
    guard(|| conns().free(conn))
}
