//! The seed's C program (`examples/c/seed.c`) built with the system C compiler against
//! `libtlsplex_ffi.a` and run as the page says: two servers in one process, `lsof` sees both
//! LISTEN, curl over HTTP/1.1, `openssl s_client` with a resumed session, headless Chromium, a
//! client certificate asked for and given, and bad clients (garbage bytes, a stalled handshake)
//! that get their result code while the other server keeps serving. Then once under
//! AddressSanitizer and once under valgrind, each with no error and no leak reported.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

mod common;

use common::{compile, Program};
use tlsplex_testkit::{available, free_port, TestPki};

/// The PKI the program reads: `a` and `b` servers, clients of `clients-ca.pem` on b, `alice`.
fn pki() -> TestPki {
    let pki = TestPki::new();
    pki.issue("a", &["a.test"]);
    pki.issue("b", &["b.test"]);
    pki.issue_client("alice", "alice", 7);
    std::fs::copy(pki.ca_file(), pki.dir().join("clients-ca.pem"))
        .unwrap_or_else(|e| panic!("{e}"));
    pki
}

/// curl's body from `port` as `name`, with `extra` arguments.
fn curl(pki: &TestPki, port: u16, name: &str, extra: &[&str]) -> Output {
    Command::new("curl")
        .args(["-s", "--http1.1", "--max-time", "60", "--cacert"])
        .arg(pki.ca_file())
        .args(["--resolve", &format!("{name}:{port}:127.0.0.1")])
        .args(extra)
        .arg(format!("https://{name}:{port}/"))
        .output()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// curl's answer from `port` (b.test) with alice's client certificate.
fn as_alice(pki: &TestPki, port: u16) -> Output {
    let alice = pki.dir().join("alice");
    let (cert, key) = (alice.with_extension("pem"), alice.with_extension("key"));
    let (cert, key) = (cert.to_string_lossy(), key.to_string_lossy());
    curl(pki, port, "b.test", &["--cert", &cert, "--key", &key])
}

fn body(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `openssl s_client` to `port` sending one request, saving (`-sess_out`) or offering
/// (`-sess_in`) the session in `session`.
fn s_client(pki: &TestPki, port: u16, session: &Path, reuse: bool) -> String {
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "a.test",
        ])
        .arg("-CAfile")
        .arg(pki.ca_file())
        .arg(if reuse { "-sess_in" } else { "-sess_out" })
        .arg(session)
        .arg("-ign_eof")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n");
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A full handshake and a request, then a reset (SO_LINGER 0) before reading the answer.
fn ask_and_reset(pki: &TestPki, port: u16) {
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("{e}"));
    let name = rustls::pki_types::ServerName::try_from("a.test").unwrap_or_else(|e| panic!("{e}"));
    let mut tls = rustls::ClientConnection::new(pki.client(&["http/1.1"]), name)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut tcp = tcp;
    while tls.is_handshaking() {
        tls.complete_io(&mut tcp).unwrap_or_else(|e| panic!("{e}"));
    }
    let mut stream = rustls::Stream::new(&mut tls, &mut tcp);
    let _ = stream.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
    let socket = socket2::SockRef::from(&tcp);
    let _ = socket.set_linger(Some(Duration::ZERO));
}

/// Garbage instead of a ClientHello: the server answers with an alert and closes.
fn garbage(port: u16) {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("{e}"));
    let _ = tcp.write_all(b"GET / HTTP/1.1\r\nHost: plaintext\r\n\r\n");
    tcp.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let _ = tcp.read_to_end(&mut Vec::new());
}

