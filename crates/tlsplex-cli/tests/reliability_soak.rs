//! Soak: mixed load on four servers of a live daemon with a reload every few seconds; RSS and
//! descriptor counts stay level. 60 s by default (CI); `TLSPLEX_SOAK_SECS=600` for the long run.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{free_port, Daemon};
use tlsplex_testkit::{connect, get, read_response, TestPki};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const NAMES: [&str; 4] = ["a", "b", "c", "d"];

fn soak_duration() -> Duration {
    let seconds = std::env::var("TLSPLEX_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    Duration::from_secs(seconds)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_load_with_reloads_keeps_memory_and_descriptors_level() {
    let pki = TestPki::new();
    let ports: Vec<(&str, u16)> = NAMES.iter().map(|name| (*name, free_port())).collect();
    for name in NAMES {
        pki.issue(name, &[&format!("{name}.test")]);
    }
    let config = common::servers_config(pki.dir(), &ports, "1s");
    let servers: Vec<(SocketAddr, String)> = ports
        .iter()
        .map(|(name, port)| {
            (
                SocketAddr::from(([127, 0, 0, 1], *port)),
                format!("{name}.test"),
            )
        })
        .collect();
    let mut daemon = Daemon::start(&["run", "-c", config.to_str().unwrap()]);
    daemon.wait_listening(&servers.iter().map(|(addr, _)| *addr).collect::<Vec<_>>());
    let client = pki.client(&["http/1.1"]);
    for (addr, sni) in &servers {
        get(*addr, sni, "/", client.clone()).await.unwrap();
    }
    let fds_before = daemon.open_fds();

    let stop = Arc::new(AtomicBool::new(false));
    let (answered, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut workers = Vec::new();
    for (i, (addr, sni)) in servers.iter().cloned().enumerate() {
        let (stop, answered, failed, client) = (
            stop.clone(),
            answered.clone(),
            failed.clone(),
            client.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut round = 0usize;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                match (round + i) % 4 {
                    // A full handshake and one request.
                    0 => match get(addr, &sni, "/", client.clone()).await {
                        Ok((response, _)) if response.status == 200 => {
                            answered.fetch_add(1, Ordering::Relaxed)
                        }
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    },
                    // Ten keep-alive requests on one connection.
                    1 => {
                        let Ok(mut tls) = connect(addr, &sni, client.clone()).await else {
                            failed.fetch_add(1, Ordering::Relaxed);
                            continue;
                        };
                        let request = format!("GET / HTTP/1.1\r\nHost: {sni}\r\n\r\n");
                        for _ in 0..10 {
                            tls.write_all(request.as_bytes()).await.unwrap();
                            match read_response(&mut tls).await {
                                Ok(r) if r.status == 200 => {
                                    answered.fetch_add(1, Ordering::Relaxed)
                                }
                                _ => failed.fetch_add(1, Ordering::Relaxed),
                            };
                        }
                        0
                    }
                    // Garbage instead of a ClientHello: the server answers with an alert.
                    2 => {
                        let mut tcp = TcpStream::connect(addr).await.unwrap();
                        let _ = tcp.write_all(&[0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3]).await;
                        let mut reply = Vec::new();
                        let _ = tokio::time::timeout(
                            Duration::from_secs(2),
                            tcp.read_to_end(&mut reply),
                        )
                        .await;
                        0
                    }
                    // A stalled half record, left to the handshake timeout.
                    _ => {
                        let mut tcp = TcpStream::connect(addr).await.unwrap();
                        let _ = tcp.write_all(&[0x16, 0x03]).await;
                        tokio::spawn(async move {
                            let mut byte = [0u8; 1];
                            let _ =
                                tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut byte))
                                    .await;
                        });
                        0
                    }
                };
            }
        }));
    }

    let duration = soak_duration();
    let sample_every = (duration / 12).max(Duration::from_secs(1));
    let started = Instant::now();
    let mut series = Vec::new();
    let mut reloads = 0;
    while started.elapsed() < duration {
        tokio::time::sleep(sample_every).await;
        daemon.signal("HUP");
        reloads += 1;
        assert!(
            daemon.wait_log("reloaded", Duration::from_secs(10)),
            "reload {reloads}"
        );
        series.push((
            started.elapsed().as_secs(),
            daemon.rss_kib(),
            daemon.open_fds(),
        ));
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    // Stalled connections end at the handshake timeout (1 s); descriptors come back.
    let deadline = Instant::now() + Duration::from_secs(5);
    while daemon.open_fds() > fds_before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let fds_after = daemon.open_fds();

    let text: Vec<String> = series
        .iter()
        .map(|(at, rss, fds)| format!("{at}s: {rss} KiB, {fds} fds"))
        .collect();
    eprintln!(
        "soak {duration:?}: {} requests answered, {} failed, {reloads} reloads; fds {fds_before} before, \
         {fds_after} after; series: {}",
        answered.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        text.join("; ")
    );
    assert_eq!(failed.load(Ordering::Relaxed), 0, "failed requests");
    assert!(
        fds_after <= fds_before,
        "descriptors: {fds_before} → {fds_after}"
    );
    // Level memory: the last third of the run peaks no higher than the first third did, give
    // or take 10 % and 2 MiB of allocator noise.
    let third = series.len() / 3;
    let peak = |part: &[(u64, u64, usize)]| part.iter().map(|s| s.1).max().unwrap_or(0);
    let (early, late) = (
        peak(&series[..third.max(1)]),
        peak(&series[series.len() - third.max(1)..]),
    );
    assert!(
        late <= early + early / 10 + 2048,
        "RSS grew: early peak {early} KiB, late peak {late} KiB"
    );
}
