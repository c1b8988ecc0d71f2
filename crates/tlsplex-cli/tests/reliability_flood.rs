//! Handshake flood / slowloris against a live two-server process: 2,000 connections that send
//! nothing or one byte of a ClientHello and stall. All are closed by the handshake timeout, a
//! well-behaved client is served meanwhile, and memory and descriptors return to their level.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{free_port, raise_own_open_files, Daemon};
use tlsplex_testkit::{get, TestPki};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const FLOOD: usize = 2_000;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

struct Figures {
    opened_in: Duration,
    all_closed_after: Duration,
    rss_peak: u64,
    rss_after: u64,
    fds_peak: usize,
    fds_after: usize,
    latencies: Vec<Duration>,
}

/// Opens `FLOOD` stalled connections across both servers (half send nothing, half one byte of a
/// record header), has a well-behaved client served meanwhile, and waits until the server has
/// closed every stalled one.
async fn flood(
    daemon: &Daemon,
    servers: [(SocketAddr, &str); 2],
    client: &std::sync::Arc<rustls::ClientConfig>,
) -> Figures {
    let fds_before = daemon.open_fds();
    let started = Instant::now();
    let mut stalled = Vec::with_capacity(FLOOD);
    for i in 0..FLOOD {
        let (addr, _) = servers[i % 2];
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        if i % 4 >= 2 {
            tcp.write_all(&[0x16]).await.unwrap();
        }
        stalled.push(tcp);
    }
    let opened_in = started.elapsed();

    let mut latencies = Vec::new();
    let mut rss_peak = daemon.rss_kib();
    let served_until = started + HANDSHAKE_TIMEOUT - Duration::from_millis(500);
    while Instant::now() < served_until {
        for (addr, name) in servers {
            let asked = Instant::now();
            let (response, _) = get(addr, name, "/", client.clone())
                .await
                .expect("a well-behaved client is served during the flood");
            assert_eq!(response.status, 200);
            latencies.push(asked.elapsed());
        }
        rss_peak = rss_peak.max(daemon.rss_kib());
    }
    latencies.sort();
    let fds_peak = daemon.open_fds();
    assert!(
        fds_peak >= fds_before + FLOOD / 2,
        "the flood was held open: {fds_before} → {fds_peak} descriptors"
    );

    let closers: Vec<_> = stalled
        .into_iter()
        .map(|mut tcp| {
            tokio::spawn(async move {
                let mut byte = [0u8; 1];
                tokio::time::timeout(HANDSHAKE_TIMEOUT * 3, tcp.read(&mut byte))
                    .await
                    .is_ok()
            })
        })
        .collect();
    for closer in closers {
        assert!(closer.await.unwrap(), "a stalled connection stayed open");
    }
    let all_closed_after = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(5);
    while daemon.open_fds() > fds_before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    Figures {
        opened_in,
        all_closed_after,
        rss_peak,
        rss_after: daemon.rss_kib(),
        fds_peak,
        fds_after: daemon.open_fds(),
        latencies,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_flood_on_two_servers_is_shed_while_others_are_served() {
    raise_own_open_files();
    let pki = TestPki::new();
    pki.issue("a", &["a.test"]);
    pki.issue("b", &["b.test"]);
    let (port_a, port_b) = (free_port(), free_port());
    let config = common::servers_config(pki.dir(), &[("a", port_a), ("b", port_b)], "3s");
    let mut daemon = Daemon::start(&["run", "-c", config.to_str().unwrap()]);
    let servers: [(SocketAddr, &str); 2] = [
        (([127, 0, 0, 1], port_a).into(), "a.test"),
        (([127, 0, 0, 1], port_b).into(), "b.test"),
    ];
    daemon.wait_listening(&servers.map(|(addr, _)| addr));
    let client = pki.client(&["http/1.1"]);

    // Warm up (runtime threads, allocator arenas), then take the baseline.
    for _ in 0..20 {
        for (addr, name) in servers {
            get(addr, name, "/", client.clone()).await.unwrap();
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (rss_before, fds_before) = (daemon.rss_kib(), daemon.open_fds());
    let first = flood(&daemon, servers, &client).await;
    let second = flood(&daemon, servers, &client).await;
    for (round, figures) in [(1, &first), (2, &second)] {
        eprintln!(
            "flood {round}: {FLOOD} stalled connections opened in {:?}, all closed by {:?}; RSS {rss_before} KiB at start, \
             {} KiB peak ({:.1} KiB per stalled connection), {} KiB after; fds {fds_before} → {} → {}; \
             well-behaved client: {} requests, p50 {:?}, p99 {:?}, max {:?}",
            figures.opened_in,
            figures.all_closed_after,
            figures.rss_peak,
            figures.rss_peak.saturating_sub(rss_before) as f64 / FLOOD as f64,
            figures.rss_after,
            figures.fds_peak,
            figures.fds_after,
            figures.latencies.len(),
            percentile(&figures.latencies, 0.5),
            percentile(&figures.latencies, 0.99),
            figures.latencies.last().unwrap(),
        );
        assert!(
            figures.fds_after <= fds_before,
            "descriptors: {fds_before} before, {} after",
            figures.fds_after
        );
        assert!(
            percentile(&figures.latencies, 0.99) < Duration::from_secs(1),
            "the well-behaved client waited: {:?}",
            figures.latencies
        );
    }
    // Memory: the allocator keeps what the first flood freed for reuse, and the second flood
    // reuses it instead of growing (a leak would add another flood's worth). Not all of it:
    // the connections land on either worker thread's malloc arena, and the second flood's
    // split may differ from the first's. Over 12 runs the second peak was 0.2 to 5.0 MB above
    // the first (growth ~15 MB); a quarter of the growth was once too tight.
    let first_growth = first.rss_peak.saturating_sub(rss_before);
    assert!(
        second.rss_peak <= first.rss_peak + first_growth / 2 + 1024,
        "RSS peaks: {} KiB, then {} KiB (started at {rss_before} KiB)",
        first.rss_peak,
        second.rss_peak
    );

    // And both servers still serve.
    for (addr, name) in servers {
        assert_eq!(
            get(addr, name, "/", client.clone()).await.unwrap().0.status,
            200
        );
    }
}
