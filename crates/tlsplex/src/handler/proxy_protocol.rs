//! PROXY protocol headers sent to a backend before the client's bytes, so it learns who the
//! client is. v2 carries the TLS facts as HAProxy's `send-proxy-v2-ssl` does.

use std::io;

use ppp::v2::{Builder, Command, Protocol, Type, Version};

use super::ConnInfo;

/// Which PROXY protocol header to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyProtocol {
    /// The text header: `PROXY TCP4 client server cport sport\r\n`.
    V1,
    /// The binary header, with TLVs: ALPN, authority (SNI), and SSL (version, cipher, client
    /// certificate CN).
    V2,
}

/// `client` bits of the PP2_TYPE_SSL TLV.
const PP2_CLIENT_SSL: u8 = 0x01;
const PP2_CLIENT_CERT_CONN: u8 = 0x02;
const PP2_CLIENT_CERT_SESS: u8 = 0x04;

impl ProxyProtocol {
    /// The header for the connection `info` describes.
    pub fn header(self, info: &ConnInfo) -> io::Result<Vec<u8>> {
        self.build(
            info.peer_addr,
            info.local_addr,
            info.sni.as_deref(),
            Some(info),
        )
    }

    /// The header for a connection tlsplex does not terminate (`passthrough`): addresses, and
    /// in v2 the SNI as the authority; the TLS facts are the backend's own.
    pub(crate) fn passthrough_header(
        self,
        client: std::net::SocketAddr,
        server: std::net::SocketAddr,
        sni: Option<&str>,
    ) -> io::Result<Vec<u8>> {
        self.build(client, server, sni, None)
    }

    fn build(
        self,
        client: std::net::SocketAddr,
        server: std::net::SocketAddr,
        sni: Option<&str>,
        tls: Option<&ConnInfo>,
    ) -> io::Result<Vec<u8>> {
        match self {
            Self::V1 => {
                let addresses = match (client, server) {
                    (std::net::SocketAddr::V4(c), std::net::SocketAddr::V4(s)) => {
                        ppp::v1::Addresses::new_tcp4(*c.ip(), *s.ip(), c.port(), s.port())
                    }
                    (std::net::SocketAddr::V6(c), std::net::SocketAddr::V6(s)) => {
                        ppp::v1::Addresses::new_tcp6(*c.ip(), *s.ip(), c.port(), s.port())
                    }
                    _ => ppp::v1::Addresses::Unknown,
                };
                Ok(addresses.to_string().into_bytes())
            }
            Self::V2 => {
                let mut builder = Builder::with_addresses(
                    Version::Two | Command::Proxy,
                    Protocol::Stream,
                    (client, server),
                );
                if let Some(alpn) = tls.and_then(|info| info.alpn.as_deref()) {
                    builder = builder.write_tlv(Type::ALPN, alpn.as_bytes())?;
                }
                if let Some(sni) = sni {
                    builder = builder.write_tlv(Type::Authority, sni.as_bytes())?;
                }
                if let Some(info) = tls {
                    builder = builder.write_tlv(Type::SSL, &ssl_tlv(info))?;
                }
                builder.build()
            }
        }
    }
}

/// The PP2_TYPE_SSL value: client flags, verify result, then sub-TLVs.
fn ssl_tlv(info: &ConnInfo) -> Vec<u8> {
    let mut client = PP2_CLIENT_SSL;
    if info.client_cert.is_some() {
        client |= PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS;
    }
    // Zero only when a client certificate was presented and verified (rustls refuses the rest).
    let verify: u32 = if info.client_cert.is_some() { 0 } else { 1 };
    let mut value = vec![client];
    value.extend_from_slice(&verify.to_be_bytes());
    let mut sub = |kind: Type, bytes: &[u8]| {
        if let Ok(len) = u16::try_from(bytes.len()) {
            value.push(kind.into());
            value.extend_from_slice(&len.to_be_bytes());
            value.extend_from_slice(bytes);
        }
    };
    sub(Type::SSLVersion, info.tls_version.as_bytes());
    sub(Type::SSLCipher, info.cipher_suite.as_bytes());
    if let Some(cn) = info
        .client_cert
        .as_ref()
        .and_then(|c| c.common_name.as_deref())
    {
        sub(Type::SSLCommonName, cn.as_bytes());
    }
    value
}
