//! Entry points for the fuzz targets under `fuzz/`: each takes arbitrary bytes, feeds them to
//! code that parses input from outside the process, and checks what must hold whatever the
//! input. Built with the `fuzzing` feature (and in unit tests, which replay `fuzz/corpus`).
//!
//! Not a stable API.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a broken invariant must crash the fuzzer

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::server::ProducesTickets;

use crate::config::Config;
use crate::handler::ProxyProtocol;
use crate::tls::{OcspSummary, TicketKeys};
use crate::{ConnInfo, Identity};

/// The config parser and validator: any text gets a `Config` or errors that name the file.
/// Certificate paths resolve under a folder that does not exist, so no file is read.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("fuzz.toml");
    if let Err(error) = Config::parse(text, file, Path::new("/nonexistent/tlsplex-fuzz")) {
        let message = error.to_string();
        assert!(
            message.contains("fuzz.toml"),
            "error without the file: {message}"
        );
    }
}

/// PEM loading: any bytes as a combined certificate-and-key file load or fail, never panic.
pub fn pem(data: &[u8]) {
    let _ = Identity::from_pem(data, data);
    if let Some(split) = data.iter().position(|&b| b == 0) {
        let _ = Identity::from_pem(&data[..split], &data[split + 1..]);
    }
}

/// The OCSP response reader: any bytes are a summary or `None`.
pub fn ocsp(data: &[u8]) {
    if let Some(summary) = OcspSummary::from_der(data) {
        let _ = summary.is_stale(SystemTime::now());
    }
}

/// Session tickets come from clients: any bytes decrypt to nothing (they cannot be forged), and
/// anything sealed opens to itself.
pub fn ticket(data: &[u8]) {
    thread_local! {
        static TICKETER: Option<Arc<crate::tls::tickets::ServerTicketer>> =
            TicketKeys::generate(Duration::from_secs(3600))
                .ok()
                .map(|keys| Arc::new(keys).ticketer("fuzz", None));
    }
    TICKETER.with(|ticketer| {
        let Some(ticketer) = ticketer else { return };
        assert_eq!(ticketer.decrypt(data), None, "a forged ticket opened");
        if let Some(sealed) = ticketer.encrypt(data) {
            assert_eq!(ticketer.decrypt(&sealed).as_deref(), Some(data));
        }
    });
}

/// The PROXY header encoder: whatever the addresses, SNI and ALPN, the header parses back (with
/// the `ppp` parser) to the same addresses and names.
pub fn proxy_header(data: &[u8]) {
    let mut input = Bytes(data);
    let client = input.address();
    let server = input.address();
    let sni = input.text();
    let alpn = input.text();
    let info = ConnInfo {
        server: Arc::from("fuzz"),
        route: None,
        local_addr: server,
        peer_addr: client,
        sni: sni.clone(),
        alpn: alpn.clone(),
        tls_version: input.text().unwrap_or_default(),
        cipher_suite: input.text().unwrap_or_default(),
        key_exchange_group: Some("X25519"),
        resumed: false,
        client_cert: None,
        handshake_duration: Duration::ZERO,
    };

    if let Ok(v1) = ProxyProtocol::V1.header(&info) {
        let text = String::from_utf8(v1).expect("a v1 header is text");
        let parsed = ppp::v1::Header::try_from(text.as_str()).expect("a v1 header parses");
        let same_family = client.is_ipv4() == server.is_ipv4();
        let expected = match (client, server) {
            (SocketAddr::V4(c), SocketAddr::V4(s)) => {
                ppp::v1::Addresses::new_tcp4(*c.ip(), *s.ip(), c.port(), s.port())
            }
            (SocketAddr::V6(c), SocketAddr::V6(s)) => {
                ppp::v1::Addresses::new_tcp6(*c.ip(), *s.ip(), c.port(), s.port())
            }
            _ => ppp::v1::Addresses::Unknown,
        };
        assert_eq!(
            parsed.addresses, expected,
            "v1 (same family: {same_family})"
        );
    }

    if let Ok(v2) = ProxyProtocol::V2.header(&info) {
        let parsed = ppp::v2::Header::try_from(v2.as_slice()).expect("a v2 header parses");
        match (client, server, parsed.addresses) {
            (SocketAddr::V4(c), SocketAddr::V4(s), ppp::v2::Addresses::IPv4(a)) => {
                assert_eq!((a.source_address, a.source_port), (*c.ip(), c.port()));
                assert_eq!(
                    (a.destination_address, a.destination_port),
                    (*s.ip(), s.port())
                );
            }
            (SocketAddr::V6(c), SocketAddr::V6(s), ppp::v2::Addresses::IPv6(a)) => {
                assert_eq!((a.source_address, a.source_port), (*c.ip(), c.port()));
                assert_eq!(
                    (a.destination_address, a.destination_port),
                    (*s.ip(), s.port())
                );
            }
            (c, s, _) => {
                // Mixed families (impossible from one socket) go out as AF_UNSPEC, whose
                // address block and TLVs a receiver ignores.
                assert_ne!(c.is_ipv4(), s.is_ipv4(), "addresses lost");
                return;
            }
        }
        let tlv = |kind: ppp::v2::Type| {
            parsed
                .tlvs()
                .filter_map(Result::ok)
                .find(|t| t.kind == u8::from(kind))
                .map(|t| t.value.into_owned())
        };
        assert_eq!(tlv(ppp::v2::Type::Authority), sni.map(String::into_bytes));
        assert_eq!(tlv(ppp::v2::Type::ALPN), alpn.map(String::into_bytes));
    }
}

/// Structured values read from the front of fuzz input; zeros once it runs out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    fn byte(&mut self) -> u8 {
        self.take(1).first().copied().unwrap_or(0)
    }

    fn address(&mut self) -> SocketAddr {
        let ip = if self.byte() % 2 == 0 {
            let mut octets = [0u8; 4];
            octets.iter_mut().for_each(|o| *o = self.byte());
            IpAddr::V4(Ipv4Addr::from(octets))
        } else {
            let mut octets = [0u8; 16];
            octets.iter_mut().for_each(|o| *o = self.byte());
            IpAddr::V6(Ipv6Addr::from(octets))
        };
        SocketAddr::new(ip, u16::from_be_bytes([self.byte(), self.byte()]))
    }

    /// A length byte, then that many bytes as (lossy) text; `None` for length zero.
    fn text(&mut self) -> Option<String> {
        let len = usize::from(self.byte());
        (len > 0).then(|| String::from_utf8_lossy(self.take(len)).into_owned())
    }
}

#[cfg(test)]
mod tests {
    //! Replays the committed corpora, so every input a fuzzer saved stays a regression test.
    use std::path::PathBuf;

    fn replay(target: &str, run: fn(&[u8])) {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus")
            .join(target);
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            run(&std::fs::read(&path).unwrap());
            count += 1;
        }
        assert!(count > 0, "{} holds no seeds", dir.display());
    }

    #[test]
    fn config_corpus() {
        replay("config", super::config);
    }

    #[test]
    fn pem_corpus() {
        replay("pem", super::pem);
    }

    #[test]
    fn ocsp_corpus() {
        replay("ocsp", super::ocsp);
    }

    #[test]
    fn ticket_corpus() {
        replay("ticket", super::ticket);
    }

    #[test]
    fn proxy_header_corpus() {
        replay("proxy_header", super::proxy_header);
    }
}
