//! Per-client limits against the daemon. `max_connections_per_client`: a client address past the
//! limit is closed at accept while others are served, and floods from 4,500 distinct loopback
//! addresses (127.0.0.0/8) cost a few KiB a connection and leave no descriptor behind.
//! `request_rate_per_client`: a burst, then `429` with `Retry-After` until the bucket refills,
//! another address served meanwhile, a `forward` connection over the rate closed before any
//! backend; a flood of distinct addresses fills the table to its size and no further.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

mod common;

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::admin::{http, register};
use common::{available, free_port, raise_own_open_files, Daemon};
use tlsplex_testkit::http_backend::HttpBackend;
use tlsplex_testkit::TestPki;

/// A TCP connection from `from` to the server.
fn connect_from(from: Ipv4Addr, port: u16) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::from((from, 0)).into()).unwrap();
    socket
        .connect(&SocketAddr::from(([127, 0, 0, 1], port)).into())
        .unwrap();
    socket.into()
}

/// curl's status for the status page, from `interface`.
fn curl_from(interface: &str, port: u16) -> String {
    curl_many_from(interface, port, 1, &[])
}

/// curl's statuses (and `extra` write-outs) for `count` requests on one connection, from
/// `interface`, one line each.
fn curl_many_from(interface: &str, port: u16, count: usize, extra: &[&str]) -> String {
    let url = format!("https://127.0.0.1:{port}/");
    let mut command = Command::new("curl");
    command.args(extra);
    for _ in 0..count {
        command.args(["-o", "/dev/null", &url]);
    }
    let write_out = if count == 1 {
        "%{http_code}"
    } else {
        "%{http_code}%header{retry-after} "
    };
    let out = command
        .args(["-sk", "-w", write_out, "--max-time", "10"])
        .args(["--interface", interface])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
}

