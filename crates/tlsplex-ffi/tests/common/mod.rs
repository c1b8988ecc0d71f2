//! Building C programs against the library, for the tests.

// Each test file uses a part of this module.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// AddressSanitizer's flags (LeakSanitizer included).
pub const ASAN: &[&str] = &["-fsanitize=address", "-fno-omit-frame-pointer"];

/// The folder holding `libtlsplex_ffi.a` as cargo built it for these tests: beside the test
/// binary (`deps`), where a test build puts the library's every crate type (`cargo build` also
/// copies it one folder up).
pub fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let deps = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    assert!(
        deps.join("libtlsplex_ffi.a").exists(),
        "libtlsplex_ffi.a is built with the tests, in {}",
        deps.display()
    );
    deps
}

/// `source` (relative to the repository) compiled into `out` with `flags`.
pub fn compile(source: &str, out: &Path, flags: &[&str]) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let stem = Path::new(source)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("program");
    let binary = out.join(format!("{stem}{}", flags.join("").replace(['-', '='], "")));
    let status = Command::new("cc")
        .args(["-Wall", "-Wextra", "-Werror", "-g", "-O1"])
        .args(flags)
        .arg("-o")
        .arg(&binary)
        .arg(root.join(source))
        .arg("-I")
        .arg(root.join("crates/tlsplex-ffi/include"))
        .arg(library_dir().join("libtlsplex_ffi.a"))
        .args(["-lpthread", "-ldl", "-lm", "-lrt", "-lutil"])
        .status()
        .unwrap_or_else(|e| panic!("cc: {e}"));
    assert!(status.success(), "{source} compiles with -Werror");
    binary
}

/// A C program running, its output collected as it comes.
pub struct Program {
    pub child: Child,
    /// What it printed so far (a thread reads its output as it comes).
    printed: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Program {
    /// Starts it and waits until it says both servers listen (a probe connection would count
    /// as one of the connections it was told to take).
    pub fn start(command: &mut Command, ports: [u16; 2]) -> Self {
        let program = Self::spawn(command);
        program.wait_for(&ports.map(|p| format!("port {p}: listening")));
        program
    }

    /// Starts it without waiting for anything.
    pub fn spawn(command: &mut Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let printed = Arc::new(Mutex::new(String::new()));
        let stdout = child.stdout.take();
        let sink = printed.clone();
        let reader = std::thread::spawn(move || {
            for line in stdout
                .into_iter()
                .flat_map(|out| BufReader::new(out).lines())
            {
                let Ok(line) = line else { break };
                let mut text = sink.lock().unwrap_or_else(PoisonError::into_inner);
                text.push_str(&line);
                text.push('\n');
            }
        });
        Self {
            child,
            printed,
            reader: Some(reader),
        }
    }

    /// Waits (two minutes at most) until it has printed each of `lines`.
    pub fn wait_for(&self, lines: &[String]) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !lines.iter().all(|l| self.output().contains(l.as_str())) {
            assert!(
                Instant::now() < deadline,
                "{lines:?} not in:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What it printed so far.
    pub fn output(&self) -> String {
        self.printed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits for it to exit (by itself, or killed): its status, output and errors.
    pub fn finish(mut self) -> (std::process::ExitStatus, String, String) {
        let mut stderr = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ = err.read_to_string(&mut stderr);
        }
        let status = self.child.wait().unwrap_or_else(|e| panic!("{e}"));
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        (status, self.output(), stderr)
    }
}
