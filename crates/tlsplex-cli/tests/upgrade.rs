//! Zero-downtime upgrade with `reuse_port`: start the new process on the same config, then
//! SIGTERM the old one; under continuous load no connection is refused and no request fails.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{free_port, Daemon};
use tlsplex_testkit::{get, TestPki};

/// Waits until the daemon's log says its server serves.
fn wait_serving(daemon: &Daemon) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = String::new();
    while !seen.contains("serving") {
        assert!(Instant::now() < deadline, "never served:\n{seen}");
        std::thread::sleep(Duration::from_millis(20));
        seen += &daemon.stderr_text();
    }
}

/// Whether the kernel moves connections queued on a closing `SO_REUSEPORT` socket to its
/// siblings (Linux 5.14+); without it a few connections in flight at the switch are reset.
fn migration_on() -> bool {
    let on = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_migrate_req")
        .is_ok_and(|value| value.trim() == "1");
    if !on {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI sets net.ipv4.tcp_migrate_req=1 (.ci/run), as docs/operations.md asks"
        );
        eprintln!("skipping: net.ipv4.tcp_migrate_req is not 1 (see docs/operations.md)");
    }
    on
}

#[test]
fn an_upgrade_under_load_loses_no_request() {
    if !migration_on() {
        return;
    }
    let pki = TestPki::new();
    pki.issue("web", &["web.test"]);
    let port = free_port();
    let path = pki.dir().join("tlsplex.toml");
    let text = format!(
        "[global]\nshutdown_grace = \"5s\"\n[[server]]\nname = \"web\"\nlisten = \"127.0.0.1:{port}\"\nreuse_port = true\n\
         certificates = [{{ cert = \"web.pem\", key = \"web.key\" }}]\n"
    );
    std::fs::write(&path, text).unwrap();
    let config = path.to_str().unwrap().to_owned();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut old = Daemon::start(&["run", "-c", &config]);
    old.wait_listening(&[addr]);

    let (served, failed, done) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = pki.client(&["http/1.1"]);
    let mut load = Vec::new();
    for _ in 0..4 {
        let (served, failed, done, client) =
            (served.clone(), failed.clone(), done.clone(), client.clone());
        load.push(runtime.spawn(async move {
            let mut errors = Vec::new();
            while !done.load(Ordering::Relaxed) {
                match get(addr, "web.test", "/", client.clone()).await {
                    Ok((page, _)) if page.status == 200 => {
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                    other => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        errors.push(format!("{:?}", other.map(|(p, _)| p.status)));
                    }
                }
            }
            errors
        }));
    }
    std::thread::sleep(Duration::from_millis(700));
    let new = Daemon::start(&["run", "-c", &config]);
    wait_serving(&new);
    std::thread::sleep(Duration::from_millis(300));
    let before_switch = served.load(Ordering::Relaxed);
    old.signal("TERM");
    assert!(
        old.wait_exit(Duration::from_secs(10)).unwrap().success(),
        "the old process drains and exits 0"
    );
    std::thread::sleep(Duration::from_millis(700));
    done.store(true, Ordering::Relaxed);
    let errors: Vec<String> = load
        .into_iter()
        .flat_map(|task| runtime.block_on(task).unwrap())
        .collect();
    let total = served.load(Ordering::Relaxed);
    eprintln!(
        "served {total} requests ({before_switch} before the switch), failed {}",
        errors.len()
    );
    assert!(errors.is_empty(), "{} failed: {errors:?}", errors.len());
    assert!(
        total > before_switch + 10,
        "the new process served after the old one left"
    );
    drop(new);
}