#[test]
fn one_address_holds_at_most_its_share_and_a_flood_leaves_nothing_behind() {
    if !available("curl") {
        return;
    }
    raise_own_open_files();
    let pki = TestPki::new();
    pki.issue("web", &["web.test"]);
    let (port, admin) = (free_port(), free_port());
    let config = pki.dir().join("tlsplex.toml");
    std::fs::write(
        &config,
        format!(
            "[global]\nhandshake_timeout = \"30s\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\
             [[server]]\nname = \"web\"\nlisten = \"127.0.0.1:{port}\"\n\
             certificates = [{{ cert = \"web.pem\", key = \"web.key\" }}]\n\
             max_connections_per_client = 3\n"
        ),
    )
    .unwrap();
    register(admin, &pki.dir().join("admin.token"));
    let mut daemon = Daemon::start(&["run", "-c", config.to_str().unwrap()]);
    daemon.wait_listening(&[
        ([127, 0, 0, 1], port).into(),
        ([127, 0, 0, 1], admin).into(),
    ]);
    std::thread::sleep(Duration::from_millis(200)); // the readiness probe's connection closes

    let home = Ipv4Addr::new(127, 0, 0, 7);
    let held: Vec<TcpStream> = (0..3).map(|_| connect_from(home, port)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut fourth = connect_from(home, port);
    fourth
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let started = Instant::now();
    let read = fourth.read(&mut [0u8; 16]);
    assert!(
        matches!(read, Ok(0) | Err(_)) && started.elapsed() < Duration::from_secs(2),
        "the fourth from {home} is closed at accept: {read:?} after {:?}",
        started.elapsed()
    );
    assert_eq!(
        curl_from("127.0.0.8", port),
        "200",
        "another address is served"
    );
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        curl_from("127.0.0.7", port),
        "200",
        "slots come back when connections close"
    );
    let (_, metrics) = http(admin, "GET", "/metrics", None);
    assert!(
        metrics.contains("tlsplex_client_limited_connections_total{server=\"web\"} 1"),
        "{metrics}"
    );

    // Three floods of 1,500 connections, each from its own address, held and then closed: the
    // descriptors come back, and a held flood costs a few KiB per connection. (The table's own
    // entries, a few dozen bytes each, are below what RSS can show: the unit test proves they
    // go with their connections.)
    let fds = daemon.open_fds();
    let base = daemon.rss_kib();
    let mut rss = Vec::new();
    let mut peak = 0;
    for round in 0..3u8 {
        let flood: Vec<TcpStream> = (0..1500u16)
            .map(|i| {
                let (hi, lo) = ((i / 250) as u8, (i % 250 + 1) as u8);
                connect_from(Ipv4Addr::new(127, 10 + round, hi, lo), port)
            })
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        peak = peak.max(daemon.rss_kib());
        drop(flood);
        std::thread::sleep(Duration::from_millis(700));
        rss.push(daemon.rss_kib());
    }
    eprintln!(
        "RSS {base} KiB before, {peak} KiB at most while a flood was held, {rss:?} after each"
    );
    assert!(
        peak < base + 1500 * 12,
        "a held connection costs under 12 KiB: {base} -> {peak} KiB"
    );
    assert!(
        daemon.open_fds() <= fds + 2,
        "descriptors come back: {fds} before"
    );
    assert_eq!(curl_from("127.0.0.9", port), "200");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_a_clients_rate_get_429_and_a_flood_fills_the_table_no_further() {
    if !available("curl") {
        return;
    }
    let backend = HttpBackend::start().await;
    let pki = TestPki::new();
    pki.issue("web", &["web.test"]);
    let (web, flooded, relay) = (free_port(), free_port(), free_port());
    let config = pki.dir().join("tlsplex.toml");
    let server = |name: &str, port: u16, rate: &str, handler: &str| {
        format!(
            "[[server]]\nname = \"{name}\"\nlisten = \"127.0.0.1:{port}\"\n\
             certificates = [{{ cert = \"web.pem\", key = \"web.key\" }}]\n\
             request_rate_per_client = {rate}\nhandler = {handler}\n"
        )
    };
    let respond = "{ type = \"respond\", body = \"ok\" }";
    let forward = format!("{{ type = \"forward\", backend = \"{}\" }}", backend.addr);
    std::fs::write(
        &config,
        server("web", web, "{ per_second = 2, burst = 5 }", respond)
            // A bucket that takes 60 s to refill: nothing leaves the table during the test.
            + &server("flooded", flooded, "{ per_second = 1, burst = 60, clients = 50 }", respond)
            + &server("relay", relay, "{ per_second = 1, burst = 2 }", &forward),
    )
    .unwrap();
    let mut daemon = Daemon::start(&["run", "-c", config.to_str().unwrap()]);
    let ports = [web, flooded, relay];
    daemon.wait_listening(&ports.map(|p| ([127, 0, 0, 1], p).into()));

    tokio::task::block_in_place(|| {
        for (interface, version) in [("127.0.0.7", "--http1.1"), ("127.0.0.17", "--http2")] {
            // Five at once (the burst), then 429 with the wait: half a second at 2/s.
            let codes = curl_many_from(interface, web, 7, &[version]);
            assert_eq!(codes, "200 200 200 200 200 4291 4291", "{version}");
            assert_eq!(
                curl_from("127.0.0.8", web),
                "200",
                "another address is served"
            );
            std::thread::sleep(Duration::from_millis(1100));
            assert_eq!(
                curl_many_from(interface, web, 3, &[version]),
                "200 200 4291",
                "two came back in a second"
            );
        }

        // A relayed connection is one request: the third within the second reaches no backend.
        let codes: Vec<String> = (0..3).map(|_| curl_from("127.0.0.9", relay)).collect();
        assert_eq!(codes, ["200", "200", "000"]);
        assert_eq!(backend.connections(), 2);

        // 150 distinct addresses, one request each: the first 50 fill the table, the others
        // are refused while it is full, and an address already in it is still served.
        let first = Ipv4Addr::new(127, 20, 0, 1);
        let served: Vec<String> = (0..150u8)
            .map(|i| curl_from(&Ipv4Addr::new(127, 20, 0, i + 1).to_string(), flooded))
            .collect();
        let count = |code: &str| served.iter().filter(|c| *c == code).count();
        assert_eq!((count("200"), count("429")), (50, 100), "{served:?}");
        assert!(served[..50].iter().all(|c| c == "200"));
        assert_eq!(curl_from(&first.to_string(), flooded), "200");
    });
}
