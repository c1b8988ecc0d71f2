//! A fleet: two tlsplex processes sharing one `redis-server` (Debian's) order each certificate
//! once from Pebble, each answers the validations that reach it, both serve the same
//! certificate, and each resumes the other's session tickets. Redis comes up after them, and
//! goes away again without stopping them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

mod common;
#[path = "common/pebble.rs"]
mod pebble;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{available, free_port, Daemon};
use pebble::{client, try_leaf_at, Pebble, ISSUED};
use tlsplex_testkit::TestPki;

/// Process `i`'s config: one server on `addr` with two ACME certificates, the fleet in Redis,
/// `acme` (more of `[acme]`) after the storage.
fn config(
    dir: &Path,
    i: usize,
    addr: SocketAddr,
    pebble: &Pebble,
    ca: &Path,
    redis: u16,
    acme: &str,
) -> String {
    let own = dir.join(format!("process{i}"));
    std::fs::create_dir_all(&own).unwrap();
    let path = own.join("tlsplex.toml");
    std::fs::write(
        &path,
        format!(
            r#"[acme]
directory = "{}"
directory_ca = "{}"
storage = "redis://127.0.0.1:{redis}/"
{acme}
[[server]]
name = "web"
listen = "{addr}"
certificates = [{{ acme = ["a.test", "b.test"] }}, {{ acme = ["c.test"] }}]
[server.tls]
session_cache_size = 0
"#,
            pebble.directory,
            ca.display()
        ),
    )
    .unwrap();
    path.display().to_string()
}

fn start_redis(port: u16) -> Daemon {
    let port_arg = port.to_string();
    let mut redis = Daemon::start_program(
        "redis-server",
        &[
            "--port",
            &port_arg,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        &[],
    );
    redis.wait_listening(&[SocketAddr::from(([127, 0, 0, 1], port))]);
    redis
}

/// The leaf `addr` presents for `name` once it verifies; panics after 60 s.
fn served(
    addr: SocketAddr,
    name: &str,
    verify: &Arc<rustls::ClientConfig>,
    log: &Daemon,
) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match try_leaf_at(addr, name, verify) {
            Ok(leaf) => return leaf,
            Err(error) => assert!(
                Instant::now() < deadline,
                "{name} at {addr}: {error}\n{}",
                log.stderr_text()
            ),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A handshake and one request for `name` at `addr` (so TLS 1.3 tickets arrive); whether the
/// handshake resumed a session.
fn resumed(addr: SocketAddr, name: &str, config: &Arc<rustls::ClientConfig>) -> bool {
    let server_name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
    let mut tls = rustls::ClientConnection::new(config.clone(), server_name).unwrap();
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    let mut stream = rustls::Stream::new(&mut tls, &mut tcp);
    stream
        .write_all(
            format!("GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    assert!(
        response.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&response)
    );
    tls.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
}

#[test]
fn two_processes_sharing_redis_order_once_answer_each_validation_and_resume_each_other() {
    if !available("pebble") || !available("pebble-challtestsrv") || !available("redis-server") {
        return;
    }
    let pki = TestPki::new();
    let dir = pki.dir().to_owned();
    let port = free_port();
    let redis_port = free_port();
    // Process 0 on 127.0.0.1, process 1 on 127.0.0.3, the same port (Pebble's tlsPort): the CA
    // validates a.test at process 0, b.test and c.test at process 1, whichever one orders.
    let addrs = [
        SocketAddr::from(([127, 0, 0, 1], port)),
        SocketAddr::from(([127, 0, 0, 3], port)),
    ];
    let mut pebble = Pebble::new(&dir, &pki, port, 3600);
    pebble.start();
    pebble.add_a("b.test", "127.0.0.3");
    pebble.add_a("c.test", "127.0.0.3");

    // Redis is not there yet: both start, serve nothing for the names, and wait for it.
    let mut daemons: Vec<Daemon> = addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            let config = config(&dir, i, *addr, &pebble, &pki.ca_file(), redis_port, "");
            Daemon::start(&["run", "-c", &config, "--log-format", "json"])
        })
        .collect();
    let mut logs = vec![Vec::new(), Vec::new()];
    for ((daemon, addr), log) in daemons.iter_mut().zip(addrs).zip(&mut logs) {
        daemon.wait_listening(&[addr]);
        let waiting = daemon.wait_log_keeping(
            "the fleet store is unreachable",
            Duration::from_secs(20),
            log,
        );
        assert!(waiting, "{}", log.join("\n"));
    }
    let started = Instant::now();
    let mut redis = start_redis(redis_port);

    // Both certificates are issued once, by whichever process took each lock, and served by both.
    let verify = client(pebble.root(&pki.ca_file()));
    let mut leaves = Vec::new();
    for (daemon, addr) in daemons.iter().zip(addrs) {
        let ab = served(addr, "b.test", &verify, daemon);
        let c = served(addr, "c.test", &verify, daemon);
        leaves.push((ab, c));
    }
    println!(
        "Redis up to both certificates served by both processes: {:?}",
        started.elapsed()
    );
    assert_eq!(
        leaves[0], leaves[1],
        "both processes serve the same certificates"
    );
    assert_eq!(
        served(addrs[0], "a.test", &verify, &daemons[0]),
        leaves[0].0
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        pebble.issued(),
        2,
        "one order per certificate in the whole fleet"
    );
    for (daemon, log) in daemons.iter().zip(&mut logs) {
        log.extend(daemon.stderr_text().lines().map(str::to_owned));
    }
    let all = logs.concat();
    let count = |needle: &str| all.iter().filter(|line| line.contains(needle)).count();
    assert_eq!(count(ISSUED), 2, "{}", all.join("\n"));
    assert_eq!(
        count("certificate copied from the fleet store"),
        2,
        "{}",
        all.join("\n")
    );
    // No order failed once Redis was there (a CA reuses valid authorizations, so a retry
    // could hide a validation that reached the process that was not ordering).
    let failed: Vec<&String> = all
        .iter()
        .filter(|line| {
            line.contains("ACME order failed") && !line.contains("fleet store is unreachable")
        })
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    // Each process answered the validations that reached it.
    let answered = |log: &[String], name: &str| {
        log.iter().any(|line| {
            line.contains("answered an ACME TLS-ALPN-01 validation") && line.contains(name)
        })
    };
    assert!(answered(&logs[0], "a.test"), "{}", logs[0].join("\n"));
    assert!(answered(&logs[1], "b.test"), "{}", logs[1].join("\n"));
    assert!(answered(&logs[1], "c.test"), "{}", logs[1].join("\n"));

    // The session-ticket secret is the fleet's: a ticket from one process resumes at the other.
    for log in &logs {
        assert!(
            log.iter()
                .any(|line| line.contains("session tickets now use the fleet's shared secret")),
            "{}",
            log.join("\n")
        );
    }
    for (from, to) in [(0, 1), (1, 0)] {
        let sessions = client(pebble.root(&pki.ca_file()));
        assert!(
            !resumed(addrs[from], "b.test", &sessions),
            "a new session first"
        );
        assert!(
            resumed(addrs[to], "b.test", &sessions),
            "process {to} resumes process {from}'s ticket"
        );
    }

    // Redis goes away: both keep serving what they loaded, and say so once.
    redis.signal("KILL");
    redis.wait_exit(Duration::from_secs(5));
    for (daemon, addr) in daemons.iter().zip(addrs) {
        let waiting = daemon.wait_log("the fleet store is unreachable", Duration::from_secs(20));
        assert!(waiting, "{}", daemon.stderr_text());
        assert_eq!(served(addr, "c.test", &verify, daemon), leaves[0].1);
    }
    for daemon in &mut daemons {
        daemon.signal("TERM");
        assert!(daemon.wait_exit(Duration::from_secs(10)).unwrap().success());
    }
}

