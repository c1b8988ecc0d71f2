//! Running the `tlsplex` binary in tests: start it, wait for its ports, signal it, collect output.
#![allow(dead_code)] // each test file uses its own part of this
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on setup failure

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_tlsplex");

/// `tlsplex ARGS` to completion.
pub fn tlsplex(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

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

/// Whether `program` can be run; with `CI=true` a missing one fails the test instead.
pub fn available(program: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{program} is required in CI (.ci/run installs it)"
        );
        eprintln!("skipping the {program} part: {program} is not installed");
    }
    found
}

/// Runs headless Chromium (bounded to 90 s, with a fresh profile, no network of its own) on
/// `url` with `extra` flags such as `--dump-dom`; returns what it printed.
pub fn chromium(url: &str, extra: &[String]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("timeout")
        .arg("90")
        .arg("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .args([
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg("--disable-quic")
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .stderr(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes a two-server config (names a and b, given ports) with certificates from `pki`.
pub fn two_server_config(dir: &Path, port_a: u16, port_b: u16) -> std::path::PathBuf {
    let path = dir.join("tlsplex.toml");
    let text = format!(
        "[global]\nhandshake_timeout = \"5s\"\nshutdown_grace = \"5s\"\n\n\
         [[server]]\nname = \"a\"\nlisten = \"127.0.0.1:{port_a}\"\ncertificates = [{{ cert = \"a.pem\", key = \"a.key\" }}]\n\n\
         [[server]]\nname = \"b\"\nlisten = \"127.0.0.1:{port_b}\"\ncertificates = [{{ cert = \"b.pem\", key = \"b.key\" }}]\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}
