//! The `forward` handler: TLS termination to a plaintext backend, as stunnel and hitch do.
//!
//! After the handshake the handler connects to the backend (TCP or a Unix socket), optionally
//! sends a PROXY header, then copies bytes both ways until both sides are done. Half-closes pass
//! through: a client that shuts its write side (close_notify) still gets the rest of the reply,
//! and a backend that shuts its write side makes tlsplex send close_notify to the client.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::Instant;

use super::proxy_protocol::ProxyProtocol;
use super::{ConnInfo, Handler, HandlerError, TlsConn};

/// Where a `forward` server sends the decrypted bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// `HOST:PORT`, resolved at each connection.
    Tcp(String),
    /// `unix:/path/to.sock`.
    Unix(PathBuf),
}

impl FromStr for Backend {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if let Some(path) = text.strip_prefix("unix:") {
            return if path.is_empty() {
                Err("\"unix:\" needs a socket path, e.g. \"unix:/run/app.sock\"".to_owned())
            } else {
                Ok(Self::Unix(PathBuf::from(path)))
            };
        }
        let valid = text.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if valid {
            Ok(Self::Tcp(text.to_owned()))
        } else {
            Err(format!(
                "{text:?} is not HOST:PORT or unix:PATH (e.g. \"127.0.0.1:8080\", \"unix:/run/app.sock\")"
            ))
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(addr) => f.write_str(addr),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// How long a forwarded connection may carry no byte either way before it is closed: long
/// enough for a quiet interactive session, short enough that idle connections cannot pile up
/// until the connection limits are reached (HAProxy's `timeout tunnel` is set by most
/// deployments to minutes; stunnel's `TIMEOUTidle` defaults to 12 h).
pub const DEFAULT_FORWARD_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// How a `forward` server reaches its backend.
///
/// # Defaults
/// `connect_timeout` 5 s, `idle_timeout` 5 min ([`DEFAULT_FORWARD_IDLE_TIMEOUT`]), no PROXY
/// header.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ForwardOptions {
    /// The backend.
    pub backend: Backend,
    /// Time allowed to connect to the backend.
    pub connect_timeout: Duration,
    /// Close a connection after this long with no bytes either way; `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Send a PROXY header first.
    pub proxy_protocol: Option<ProxyProtocol>,
}

impl ForwardOptions {
    /// Forward to `backend` with the defaults.
    pub fn new(backend: Backend) -> Self {
        Self {
            backend,
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Some(DEFAULT_FORWARD_IDLE_TIMEOUT),
            proxy_protocol: None,
        }
    }
}

/// Serves a connection by relaying it to a backend; see the module docs.
#[derive(Debug, Clone)]
pub struct ForwardHandler {
    options: Arc<ForwardOptions>,
    unreachable: Arc<UnreachableLog>,
}

impl ForwardHandler {
    /// A handler relaying to `options.backend`.
    pub fn new(options: ForwardOptions) -> Self {
        Self {
            options: Arc::new(options),
            unreachable: Arc::default(),
        }
    }
}

/// How often an unreachable backend is logged: a dead backend fails every connection, and one
/// warning per connection would let any client write the log.
const UNREACHABLE_LOG_INTERVAL: Duration = Duration::from_secs(5);

/// When an unreachable backend was last logged, and how many failures went unlogged since.
#[derive(Debug, Default)]
struct UnreachableLog {
    last: std::sync::Mutex<Option<Instant>>,
    unlogged: AtomicU64,
}

impl UnreachableLog {
    /// The failures to report with this one, or `None` if it is too soon to log again.
    fn due(&self) -> Option<u64> {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if last.is_some_and(|at| now - at < UNREACHABLE_LOG_INTERVAL) {
            self.unlogged.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *last = Some(now);
        Some(self.unlogged.swap(0, Ordering::Relaxed))
    }
}

impl Handler for ForwardHandler {
    async fn serve(&self, conn: TlsConn) -> Result<(), HandlerError> {
        let TlsConn {
            mut stream,
            info,
            metrics,
            ..
        } = conn;
        let options = &self.options;
        let connected =
            tokio::time::timeout(options.connect_timeout, connect(&options.backend)).await;
        let reason = match connected {
            Ok(Ok(backend)) => return self.relay_to(backend, stream, &info).await,
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("no connection within {:?}", options.connect_timeout),
        };
        metrics.backend_errors.inc();
        if let Some(unlogged) = self.unreachable.due() {
            tracing::warn!(server = %info.server, backend = %options.backend, reason, also_failed = unlogged, "backend unreachable; closing the client connection (logged at most every 5 s; also_failed counts the connections since the last line)");
        }
        let _ = stream.shutdown().await; // close_notify, then FIN
        Ok(())
    }
}

impl ForwardHandler {
    async fn relay_to<S>(
        &self,
        backend: BackendStream,
        stream: S,
        info: &ConnInfo,
    ) -> Result<(), HandlerError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let options = &self.options;
        match backend {
            BackendStream::Tcp(mut tcp) => {
                let _ = tcp.set_nodelay(true);
                if let Some(version) = options.proxy_protocol {
                    tcp.write_all(&version.header(info)?).await?;
                }
                relay(stream, tcp, options.idle_timeout).await
            }
            BackendStream::Unix(mut unix) => {
                if let Some(version) = options.proxy_protocol {
                    unix.write_all(&version.header(info)?).await?;
                }
                relay(stream, unix, options.idle_timeout).await
            }
        }
    }
}

enum BackendStream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

async fn connect(backend: &Backend) -> io::Result<BackendStream> {
    match backend {
        Backend::Tcp(addr) => TcpStream::connect(addr.as_str())
            .await
            .map(BackendStream::Tcp),
        Backend::Unix(path) => UnixStream::connect(path).await.map(BackendStream::Unix),
    }
}

/// Copies both ways until both directions are done, or nothing moved for `idle`.
async fn relay<A, B>(client: A, backend: B, idle: Option<Duration>) -> Result<(), HandlerError>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let started = Instant::now();
    let last_activity = Arc::new(AtomicU64::new(0));
    let mut client = Tracked::new(client, started, last_activity.clone());
    let mut backend = Tracked::new(backend, started, last_activity.clone());
    // 16 KiB toward the client fills one whole TLS record per write (8 KiB, the default,
    // makes twice the records); the other direction keeps the default.
    let copy =
        tokio::io::copy_bidirectional_with_sizes(&mut client, &mut backend, 8 * 1024, 16 * 1024);
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

#[cfg(test)]
mod tests {
    use super::Backend;

    #[test]
    fn backend_forms() {
        assert_eq!(
            "127.0.0.1:8080".parse(),
            Ok(Backend::Tcp("127.0.0.1:8080".into()))
        );
        assert_eq!(
            "app.internal:80".parse(),
            Ok(Backend::Tcp("app.internal:80".into()))
        );
        assert_eq!("[::1]:80".parse(), Ok(Backend::Tcp("[::1]:80".into())));
        assert_eq!(
            "unix:/run/app.sock".parse(),
            Ok(Backend::Unix("/run/app.sock".into()))
        );
        assert!("unix:".parse::<Backend>().is_err());
        assert!("127.0.0.1".parse::<Backend>().is_err());
        assert!("127.0.0.1:0".parse::<Backend>().is_err());
        assert!(":80".parse::<Backend>().is_err());
    }
}