#[test]
fn a_fleet_validating_by_http01_answers_on_every_process() {
    if !available("pebble") || !available("pebble-challtestsrv") || !available("redis-server") {
        return;
    }
    let pki = TestPki::new();
    let dir = pki.dir().to_owned();
    let (port, http, redis_port) = (free_port(), free_port(), free_port());
    let addrs = [
        SocketAddr::from(([127, 0, 0, 1], port)),
        SocketAddr::from(([127, 0, 0, 3], port)),
    ];
    // Nothing on Pebble's TLS-ALPN-01 port: HTTP-01, at either process, is the only way.
    let mut pebble = Pebble::with_http_port(&dir, &pki, free_port(), http, 3600);
    pebble.start();
    pebble.add_a("b.test", "127.0.0.3");
    pebble.add_a("c.test", "127.0.0.3");
    let _redis = start_redis(redis_port);
    let daemons: Vec<Daemon> = addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            let config = config(
                &dir,
                i,
                *addr,
                &pebble,
                &pki.ca_file(),
                redis_port,
                &format!("http01_listen = \"{}:{http}\"\n", addr.ip()),
            );
            let mut daemon = Daemon::start(&["run", "-c", &config, "--log-format", "json"]);
            daemon.wait_listening(&[*addr, SocketAddr::new(addr.ip(), http)]);
            daemon
        })
        .collect();
    served_by_all_ordered_once(&daemons, addrs, &pebble, &pki);
    let logs: Vec<String> = daemons.iter().map(Daemon::stderr_text).collect();
    for log in &logs {
        assert!(!log.contains("ACME order failed"), "{log}");
        assert!(log.contains("answered an ACME HTTP-01 validation"), "{log}");
    }
}

