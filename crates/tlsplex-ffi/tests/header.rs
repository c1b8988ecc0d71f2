//! `include/tlsplex.h` is what cbindgen makes from the sources now: a change to the API that
//! did not regenerate the header fails here (run `cbindgen --config cbindgen.toml --crate
//! tlsplex-ffi --output include/tlsplex.h` in crates/tlsplex-ffi).

use std::path::Path;
use std::process::Command;

use tlsplex_testkit::available;

#[test]
fn the_committed_header_is_current() {
    if !available("cbindgen") {
        return;
    }
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let made = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = made.path().join("tlsplex.h");
    let status = Command::new("cbindgen")
        .current_dir(crate_dir)
        .args([
            "--quiet",
            "--config",
            "cbindgen.toml",
            "--crate",
            "tlsplex-ffi",
            "--output",
        ])
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "cbindgen runs");
    let made = std::fs::read_to_string(&out).unwrap_or_else(|e| panic!("{e}"));
    let committed = std::fs::read_to_string(crate_dir.join("include/tlsplex.h"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        made == committed,
        "include/tlsplex.h is out of date: regenerate it with cbindgen"
    );
}
