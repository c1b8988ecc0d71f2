//! Resource exhaustion: the daemon runs under `ulimit -n 64` and is flooded past it. Accept backs
//! off without spinning the CPU, logs once per interval, and recovers when descriptors free up.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{free_port, Daemon, BIN};
use tlsplex_testkit::{get, TestPki};
use tokio::net::TcpStream;

const OPEN_FILES: usize = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_descriptors_backs_off_quietly_and_recovers() {
    let pki = TestPki::new();
    pki.issue("a", &["a.test"]);
    pki.issue("b", &["b.test"]);
    let (port_a, port_b) = (free_port(), free_port());
    // Stalled connections stay for the whole test: only the descriptor limit stops accepts.
    let config = common::servers_config(pki.dir(), &[("a", port_a), ("b", port_b)], "60s");
    // `ulimit -n` sets the hard limit too: the daemon cannot raise it back.
    let mut daemon = Daemon::start_program(
        "sh",
        &[
            "-c",
            &format!("ulimit -n {OPEN_FILES} && exec \"$0\" \"$@\""),
            BIN,
            "run",
            "-c",
            config.to_str().unwrap(),
        ],
        &[],
    );
    let servers: [(SocketAddr, &str); 2] = [
        (([127, 0, 0, 1], port_a).into(), "a.test"),
        (([127, 0, 0, 1], port_b).into(), "b.test"),
    ];
    daemon.wait_listening(&servers.map(|(addr, _)| addr));
    assert!(
        daemon.wait_log(
            "the open-files limit is below max_connections",
            Duration::from_secs(5)
        ),
        "the start-up warning about the limit"
    );
    let client = pki.client(&["http/1.1"]);

    // Twice the limit in silent connections: the kernel queues what the daemon cannot accept.
    let mut held = Vec::new();
    for i in 0..OPEN_FILES * 2 {
        held.push(TcpStream::connect(servers[i % 2].0).await.unwrap());
    }
    assert!(
        daemon.wait_log("accept failed; backing off", Duration::from_secs(5)),
        "accept reached the limit and said so"
    );
    // (Descriptors inherited above the limit, such as cargo's jobserver pipe, count here too.)
    let fds = daemon.open_fds();
    assert!(fds >= OPEN_FILES, "at the limit: {fds} descriptors open");

    // While exhausted: next to no CPU, and the warning at most once per 5 s per server.
    let cpu_before = daemon.cpu_time();
    let watched = Duration::from_secs(3);
    tokio::time::sleep(watched).await;
    let cpu = daemon.cpu_time() - cpu_before;
    let repeated = daemon
        .stderr_text()
        .lines()
        .filter(|line| line.contains("accept failed; backing off"))
        .count();
    eprintln!("exhausted for {watched:?}: {cpu:?} of CPU, {repeated} more warning line(s)");
    assert!(
        cpu <= Duration::from_millis(150),
        "accept spun while out of descriptors: {cpu:?} of CPU in {watched:?}"
    );
    assert!(repeated <= 2, "{repeated} warnings in {watched:?}");

    // Free the descriptors: both servers serve again within the longest backoff (1 s).
    drop(held);
    let freed = Instant::now();
    for (addr, name) in servers {
        loop {
            match tokio::time::timeout(Duration::from_secs(2), get(addr, name, "/", client.clone()))
                .await
            {
                Ok(Ok((response, _))) => {
                    assert_eq!(response.status, 200);
                    break;
                }
                _ => assert!(
                    freed.elapsed() < Duration::from_secs(10),
                    "{name} did not recover: {}",
                    daemon.stderr_text()
                ),
            }
        }
    }
    eprintln!(
        "recovered {:?} after the descriptors were freed",
        freed.elapsed()
    );
}
