//! `tlsplex check`, `run`, `probe -c` and signals, against the real binary.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{free_port, tlsplex, two_server_config, Daemon};
use tlsplex_testkit::TestPki;

fn pki_with_two_certs() -> TestPki {
    let pki = TestPki::new();
    pki.issue("a", &["a.test"]);
    pki.issue("b", &["b.test"]);
    pki
}

#[test]
fn check_accepts_a_valid_file_and_lists_its_servers() {
    let pki = pki_with_two_certs();
    let config = two_server_config(pki.dir(), free_port(), free_port());
    let out = tlsplex(&["check", "-c", config.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("ok, 2 server(s)"), "{text}");
    assert!(text.contains("CN=a.test"), "{text}");
}

#[test]
fn check_rejects_a_bad_file_naming_server_key_and_file() {
    let pki = pki_with_two_certs();
    let config = two_server_config(pki.dir(), free_port(), free_port());
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("b.key", "a.key");
    std::fs::write(&config, text).unwrap();
    let out = tlsplex(&["check", "-c", config.to_str().unwrap()]);
    let errors = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        errors.contains(&format!(
            "{}: server \"b\": certificates[0].key: private key {} does not match the certificate in {}",
            config.display(),
            pki.dir().join("a.key").display(),
            pki.dir().join("b.pem").display()
        )),
        "{errors}"
    );
    assert!(errors.contains("1 problem(s) found"), "{errors}");
}

#[test]
fn run_serves_a_config_and_probe_validates_it() {
    let pki = pki_with_two_certs();
    let ca = pki.ca_file();
    let (port_a, port_b) = (free_port(), free_port());
    let config = two_server_config(pki.dir(), port_a, port_b);
    let config = config.to_str().unwrap();
    let mut daemon = Daemon::start(&["run", "-c", config, "--log-format", "json"]);
    let addrs: Vec<SocketAddr> = [port_a, port_b]
        .map(|p| ([127, 0, 0, 1], p).into())
        .to_vec();
    daemon.wait_listening(&addrs);

    let out = tlsplex(&[
        "probe",
        "-c",
        config,
        "--ca",
        ca.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let results: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), 2);
    for (result, name) in results.iter().zip(["a", "b"]) {
        assert_eq!(result["server"], name);
        assert_eq!(result["ok"], true);
        assert_eq!(result["tls_version"], "TLSv1.3");
        assert_eq!(result["alpn"], "h2");
        assert_eq!(result["subject"], format!("CN={name}.test"));
        assert_eq!(result["names"][0], format!("{name}.test"));
        assert!(result["days_until_expiry"].as_i64().unwrap() > 300);
    }

    // Verification is real: without the CA the chain is refused, and the exit code says so.
    let out = tlsplex(&["probe", "-c", config]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("UnknownIssuer"));

    daemon.signal("TERM");
    assert!(daemon.wait_exit(Duration::from_secs(10)).unwrap().success());
    let logs = daemon.stderr_text();
    let started: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .filter(|event: &serde_json::Value| event["message"] == "server started")
        .collect();
    assert_eq!(
        started.len(),
        2,
        "one JSON startup line per server:\n{logs}"
    );
    assert_eq!(started[0]["cert.subject"], "CN=a.test");
}

#[test]
fn probe_fails_on_a_closed_port() {
    let port = free_port();
    let out = tlsplex(&["probe", &format!("127.0.0.1:{port}"), "--insecure"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("FAILED") && text.contains("not listening"),
        "{text}"
    );
}

#[test]
fn a_port_in_use_fails_the_start_naming_server_and_address() {
    let pki = pki_with_two_certs();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port_b = taken.local_addr().unwrap().port();
    let port_a = free_port();
    let config = two_server_config(pki.dir(), port_a, port_b);
    let out = tlsplex(&["run", "-c", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(
        errors.contains(&format!(
            "server \"b\": cannot listen on 127.0.0.1:{port_b}: Address already in use"
        )),
        "{errors}"
    );
    assert!(
        TcpStream::connect(("127.0.0.1", port_a)).is_err(),
        "no server was left serving"
    );
}

#[test]
fn a_second_signal_exits_at_once() {
    let pki = pki_with_two_certs();
    let (port_a, port_b) = (free_port(), free_port());
    let config = two_server_config(pki.dir(), port_a, port_b);
    let mut daemon = Daemon::start(&["run", "-c", config.to_str().unwrap()]);
    let addr: SocketAddr = ([127, 0, 0, 1], port_a).into();
    daemon.wait_listening(&[addr]);

    // A connection stuck before its handshake keeps the drain waiting (up to the 5 s timeout).
    let _stuck = TcpStream::connect(addr).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    daemon.signal("TERM");
    assert!(
        daemon.wait_exit(Duration::from_millis(500)).is_none(),
        "the first signal drains"
    );
    daemon.signal("TERM");
    let status = daemon
        .wait_exit(Duration::from_secs(2))
        .expect("the second signal exits");
    assert_eq!(status.code(), Some(1));
}
