//! Running the `tlsplex` binary in tests: start it, wait for its ports, signal it, collect output.
#![allow(dead_code)] // each test file uses its own part of this
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on setup failure

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

pub mod admin;
pub mod cdp;
pub mod h2;

pub const BIN: &str = env!("CARGO_BIN_EXE_tlsplex");

/// `tlsplex ARGS` to completion.
pub fn tlsplex(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// A port that was free a moment ago on 127.0.0.1.
pub use tlsplex_testkit::free_port;

/// A running `tlsplex` whose stdout and stderr are collected line by line.
pub struct Daemon {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

fn lines(stream: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Daemon {
    pub fn start(args: &[&str]) -> Self {
        Self::start_program(BIN, args, &[])
    }

    /// Starts `program ARGS` with extra environment variables.
    pub fn start_program(program: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(program)
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = lines(child.stdout.take().unwrap());
        let stderr = lines(child.stderr.take().unwrap());
        Self {
            child,
            stdout,
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until every address accepts TCP connections; panics with the daemon's output if not.
    pub fn wait_listening(&mut self, addrs: &[SocketAddr]) {
        let deadline = Instant::now() + Duration::from_secs(20);
        for addr in addrs {
            while TcpStream::connect_timeout(addr, Duration::from_millis(200)).is_err() {
                if let Ok(Some(status)) = self.child.try_wait() {
                    panic!("tlsplex exited ({status}): {}", self.stderr_text());
                }
                assert!(Instant::now() < deadline, "{addr} never listened");
                thread::sleep(Duration::from_millis(50));
            }
        }
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stdout_text(&self) -> String {
        self.stdout.try_iter().collect::<Vec<_>>().join("\n")
    }

    /// Reads the daemon's log (stderr) until a line contains `needle`; false after `limit`.
    pub fn wait_log(&self, needle: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.stderr.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        false
    }

    /// [`Daemon::wait_log`], keeping every line read in `kept`.
    pub fn wait_log_keeping(&self, needle: &str, limit: Duration, kept: &mut Vec<String>) -> bool {
        let deadline = Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    kept.push(line);
                    if found {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
        false
    }

    /// Resident memory, in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Open file descriptors, from /proc.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }

    /// CPU time used so far (user + system), from /proc (10 ms resolution).
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        Duration::from_millis(ticks * 10)
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.try_iter().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Raises this test process's soft open-files limit to its hard limit (floods need thousands).
pub fn raise_own_open_files() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
}

#[allow(unused_imports)] // not every test file runs outside programs
pub use tlsplex_testkit::available;

/// Runs headless Chromium (bounded to 90 s, with a fresh profile, no network of its own) on
/// `url` with `extra` flags such as `--dump-dom`; returns what it printed.
pub fn chromium(url: &str, extra: &[String]) -> String {
    let profile = tempfile::tempdir().unwrap();
    chromium_in(profile.path(), url, extra)
}

/// [`chromium`] with the profile in `profile`, kept between calls (cookies, say).
pub fn chromium_in(profile: &Path, url: &str, extra: &[String]) -> String {
    let out = tlsplex_testkit::headless_chromium(profile, Some(90))
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes `tlsplex.toml` in `dir`: one server per `(name, port)` on 127.0.0.1, each with the
/// certificate `NAME.pem` / `NAME.key` (issue them with those stems), under `handshake_timeout`.
pub fn servers_config(dir: &Path, servers: &[(&str, u16)], handshake_timeout: &str) -> PathBuf {
    let path = dir.join("tlsplex.toml");
    let mut text =
        format!("[global]\nhandshake_timeout = \"{handshake_timeout}\"\nshutdown_grace = \"5s\"\n");
    for (name, port) in servers {
        text += &format!(
            "\n[[server]]\nname = \"{name}\"\nlisten = \"127.0.0.1:{port}\"\n\
             certificates = [{{ cert = \"{name}.pem\", key = \"{name}.key\" }}]\n"
        );
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// Writes a two-server config (names a and b, given ports, 5 s handshake timeout).
pub fn two_server_config(dir: &Path, port_a: u16, port_b: u16) -> PathBuf {
    servers_config(dir, &[("a", port_a), ("b", port_b)], "5s")
}

/// Runs `openssl s_client` with a request kept open long enough to receive TLS 1.3 tickets.
pub fn s_client(port: u16, server_name: &str, version: &str, extra: &[&str]) -> String {
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            server_name,
            version,
        ])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    use std::io::Write as _;
    let request = format!("GET / HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n");
    let _ = stdin.write_all(request.as_bytes());
    std::thread::sleep(Duration::from_millis(500));
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Base64 of the SHA-256 of the certificate's SubjectPublicKeyInfo: what Chromium's
/// `--ignore-certificate-errors-spki-list` takes.
pub fn spki_pin(cert_der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).unwrap();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cert.public_key().raw);
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// The DOM headless Chromium ends with at `url`, trusting the certificate of the PEM file
/// `cert` (by its SPKI pin) and taking `web.test` to 127.0.0.1; `extra` flags besides.
pub fn chromium_dom(cert: &Path, url: &str, extra: &[&str]) -> String {
    let pem = std::fs::read(cert).unwrap();
    let der: rustls::pki_types::CertificateDer<'static> =
        rustls::pki_types::pem::PemObject::from_pem_slice(&pem).unwrap();
    let mut flags = vec![
        format!("--ignore-certificate-errors-spki-list={}", spki_pin(&der)),
        "--host-resolver-rules=MAP web.test 127.0.0.1".to_owned(),
        "--dump-dom".to_owned(),
    ];
    flags.extend(extra.iter().map(|f| (*f).to_owned()));
    chromium(url, &flags)
}

/// A daemon running one server `app` (certificate `app.pem` for `app.test`, issued here) with
/// `handler` (a TOML inline table) and `extra` TOML after it: (daemon, its address).
pub fn one_server(
    pki: &tlsplex_testkit::TestPki,
    handler: &str,
    extra: &str,
) -> (Daemon, SocketAddr) {
    pki.issue("app", &["app.test"]);
    let port = free_port();
    let config = pki.dir().join("tlsplex.toml");
    std::fs::write(
        &config,
        format!(
            "[[server]]\nname = \"app\"\nlisten = \"127.0.0.1:{port}\"\n\
             certificates = [{{ cert = \"app.pem\", key = \"app.key\" }}]\n\
             handler = {handler}\n{extra}"
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start(&["run", "-c", config.to_str().unwrap()]);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    daemon.wait_listening(&[addr]);
    (daemon, addr)
}
