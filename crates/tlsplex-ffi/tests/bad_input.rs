//! Bad input from C (`tests/bad_input.c`): null pointers, freed, foreign and made-up handles,
//! invalid PEM, zero-length buffers, a descriptor that is not a socket or not open, a result
//! code that is none: each answered with a code and a message, never a crash; once plain and
//! once under AddressSanitizer.

mod common;

use std::process::Command;

use common::{compile, ASAN};
use tlsplex_testkit::{available, TestPki};

#[test]
fn every_bad_argument_is_a_result_code_and_a_message() {
    if !available("cc") {
        return;
    }
    let pki = TestPki::new();
    pki.issue("a", &["a.test"]);
    for flags in [&[][..], ASAN] {
        let binary = compile("crates/tlsplex-ffi/tests/bad_input.c", pki.dir(), flags);
        let out = Command::new(&binary)
            .arg(pki.dir())
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let printed = String::from_utf8_lossy(&out.stdout);
        let errors = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{flags:?}:\n{printed}\n{errors}");
        assert!(
            printed.contains("accept(fd of a file): 7 the descriptor is not a socket"),
            "{printed}"
        );
        assert!(printed.contains("0 failure(s)"), "{printed}");
    }
}
