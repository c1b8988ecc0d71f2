//! Reloads and drains under load: clients keep requests going to every server of a live daemon
//! while it reloads 50 times (every fifth with a broken certificate), gains a server and loses
//! one, then drains. Servers that were not removed fail no request.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{free_port, Daemon};
use rustls::ClientConfig;
use tlsplex_testkit::{connect, get, read_response, TestPki};
use tokio::io::AsyncWriteExt;

const RELOADS: usize = 50;

#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    failed: AtomicUsize,
}

/// New connections (a full handshake each) and one keep-alive connection, until `stop`.
fn load(
    addr: SocketAddr,
    name: &'static str,
    client: Arc<ClientConfig>,
    stop: Arc<AtomicBool>,
) -> Arc<Tally> {
    let tally = Arc::new(Tally::default());
    let (fresh, kept) = (tally.clone(), tally.clone());
    let (fresh_client, fresh_stop) = (client.clone(), stop.clone());
    tokio::spawn(async move {
        while !fresh_stop.load(Ordering::Relaxed) {
            let sni = format!("{name}.test");
            match get(addr, &sni, "/", fresh_client.clone()).await {
                Ok((response, _)) if response.status == 200 => {
                    fresh.ok.fetch_add(1, Ordering::Relaxed)
                }
                _ => fresh.failed.fetch_add(1, Ordering::Relaxed),
            };
        }
    });
    tokio::spawn(async move {
        let sni = format!("{name}.test");
        let Ok(mut stream) = connect(addr, &sni, client).await else {
            kept.failed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let request = format!("GET / HTTP/1.1\r\nHost: {sni}\r\n\r\n");
        while !stop.load(Ordering::Relaxed) {
            let answered = async {
                stream.write_all(request.as_bytes()).await?;
                read_response(&mut stream).await
            };
            match answered.await {
                Ok(response) if response.status == 200 => kept.ok.fetch_add(1, Ordering::Relaxed),
                _ => {
                    kept.failed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_reloads_an_added_and_a_removed_server_fail_no_request() {
    let pki = TestPki::new();
    for name in ["a", "b", "c", "d"] {
        pki.issue(name, &[&format!("{name}.test")]);
    }
    let ports = [free_port(), free_port(), free_port(), free_port()];
    let write_config = |servers: &[(&str, u16)]| common::servers_config(pki.dir(), servers, "5s");
    let config = write_config(&[("a", ports[0]), ("b", ports[1]), ("c", ports[2])]);
    let mut daemon = Daemon::start(&["run", "-c", config.to_str().unwrap()]);
    let addr = |i: usize| SocketAddr::from(([127, 0, 0, 1], ports[i]));
    daemon.wait_listening(&[addr(0), addr(1), addr(2)]);

    let client = pki.client(&["http/1.1"]);
    let stop = Arc::new(AtomicBool::new(false));
    let stop_c = Arc::new(AtomicBool::new(false));
    let a = load(addr(0), "a", client.clone(), stop.clone());
    let b = load(addr(1), "b", client.clone(), stop.clone());
    let c = load(addr(2), "c", client.clone(), stop_c.clone());

    let good_cert = std::fs::read(pki.dir().join("a.pem")).unwrap();
    let mut refused = 0;
    for reload in 0..RELOADS {
        if reload == 20 {
            write_config(&[
                ("a", ports[0]),
                ("b", ports[1]),
                ("c", ports[2]),
                ("d", ports[3]),
            ]);
        }
        if reload == 35 {
            stop_c.store(true, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(100)).await;
            write_config(&[("a", ports[0]), ("b", ports[1]), ("d", ports[3])]);
        }
        let broken = reload % 5 == 4;
        if broken {
            std::fs::write(
                pki.dir().join("a.pem"),
                b"-----BEGIN CERTIFICATE-----\nnot base64\n",
            )
            .unwrap();
        }
        daemon.signal("HUP");
        let outcome = if broken { "reload refused" } else { "reloaded" };
        assert!(
            daemon.wait_log(outcome, Duration::from_secs(10)),
            "reload {reload}: no {outcome:?} in the log"
        );
        if broken {
            refused += 1;
            std::fs::write(pki.dir().join("a.pem"), &good_cert).unwrap();
        }
        if reload == 20 {
            let (response, _) = get(addr(3), "d.test", "/", client.clone()).await.unwrap();
            assert_eq!(response.status, 200, "the added server serves");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        get(addr(2), "c.test", "/", client.clone()).await.is_err(),
        "the removed server's port is closed"
    );

    stop.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(200)).await;
    for (name, tally) in [("a", &a), ("b", &b), ("c (until removed)", &c)] {
        eprintln!(
            "{name}: {} requests answered, {} failed",
            tally.ok.load(Ordering::Relaxed),
            tally.failed.load(Ordering::Relaxed)
        );
    }
    eprintln!("{RELOADS} reloads, {refused} refused for a broken certificate");
    for tally in [&a, &b, &c] {
        assert_eq!(tally.failed.load(Ordering::Relaxed), 0, "failed requests");
        assert!(tally.ok.load(Ordering::Relaxed) > 0);
    }

    // Finally a drain: the daemon stops accepting and exits cleanly within the grace period.
    daemon.signal("TERM");
    let status = daemon.wait_exit(Duration::from_secs(10)).expect("exited");
    assert!(status.success(), "{status}");
}
