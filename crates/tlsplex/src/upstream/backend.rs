//! One backend: its address, the stream to it, and TLS toward it (`backend_tls`), as stunnel's
//! client mode and ghostunnel do.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsConnector;

/// Where a handler sends the client's bytes.
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

/// TLS toward a backend: the CAs its certificate must chain to, the name it must carry (also
/// sent as SNI), and optionally a client certificate to present.
#[derive(Clone)]
pub struct BackendTls {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

impl fmt::Debug for BackendTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// Why `backend_tls` could not be set up; names the file or the value at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendTlsError {
    /// A file could not be read, or holds nothing usable.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// `server_name` is not a DNS name or IP address.
    #[error("{0:?} is not a DNS name or IP address")]
    ServerName(String),
    /// rustls refused the combination (e.g. a key that does not match the certificate).
    #[error("{0}")]
    Rustls(String),
}

impl BackendTls {
    /// Verify backends against the CAs in `ca` (PEM) and the name `server_name`; with
    /// `client`, present that certificate chain and key (PEM files).
    pub fn from_files(
        ca: &Path,
        server_name: &str,
        client: Option<(&Path, &Path)>,
    ) -> Result<Self, BackendTlsError> {
        let file_error = |path: &Path, reason: String| BackendTlsError::File {
            path: path.to_owned(),
            reason,
        };
        let read = |path: &Path| {
            crate::files::read_limited(path, crate::files::MAX_MATERIAL_FILE)
                .map_err(|e| file_error(path, format!("cannot read: {e}")))
        };
        let certs = |path: &Path| -> Result<Vec<CertificateDer<'static>>, BackendTlsError> {
            let pem = read(path)?;
            let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| file_error(path, format!("not PEM certificates: {e}")))?;
            if certs.is_empty() {
                return Err(file_error(path, "contains no certificate".to_owned()));
            }
            Ok(certs)
        };
        let mut roots = RootCertStore::empty();
        for cert in certs(ca)? {
            roots
                .add(cert)
                .map_err(|e| file_error(ca, format!("not a usable CA certificate: {e}")))?;
        }
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| BackendTlsError::ServerName(server_name.to_owned()))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| BackendTlsError::Rustls(e.to_string()))?
            .with_root_certificates(roots);
        let config = match client {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = certs(cert)?;
                let pem = read(key)?;
                let key_der = PrivateKeyDer::from_pem_slice(&pem)
                    .map_err(|e| file_error(key, format!("no PEM private key: {e}")))?;
                builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(|e| BackendTlsError::Rustls(e.to_string()))?
            }
        };
        Ok(Self {
            config: Arc::new(config),
            server_name: name,
        })
    }
}

/// An open connection to a backend.
pub(crate) enum BackendStream {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<tokio_rustls::client::TlsStream<BackendStream>>),
}

impl BackendStream {
    /// Connects to `backend`, and with `tls` completes a handshake that verifies it.
    pub(crate) async fn connect(backend: &Backend, tls: Option<&BackendTls>) -> io::Result<Self> {
        let plain = match backend {
            Backend::Tcp(addr) => {
                let tcp = TcpStream::connect(addr.as_str()).await?;
                let _ = tcp.set_nodelay(true);
                Self::Tcp(tcp)
            }
            Backend::Unix(path) => Self::Unix(UnixStream::connect(path).await?),
        };
        let Some(tls) = tls else {
            return Ok(plain);
        };
        let connector = TlsConnector::from(tls.config.clone());
        let stream = connector
            .connect(tls.server_name.clone(), plain)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("TLS to the backend failed: {e}")))?;
        Ok(Self::Tls(Box::new(stream)))
    }
}

impl AsyncRead for BackendStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Self::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for BackendStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, data),
            Self::Unix(s) => Pin::new(s).poll_write(cx, data),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::Unix(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Self::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
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