#[test]
fn a_fleet_validating_by_dns01_publishes_each_record_once() {
    if !available("pebble")
        || !available("pebble-challtestsrv")
        || !available("redis-server")
        || !available("curl")
    {
        return;
    }
    let pki = TestPki::new();
    let dir = pki.dir().to_owned();
    let redis_port = free_port();
    let addrs = [
        SocketAddr::from(([127, 0, 0, 1], free_port())),
        SocketAddr::from(([127, 0, 0, 1], free_port())),
    ];
    // Nothing on Pebble's TLS-ALPN-01 or HTTP-01 ports: DNS-01 is the only way.
    let mut pebble = Pebble::with_http_port(&dir, &pki, free_port(), free_port(), 3600);
    pebble.start();
    let _redis = start_redis(redis_port);
    let calls = dir.join("hook-calls.log");
    let hook = dir.join("dns-hook");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\necho \"$1 $2\" >> {calls}\ncase \"$1\" in\n  present) curl -sS -d \"{{\\\"host\\\":\\\"$2\\\",\\\"value\\\":\\\"$3\\\"}}\" {api}/set-txt ;;\n  cleanup) curl -sS -d \"{{\\\"host\\\":\\\"$2\\\"}}\" {api}/clear-txt ;;\nesac\n",
            calls = calls.display(),
            api = pebble.challtestsrv_management(),
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let dns01 = format!(
        "challenge = \"dns-01\"\n[acme.dns01]\nhook = {{ command = [\"{}\"] }}\ncheck_servers = [\"{}\"]\npropagation_interval = \"200ms\"\n",
        hook.display(),
        pebble.challtestsrv_dns()
    );
    let daemons: Vec<Daemon> = addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            let config = config(&dir, i, *addr, &pebble, &pki.ca_file(), redis_port, &dns01);
            let mut daemon = Daemon::start(&["run", "-c", &config, "--log-format", "json"]);
            daemon.wait_listening(&[*addr]);
            daemon
        })
        .collect();
    served_by_all_ordered_once(&daemons, addrs, &pebble, &pki);
    // Three names, each record published and removed once, by whichever process ordered.
    let calls = std::fs::read_to_string(&calls).unwrap();
    assert_eq!(calls.matches("present ").count(), 3, "{calls}");
    assert_eq!(calls.matches("cleanup ").count(), 3, "{calls}");
}

/// Both certificates (b.test with a.test, c.test) served by every process, and ordered once
/// in the whole fleet.
fn served_by_all_ordered_once(
    daemons: &[Daemon],
    addrs: [SocketAddr; 2],
    pebble: &Pebble,
    pki: &TestPki,
) {
    let verify = client(pebble.root(&pki.ca_file()));
    for (daemon, addr) in daemons.iter().zip(addrs) {
        served(addr, "b.test", &verify, daemon);
        served(addr, "c.test", &verify, daemon);
    }
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        pebble.issued(),
        2,
        "one order per certificate in the whole fleet"
    );
}

/// One command to the Redis at `port` (RESP, as redis-cli would send it); its reply's first line.
fn redis_command(port: u16, args: &[&[u8]]) -> String {
    let mut command = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        command.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        command.extend_from_slice(arg);
        command.extend_from_slice(b"\r\n");
    }
    let mut redis = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    redis.write_all(&command).unwrap();
    let mut reply = [0u8; 64];
    let n = redis.read(&mut reply).unwrap();
    String::from_utf8_lossy(&reply[..n]).trim_end().to_owned()
}

#[test]
fn an_oversized_certificate_in_the_fleet_store_is_refused_unread() {
    if !available("pebble") || !available("pebble-challtestsrv") || !available("redis-server") {
        return;
    }
    let pki = TestPki::new();
    let dir = pki.dir().to_owned();
    let (port, redis_port) = (free_port(), free_port());
    let mut pebble = Pebble::new(&dir, &pki, port, 3600);
    pebble.start();
    let _redis = start_redis(redis_port);
    // A chain past the 16 MiB a certificate file may have, where the process looks first.
    let huge = vec![b'A'; 17 * 1024 * 1024];
    let stored = redis_command(
        redis_port,
        &[
            b"HSET",
            b"tlsplex:acme:certificate:c.test",
            b"chain",
            &huge,
            b"key",
            b"x",
        ],
    );
    assert_eq!(stored, ":2");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let config = config(&dir, 0, addr, &pebble, &pki.ca_file(), redis_port, "");
    let mut daemon = Daemon::start(&["run", "-c", &config, "--log-format", "json"]);
    daemon.wait_listening(&[addr]);
    let verify = client(pebble.root(&pki.ca_file()));
    // Refused, not read: the process orders its own and serves it.
    served(addr, "c.test", &verify, &daemon);
    let log = daemon.stderr_text();
    assert!(
        log.contains("the fleet store holds an unusable certificate")
            && log.contains(&format!("a chain of {} bytes", huge.len())),
        "{log}"
    );
    assert_eq!(pebble.issued(), 2, "both certificates ordered from the CA");
}
