//! ClientHellos that would make the server hold a large buffer for the whole handshake timeout,
//! against a live daemon, memory from /proc. Before `max_client_hello`, a 48-60 KiB hello with
//! its last record held back cost 80-104 KiB of RSS per connection for 10 s.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{free_port, servers_config, Daemon};
use tlsplex_testkit::TestPki;

const CONNECTIONS: usize = 200;
/// What a hello held back at the default limit (16 KiB) may cost: the limit and the
/// connection's own ~7 KiB (docs/reliability.md, case 1).
const BUDGET_KIB: u64 = 32;

/// A handshake record of `len` bytes starting a ClientHello that says it is `claimed` bytes.
fn hello_start(len: u16, claimed: u32) -> Vec<u8> {
    let [_, a, b, c] = claimed.to_be_bytes();
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&len.to_be_bytes());
    record.extend_from_slice(&[0x01, a, b, c]);
    record.resize(5 + usize::from(len), 0);
    record
}

fn start() -> (TestPki, Daemon, SocketAddr) {
    let pki = TestPki::new();
    pki.issue("web", &["web.test"]);
    let port = free_port();
    let config = servers_config(pki.dir(), &[("web", port)], "10s");
    let mut daemon = Daemon::start(&["run", "-c", config.to_str().unwrap()]);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    daemon.wait_listening(&[addr]);
    (pki, daemon, addr)
}

/// Reads until the server closes (or `limit` passes): what it sent.
fn until_closed(tcp: &mut TcpStream, limit: Duration) -> Vec<u8> {
    tcp.set_read_timeout(Some(limit)).unwrap();
    let mut got = Vec::new();
    let mut buffer = [0u8; 256];
    loop {
        match tcp.read(&mut buffer) {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buffer[..n]),
        }
    }
}

#[test]
fn a_hello_that_says_it_is_large_is_refused_at_once() {
    let (_pki, _daemon, addr) = start();
    let started = Instant::now();
    let mut attackers = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut tcp = TcpStream::connect(addr).unwrap();
        // A 60 KiB hello, its first record whole; the rest never comes.
        tcp.write_all(&hello_start(16_000, 60_000)).unwrap();
        attackers.push(tcp);
    }
    for tcp in &mut attackers {
        let answer = until_closed(tcp, Duration::from_secs(5));
        // A fatal decode_error alert (as for any message longer than allowed), then the close.
        assert_eq!(answer, [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 50]);
    }
    let took = started.elapsed();
    eprintln!("{CONNECTIONS} hellos claiming 60 KiB: all refused and closed in {took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn a_hello_held_back_costs_at_most_its_limit() {
    let (_pki, daemon, addr) = start();
    // Warm up (threads, arenas) with one such connection.
    let mut warm = TcpStream::connect(addr).unwrap();
    warm.write_all(&hello_start(16_000, 15_996)[..16_000])
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let before = daemon.rss_kib();
    let mut attackers = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut tcp = TcpStream::connect(addr).unwrap();
        // As large a hello as the default limit allows, its last bytes held back.
        tcp.write_all(&hello_start(16_000, 15_996)[..16_000])
            .unwrap();
        attackers.push(tcp);
    }
    std::thread::sleep(Duration::from_millis(1000));
    let peak = daemon.rss_kib();
    let per_connection = peak.saturating_sub(before) / CONNECTIONS as u64;
    eprintln!(
        "held-back hellos: RSS {before} KiB -> {peak} KiB with {CONNECTIONS} connections: \
         {per_connection} KiB each"
    );
    assert!(
        per_connection <= BUDGET_KIB,
        "{per_connection} KiB per connection (budget {BUDGET_KIB})"
    );
    // A hello in several records that go past the limit: refused when the record that would
    // cross it is announced, before its body is read.
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.write_all(&hello_start(8_000, 16_000)).unwrap();
    let mut second = vec![0x16, 0x03, 0x01, 0x3a, 0x98]; // 15,000 more bytes announced
    second.resize(5 + 100, 0);
    tcp.write_all(&second).unwrap();
    let answer = until_closed(&mut tcp, Duration::from_secs(5));
    assert_eq!(answer, [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 50]);
    drop(attackers);
}