#[test]
fn the_seed_program_serves_two_ports_and_names_each_failure() {
    if !["cc", "curl", "openssl", "lsof", "chromium"]
        .iter()
        .all(|p| available(p))
    {
        return;
    }
    let pki = pki();
    let binary = compile("examples/c/seed.c", pki.dir(), &[]);
    let ports = [free_port(), free_port()];
    let program = Program::start(
        Command::new(&binary)
            .arg(pki.dir())
            .args(ports.map(|p| p.to_string())),
        ports,
    );
    for port in ports {
        let lsof = Command::new("lsof")
            .args(["-nP", &format!("-i4TCP:{port}")])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            body(&lsof).contains("(LISTEN)"),
            "lsof -nP -i4TCP:{port} | grep LISTEN"
        );
    }
    let [a, b] = ports;

    let served = body(&curl(&pki, a, "a.test", &[]));
    assert!(
        served.starts_with(&format!("hello from port {a} over TLSv1.3")),
        "{served}"
    );
    assert!(
        served.contains("alpn http/1.1, sni a.test, resumed 0"),
        "{served}"
    );

    let session = pki.dir().join("session.pem");
    let first = s_client(&pki, a, &session, false);
    assert!(first.contains("resumed 0"), "{first}");
    let again = s_client(&pki, a, &session, true);
    assert!(
        again.contains("Reused, TLSv1.3") && again.contains("resumed 1"),
        "{again}"
    );

    // b asks for a client certificate: none is refused, alice's is taken.
    let refused = curl(&pki, b, "b.test", &[]);
    assert!(!refused.status.success() && body(&refused).is_empty());
    let with_cert = as_alice(&pki, b);
    assert!(
        body(&with_cert).contains("client CN=alice"),
        "{}",
        body(&with_cert)
    );

    // Bad clients on a: garbage, and a handshake that stalls past the 2 s timeout, while b
    // goes on serving.
    garbage(a);
    let stalled = TcpStream::connect(("127.0.0.1", a)).unwrap_or_else(|e| panic!("{e}"));
    let during = as_alice(&pki, b);
    assert!(body(&during).starts_with(&format!("hello from port {b}")));
    std::thread::sleep(Duration::from_millis(2500));
    drop(stalled);

    // Clients that ask and then reset the connection before the answer: the program's writes
    // to them fail (EPIPE), which must cost only those connections, never the process
    // (SIGPIPE is not raised by tlsplex's writes).
    for _ in 0..10 {
        ask_and_reset(&pki, a);
    }
    let after = body(&curl(&pki, a, "a.test", &[]));
    assert!(
        after.starts_with(&format!("hello from port {a}")),
        "still serving: {after:?}"
    );

    let dom = tlsplex_testkit::headless_chromium(&pki.dir().join("chromium"), Some(60))
        .arg(format!(
            "--ignore-certificate-errors-spki-list={}",
            spki_pin(&pki.dir().join("a.pem"))
        ))
        .arg("--host-resolver-rules=MAP a.test 127.0.0.1")
        .arg("--dump-dom")
        .arg(format!("https://a.test:{a}/"))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        body(&dom).contains(&format!("hello from port {a} over TLSv1.3")),
        "{}",
        body(&dom)
    );

    let mut program = program;
    let _ = program.child.kill();
    let (_, log, _) = program.finish();
    for expected in [
        format!("port {a}: served: 0 ok"),
        format!(
            "port {b}: handshake failed: 12 the client certificate is missing or does not verify"
        ),
        format!("port {a}: handshake failed: 9 the client broke the TLS protocol"),
        format!("port {a}: handshake failed: 8 the handshake did not finish in time"),
    ] {
        assert!(log.contains(&expected), "{expected}\nnot in:\n{log}");
    }
}

/// A short run (two connections per server: one served, one refused) under a checker; the
/// program frees everything and exits, and the checker's verdict is its exit status.
fn checked_run(
    binary: &Path,
    wrapper: &[&str],
    pki: &TestPki,
    handshake_ms: &str,
) -> (std::process::ExitStatus, String, String) {
    let ports = [free_port(), free_port()];
    let mut command = Command::new(
        wrapper
            .first()
            .copied()
            .unwrap_or_else(|| binary.to_str().unwrap_or_default()),
    );
    if !wrapper.is_empty() {
        command.args(&wrapper[1..]).arg(binary);
    }
    command
        .arg(pki.dir())
        .args(ports.map(|p| p.to_string()))
        .args(["2", handshake_ms]);
    let program = Program::start(&mut command, ports);
    let [a, b] = ports;
    assert!(body(&curl(pki, a, "a.test", &[])).starts_with("hello"));
    garbage(a);
    let served = as_alice(pki, b);
    assert!(
        body(&served).contains("client CN=alice"),
        "{}",
        body(&served)
    );
    let _ = curl(pki, b, "b.test", &[]);
    program.finish()
}

#[test]
fn no_error_or_leak_under_address_sanitizer() {
    if !["cc", "curl"].iter().all(|p| available(p)) {
        return;
    }
    let pki = pki();
    let binary = compile("examples/c/seed.c", pki.dir(), common::ASAN);
    let (status, log, stderr) = checked_run(&binary, &[], &pki, "5000");
    assert!(
        status.success() && !stderr.contains("ERROR: "),
        "{log}\n{stderr}"
    );
    assert_eq!(log.matches("served: 0 ok").count(), 2, "{log}");
}

#[test]
fn no_error_or_leak_under_valgrind() {
    if !["cc", "curl", "valgrind"].iter().all(|p| available(p)) {
        return;
    }
    let pki = pki();
    let binary = compile("examples/c/seed.c", pki.dir(), &[]);
    let wrapper = [
        "valgrind",
        "--error-exitcode=99",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite,indirect",
        "--quiet",
    ];
    let (status, log, stderr) = checked_run(&binary, &wrapper, &pki, "60000");
    assert!(status.success(), "{log}\n{stderr}");
    assert_eq!(log.matches("served: 0 ok").count(), 2, "{log}");
}

/// The SPKI pin Chromium takes (`--ignore-certificate-errors-spki-list`) of a PEM certificate.
fn spki_pin(cert: &Path) -> String {
    let script = format!(
        "openssl x509 -in {} -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | openssl enc -base64",
        cert.display()
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
