//! Certificate compression (RFC 8879): off by default, and with `cert_compression` the
//! certificate message shrinks for clients that offer a decompressor.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use tlsplex::rustls::{self, ClientConfig, ClientConnection};
use tlsplex::{Context, ServerOptions, TlsPolicy};
use tlsplex_testkit::{any_port, start, TestPki};

/// A socket that counts the bytes it reads.
struct Counting {
    tcp: TcpStream,
    read: usize,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.tcp.read(buf)?;
        self.read += n;
        Ok(n)
    }
}

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tcp.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

/// The bytes the server sends during one full handshake.
fn handshake_bytes(addr: SocketAddr, client: Arc<ClientConfig>) -> usize {
    let name = "zip.test".try_into().unwrap();
    let mut tls = ClientConnection::new(client, name).unwrap();
    let mut socket = Counting {
        tcp: TcpStream::connect(addr).unwrap(),
        read: 0,
    };
    while tls.is_handshaking() {
        tls.complete_io(&mut socket).unwrap();
    }
    socket.read
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_certificate_is_compressed_only_when_turned_on_and_offered() {
    let pki = TestPki::new();
    let ctx = Context::builder().build();
    // Many names: a certificate message as large as a real chain's, and compressible.
    let names: Vec<String> = (0..40).map(|i| format!("host-{i}.zip.test")).collect();
    let mut names: Vec<&str> = names.iter().map(String::as_str).collect();
    names.insert(0, "zip.test");
    let cert = pki.issue("zip", &names);
    let plain = start(&ctx, ServerOptions::new("plain", any_port(), cert.store()));
    let mut compressing = TlsPolicy::default();
    compressing.cert_compression = true;
    let zipped = start(
        &ctx,
        ServerOptions::new("zipped", any_port(), cert.store()).tls(compressing),
    );

    let offering = pki.client(&[]); // rustls offers brotli and zlib by default
    let mut refusing = (*pki.client(&[])).clone();
    refusing.cert_decompressors = Vec::new();
    let refusing = Arc::new(refusing);
    assert!(!offering.cert_decompressors.is_empty());

    let (plain_bytes, zipped_bytes, refused_bytes) = tokio::task::spawn_blocking(move || {
        (
            handshake_bytes(plain, offering.clone()),
            handshake_bytes(zipped, offering),
            handshake_bytes(zipped, refusing),
        )
    })
    .await
    .unwrap();
    assert!(
        zipped_bytes + 500 < plain_bytes,
        "compressed: {zipped_bytes} bytes against {plain_bytes} uncompressed"
    );
    let difference = refused_bytes.abs_diff(plain_bytes);
    assert!(
        difference < 64,
        "a client without decompressors gets the plain certificate: {refused_bytes} against {plain_bytes}"
    );
}

#[test]
fn rustls_offers_both_algorithms() {
    let names: Vec<_> = rustls::compress::default_cert_compressors()
        .iter()
        .map(|c| c.algorithm())
        .collect();
    assert_eq!(names.len(), 2, "brotli and zlib: {names:?}");
}
