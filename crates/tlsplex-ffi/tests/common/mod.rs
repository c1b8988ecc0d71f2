//! Building C programs against the library, for the tests.

use std::path::{Path, PathBuf};
use std::process::Command;

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
