//! Full TLS handshakes from a rustls client, one after another, for measuring a server's CPU per
//! handshake with what `h2load` (OpenSSL 3.0) cannot offer: post-quantum key exchange and
//! certificate compression. `bench/handshake-cost.sh` runs it.
//!
//! ```text
//! handshake_load ADDR SNI CA_PEM COUNT [--groups X25519MLKEM768,X25519] [--no-decompression]
//! ```
//!
//! Each connection sends one HTTP/1.1 request and reads until the server closes; no session is
//! resumed. Prints the groups negotiated and the server's handshake bytes, per connection.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a measuring tool: stop on the first failure

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use rustls::{ClientConfig, ClientConnection, RootCertStore};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, sni, ca, count, options @ ..] = args.as_slice() else {
        eprintln!(
            "usage: handshake_load ADDR SNI CA_PEM COUNT [--groups A,B] [--no-decompression]"
        );
        std::process::exit(2);
    };
    let count: usize = count.parse().expect("COUNT is a number");
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    let mut decompression = true;
    let mut options = options.iter();
    while let Some(option) = options.next() {
        match option.as_str() {
            "--groups" => {
                let names: Vec<&str> = options.next().expect("--groups A,B").split(',').collect();
                provider.kx_groups = names
                    .iter()
                    .map(|name| {
                        *rustls::crypto::aws_lc_rs::ALL_KX_GROUPS
                            .iter()
                            .find(|g| g.name().as_str() == Some(name))
                            .unwrap_or_else(|| panic!("unknown group {name}"))
                    })
                    .collect();
            }
            "--no-decompression" => decompression = false,
            other => panic!("unknown option {other}"),
        }
    }
    let mut roots = RootCertStore::empty();
    let pem = std::fs::read(ca).expect("the CA file");
    for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(&pem) {
        roots.add(cert.expect("a PEM certificate")).unwrap();
    }
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    if !decompression {
        config.cert_decompressors = Vec::new();
    }
    let config = Arc::new(config);
    let name = rustls_pki_types::ServerName::try_from(sni.clone()).expect("SNI is a name");
    let request = format!("GET / HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n");

    let mut groups = std::collections::BTreeMap::<String, usize>::new();
    let mut handshake_bytes = 0;
    for _ in 0..count {
        let mut tls = ClientConnection::new(config.clone(), name.clone()).unwrap();
        let mut tcp = TcpStream::connect(addr.as_str()).unwrap();
        tcp.set_nodelay(true).unwrap();
        while tls.is_handshaking() {
            let (read, _) = tls.complete_io(&mut tcp).unwrap();
            handshake_bytes += read;
        }
        let group = tls
            .negotiated_key_exchange_group()
            .and_then(|g| g.name().as_str())
            .unwrap_or("none");
        *groups.entry(group.to_owned()).or_default() += 1;
        let mut stream = rustls::Stream::new(&mut tls, &mut tcp);
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = Vec::new();
        // The server closes after the response; an unclean close still ends the read.
        let _ = stream.read_to_end(&mut response);
        assert!(
            response.starts_with(b"HTTP/1.1 200"),
            "a 200 response, not {:?}",
            String::from_utf8_lossy(&response[..response.len().min(200)])
        );
    }
    println!(
        "handshakes={count} groups={groups:?} server_handshake_bytes_each={}",
        handshake_bytes / count.max(1)
    );
}
