//! systemd: readiness notifications over `$NOTIFY_SOCKET`, and socket activation by
//! `FileDescriptorName` (with systemd's own `systemd-socket-activate`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use common::{available, free_port, tlsplex, Daemon, BIN};
use tlsplex_testkit::TestPki;

fn config(pki: &TestPki, port: u16) -> String {
    pki.issue("web", &["web.test"]);
    let path = pki.dir().join("tlsplex.toml");
    let text = format!(
        "[[server]]\nname = \"web\"\nlisten = \"127.0.0.1:{port}\"\ncertificates = [{{ cert = \"web.pem\", key = \"web.key\" }}]\n"
    );
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn ready_reloading_and_stopping_reach_systemd() {
    let pki = TestPki::new();
    let socket_path = pki.dir().join("notify.sock");
    let systemd = UnixDatagram::bind(&socket_path).unwrap();
    systemd
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let next = || {
        let mut buffer = [0u8; 512];
        let n = systemd.recv(&mut buffer).unwrap();
        String::from_utf8_lossy(&buffer[..n]).into_owned()
    };
    let port = free_port();
    let config = config(&pki, port);
    let mut daemon = Daemon::start_program(
        BIN,
        &["run", "-c", &config],
        &[("NOTIFY_SOCKET", socket_path.to_str().unwrap())],
    );
    assert_eq!(next(), "READY=1\nSTATUS=serving");
    daemon.signal("HUP");
    let reloading = next();
    assert!(
        reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reloading}"
    );
    assert_eq!(next(), "READY=1\nSTATUS=serving");
    daemon.signal("TERM");
    assert_eq!(next(), "STOPPING=1");
    assert!(daemon.wait_exit(Duration::from_secs(10)).unwrap().success());
}

#[test]
fn servers_take_their_socket_from_systemd_by_name() {
    if !available("systemd-socket-activate") {
        return;
    }
    let pki = TestPki::new();
    let (activated, configured) = (free_port(), free_port());
    let config = config(&pki, configured);
    let listen = format!("127.0.0.1:{activated}");
    let mut daemon = Daemon::start_program(
        "systemd-socket-activate",
        &[
            "--listen",
            &listen,
            "--fdname=web",
            "-E",
            "RUST_LOG",
            BIN,
            "run",
            "-c",
            &config,
        ],
        &[],
    );
    daemon.wait_listening(&[([127, 0, 0, 1], activated).into()]);
    // The first connection starts tlsplex, which serves on the socket it was given.
    let probe = tlsplex(&[
        "probe",
        &listen,
        "--servername",
        "web.test",
        "--insecure",
        "--timeout",
        "10s",
    ]);
    assert!(
        probe.status.success(),
        "{}",
        String::from_utf8_lossy(&probe.stdout)
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", configured)).is_err(),
        "the configured address was not bound: systemd's socket was used instead"
    );
    daemon.signal("TERM");
    assert!(daemon.wait_exit(Duration::from_secs(10)).unwrap().success());
    assert!(daemon
        .stderr_text()
        .contains("listening socket from systemd"));
}
